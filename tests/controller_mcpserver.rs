//! The MCPServer reconciler against the in-memory API server: children with the documented
//! names, status, drift repair, rollouts on config and Secret changes, scaling left alone, and
//! convergence under failing writes.

mod controller_support;

use controller_support::*;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use mcp_operator::api::crd;
use mcp_operator::api::v1beta1::{
    MCPGroup, MCPRegistry, MCPRemoteProxy, MCPServer, MCPTelemetryConfig, MCPToolConfig,
};
use mcp_operator::controller::children::CONFIG_CHECKSUM;
use mcp_operator::controller::credentials::PullCredentials;
use mcp_operator::controller::frame;
use mcp_operator::controller::mcpserver::Settings;
use mcp_operator::controller::metrics::ControllerMetrics;
use mcp_operator::controller::registry::RegistryResolver;
use mcp_operator::controller::resolve::{CommandResolver, ImageCommand, StaticResolver};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer};

fn checksum(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_CHECKSUM]
        .clone()
}

#[tokio::test]
async fn seeds_get_their_children_and_become_ready() {
    let h = start(None).await;
    let c = &h.client;
    // The github seed's token: without it the server could not start (SecretNotFound).
    Api::<Secret>::namespaced(c.clone(), "toolhive-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "github-token"}, "stringData": {"token": "t"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    create_server(c, seed("mcpserver-github.yaml")).await;
    create_server(c, seed("mcpserver-fetch.yaml")).await;

    let ns = "toolhive-system";
    let dep: Deployment = eventually("github Deployment", || get(c, ns, "github")).await;
    let svc: Service = eventually("github Service", || get(c, ns, "mcp-github-proxy")).await;
    let _sa: ServiceAccount = eventually("github ServiceAccount", || get(c, ns, "github-sa")).await;
    let cm: ConfigMap = eventually("github ConfigMap", || get(c, ns, "github-bridge-config")).await;

    let labels = dep.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/instance"], "github");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "mcp-operator");
    let owner = &dep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("MCPServer", "github", Some(true))
    );
    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("github-sa"));
    let mcp = &pod.containers[0];
    assert_eq!(mcp.name, "mcp");
    assert_eq!(
        mcp.image.as_deref(),
        Some("ghcr.io/github/github-mcp-server")
    );
    let args = mcp.args.clone().unwrap();
    assert_eq!(
        &args[args.len() - 2..],
        ["github-mcp-server", "stdio"],
        "the resolved command is wrapped by the bridge"
    );
    let env = mcp.env.clone().unwrap();
    let token = env
        .iter()
        .find(|e| e.name == "GITHUB_PERSONAL_ACCESS_TOKEN")
        .unwrap();
    assert!(token.value.is_none(), "secret values never copied");
    let key_ref = token
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("github-token", "token")
    );
    assert_eq!(mcp.ports.as_ref().unwrap()[0].container_port, 8080);
    let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 8080);
    assert!(
        !cm.data.as_ref().unwrap()["bridge.json"].contains("token"),
        "no secret in the ConfigMap"
    );

    let servers: Api<MCPServer> = Api::namespaced(c.clone(), ns);
    let url = eventually("status.url", || async {
        servers.get("github").await.ok()?.status?.url
    })
    .await;
    assert_eq!(
        url,
        "http://mcp-github-proxy.toolhive-system.svc.cluster.local:8080/mcp"
    );
    let pending = servers.get("github").await.unwrap().status.unwrap();
    assert_eq!(pending.phase.as_deref(), Some("Pending"));

    // The fake has no kubelet: say the pods are ready, as the Deployment controller would.
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    deployments
        .patch_status(
            "github",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
            ),
        )
        .await
        .unwrap();
    let ready = eventually("Ready", || async {
        let s = servers.get("github").await.ok()?.status?;
        (s.phase.as_deref() == Some("Ready")).then_some(s)
    })
    .await;
    assert_eq!(ready.ready_replicas, Some(1));
    let cond = ready
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(cond.status, "True");

    let fetch: Deployment = eventually("fetch Deployment", || get(c, "default", "fetch")).await;
    let res = fetch.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(res.limits.unwrap()["memory"].0, "128Mi");
}

#[tokio::test]
async fn drift_is_repaired_and_config_changes_roll_pods() {
    let h = start(None).await;
    let c = &h.client;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "toolhive-system");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "github-token"}, "stringData": {"token": "one"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    create_server(c, seed("mcpserver-github.yaml")).await;
    let ns = "toolhive-system";
    let first: Deployment = eventually("Deployment", || get(c, ns, "github")).await;

    // A deleted Service comes back.
    Api::<Service>::namespaced(c.clone(), ns)
        .delete("mcp-github-proxy", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Service recreated", || {
        get::<Service>(c, ns, "mcp-github-proxy")
    })
    .await;

    // A hand-edited image is put back.
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), ns);
    let edit = json!({"spec": {"template": {"spec": {"containers": [{"name": "mcp", "image": "evil/image"}]}}}});
    deployments
        .patch("github", &PatchParams::default(), &Patch::Strategic(&edit))
        .await
        .unwrap();
    eventually("image repaired", || async {
        let d: Deployment = get(c, ns, "github").await?;
        (d.spec?.template.spec?.containers[0].image.as_deref()
            == Some("ghcr.io/github/github-mcp-server"))
        .then_some(())
    })
    .await;

    // Changing the tools rolls the pods.
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), ns);
    let before = checksum(&first);
    servers
        .patch(
            "github",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"tools": ["get_me"]}})),
        )
        .await
        .unwrap();
    let after_tools = eventually("checksum after tools", || async {
        let d: Deployment = get(c, ns, "github").await?;
        let now = checksum(&d);
        (now != before).then_some(now)
    })
    .await;
    let cm: ConfigMap = get(c, ns, "github-bridge-config").await.unwrap();
    assert!(cm.data.unwrap()["bridge.json"].contains("get_me"));

    // Rotating the Secret rolls the pods too.
    secrets
        .patch(
            "github-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": "two"}})),
        )
        .await
        .unwrap();
    eventually("checksum after secret rotation", || async {
        let d: Deployment = get(c, ns, "github").await?;
        (checksum(&d) != after_tools).then_some(())
    })
    .await;

    // `kubectl scale` is not undone when spec.replicas is unset.
    deployments
        .patch("github", &PatchParams::apply("kubectl").force(), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "github"}, "spec": {"replicas": 3}})))
        .await
        .unwrap();
    servers
        .patch(
            "github",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"env": [{"name": "LOG", "value": "debug"}]}})),
        )
        .await
        .unwrap();
    eventually("env applied", || async {
        let d: Deployment = get(c, ns, "github").await?;
        d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .env
            .as_ref()?
            .iter()
            .any(|e| e.name == "LOG")
            .then_some(())
    })
    .await;
    let d: Deployment = get(c, ns, "github").await.unwrap();
    assert_eq!(
        d.spec.unwrap().replicas,
        Some(3),
        "kubectl scale survives reconciles"
    );
}

/// One foreign edit of a child: the child's kind (as the API server names it), its name, the
/// merge patch someone else sends (leaving our applied-hash annotation as it is), and where the
/// edited field is.
struct ForeignEdit {
    kind: kube::discovery::ApiResource,
    name: &'static str,
    edit: serde_json::Value,
    field: &'static str,
}

/// A child whose fields someone else changes, our applied-hash annotation untouched, is put back
/// with one write: the caches keep children reduced (metadata, the hash), so the edit is seen by
/// its new resourceVersion, not by comparing the fields.
#[tokio::test]
async fn foreign_edits_under_our_annotation_are_put_back_with_one_write() {
    use kube::api::DynamicObject;
    use kube::discovery::ApiResource;
    let h = start(None).await;
    let c = &h.client;
    let ns = "default";
    create_server(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": "edited", "namespace": ns},
        "spec": {"image": "docker.io/mcp/fetch", "sessionAffinity": "ClientIP"}}),
    )
    .await;
    let edits = [
        ForeignEdit {
            kind: ApiResource::erase::<ConfigMap>(&()),
            name: "edited-bridge-config",
            edit: json!({"data": {"bridge.json": "{}"}}),
            field: "/data/bridge.json",
        },
        ForeignEdit {
            kind: ApiResource::erase::<ServiceAccount>(&()),
            name: "edited-sa",
            edit: json!({"automountServiceAccountToken": true}),
            field: "/automountServiceAccountToken",
        },
        ForeignEdit {
            kind: ApiResource::erase::<Service>(&()),
            name: "mcp-edited-proxy",
            edit: json!({"spec": {"sessionAffinity": "None"}}),
            field: "/spec/sessionAffinity",
        },
        ForeignEdit {
            kind: ApiResource::erase::<Deployment>(&()),
            name: "edited",
            edit: json!({"spec": {"template": {"metadata": {"annotations": {CONFIG_CHECKSUM: "forged"}}}}}),
            field: "/spec/template/metadata/annotations/toolhive.stacklok.dev~1config-checksum",
        },
    ];
    let hash = "/metadata/annotations/toolhive.stacklok.dev~1applied-hash";
    for e in &edits {
        let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), ns, &e.kind);
        let read = |name: &'static str| {
            let api = api.clone();
            async move {
                api.get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .map(|o| serde_json::to_value(o).unwrap())
            }
        };
        let before = eventually(&format!("{} {}", e.kind.kind, e.name), || read(e.name)).await;
        let wanted = before.pointer(e.field).cloned().expect("the field is ours");
        // Whatever the first reconciles still had in flight has landed.
        tokio::time::sleep(Duration::from_secs(2)).await;
        h.server.clear_requests();
        let edited = api
            .patch(
                e.name,
                &PatchParams {
                    field_manager: Some("someone-else".into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&e.edit),
            )
            .await
            .unwrap();
        let edited = serde_json::to_value(edited).unwrap();
        assert_ne!(
            edited.pointer(e.field),
            Some(&wanted),
            "{}: the edit took",
            e.name
        );
        assert_eq!(
            edited.pointer(hash),
            before.pointer(hash),
            "{}: our annotation stays",
            e.name
        );
        eventually(&format!("{} {} put back", e.kind.kind, e.name), || async {
            let now = read(e.name).await?;
            (now.pointer(e.field) == Some(&wanted)).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let path = format!("/{}/{}", e.kind.plural, e.name);
        let writes: Vec<String> = h
            .server
            .requests()
            .into_iter()
            .filter(|r| r.verb.is_write() && r.path.ends_with(&path))
            .map(|r| format!("{:?} {}", r.verb, r.path))
            .collect();
        assert_eq!(
            writes.len(),
            2,
            "{}: the edit and one repair, got {writes:?}",
            e.name
        );
    }
}

#[tokio::test]
async fn invalid_spec_fails_without_children() {
    let h = start(None).await;
    let c = &h.client;
    // Bypass the webhook: write an object the admission core refuses.
    let bad: MCPServer = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"image": "docker.io/mcp/fetch", "command": ["x"], "env": [{"name": "BAD NAME", "value": "1"}]}
    }))
    .unwrap();
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), "default");
    servers.create(&PostParams::default(), &bad).await.unwrap();
    let status = eventually("Failed", || async {
        let s = servers.get("bad").await.ok()?.status?;
        (s.phase.as_deref() == Some("Failed")).then_some(s)
    })
    .await;
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(status.message.unwrap().contains("spec.env[0].name"));
    assert!(get::<Deployment>(c, "default", "bad").await.is_none());
}

#[tokio::test]
async fn unknown_entrypoint_is_reported() {
    let h = start(None).await;
    let c = &h.client;
    create_server(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": "mystery", "namespace": "default"}, "spec": {"image": "example.com/unknown:1"}})).await;
    let (_, cond) = wait_condition(c, "mystery", "ImageResolved", |_| true).await;
    assert_eq!(cond.status, "False");
    assert!(cond.message.contains("set spec.command"));
    assert!(get::<Deployment>(c, "default", "mystery").await.is_none());
}

/// An image on a loopback or metadata registry: the operator's own look-up refuses to connect
/// (issue 13, item 5), and the status says why instead of a connection error or a timeout.
#[tokio::test]
async fn images_on_forbidden_registries_are_reported_not_fetched() {
    mcp_operator::crypto::install_provider();
    let h = start_with(None, Arc::new(RegistryResolver::new())).await;
    let c = &h.client;
    for (name, image, what) in [
        ("on-loopback", "127.0.0.1:5055/x:1", "loopback"),
        ("on-metadata", "169.254.169.254/x:1", "link-local"),
    ] {
        create_server(
            c,
            json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"image": image}}),
        )
        .await;
        let (_, cond) = wait_condition(c, name, "ImageResolved", |_| true).await;
        assert_eq!(cond.status, "False", "{name}");
        assert!(
            cond.message.contains("refused by the address guard") && cond.message.contains(what),
            "{name}: {}",
            cond.message
        );
        assert!(get::<Deployment>(c, "default", name).await.is_none());
    }
}

/// Resolves its one private image only with the bot's login, as a private registry would.
struct PrivateRegistry;

impl CommandResolver for PrivateRegistry {
    fn resolve<'a>(
        &'a self,
        image: &'a str,
        pull: &'a PullCredentials,
    ) -> BoxFuture<'a, Result<ImageCommand, String>> {
        let login = pull.for_registry("registry.example.com");
        let found = match login {
            Some(l) if l.username == "bot" && l.password == "pat" => Ok(ImageCommand {
                entrypoint: vec!["private-mcp".into()],
                cmd: vec![],
            }),
            _ => Err(format!("{image}: access denied; set spec.command")),
        };
        Box::pin(async move { found })
    }
}

#[tokio::test]
async fn pull_secrets_are_used_to_read_private_entrypoints() {
    let h = start_with(None, Arc::new(PrivateRegistry)).await;
    let c = &h.client;
    let config = json!({"auths": {"registry.example.com": {"auth": "Ym90OnBhdA=="}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred", "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let server = |name: &str, pull: &str| {
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": "registry.example.com/team/private:1",
                     "podTemplateSpec": {"spec": {"imagePullSecrets": [{"name": pull}]}}}})
    };
    create_server(c, server("with-login", "regcred")).await;
    create_server(c, server("without", "not-there")).await;

    let deployment: Deployment = eventually("the private image's deployment", || async {
        get::<Deployment>(c, "default", "with-login").await
    })
    .await;
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let mcp = pod.containers.iter().find(|c| c.name == "mcp").unwrap();
    let words: Vec<String> = mcp
        .command
        .iter()
        .chain(mcp.args.iter())
        .flatten()
        .cloned()
        .collect();
    assert!(words.contains(&"private-mcp".to_string()), "{words:?}");
    let pulls: Vec<_> = pod
        .image_pull_secrets
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(pulls, ["regcred"], "the pod pulls with the same secret");

    let (_, cond) = wait_condition(c, "without", "ImageResolved", |_| true).await;
    assert_eq!(cond.status, "False");
    assert!(
        cond.message
            .contains("imagePullSecret \"not-there\" does not exist"),
        "{}",
        cond.message
    );
}

/// A client whose writes fail one time in five, as a flaky API server's would.
fn flaky(real: Client, seed: u64) -> Client {
    use rand::{Rng, SeedableRng};
    let rng = Arc::new(std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(
        seed,
    )));
    let svc = tower::service_fn(move |req: axum::http::Request<kube::client::Body>| {
        let real = real.clone();
        let write = matches!(req.method().as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
        let is_event = req.uri().path().contains("/events");
        let fail = write && !is_event && rng.lock().unwrap().random_bool(0.2);
        async move {
            if fail {
                let body = serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "injected fault", "reason": "InternalError", "code": 500})).unwrap();
                let resp = axum::http::Response::builder()
                    .status(500)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body))
                    .unwrap();
                return Ok::<_, kube::Error>(resp);
            }
            real.send(req).await
        }
    });
    Client::new(svc, "default")
}

#[tokio::test]
async fn converges_under_failing_writes_and_leaves_nothing_behind() {
    mcp_operator::crypto::install_provider();
    let server = TestApiServer::start(Options::default()).await.unwrap();
    server.set_simulate_workloads(false);
    let client = server.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        c.spec.conversion = None;
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    let _ = Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap(),
        )
        .await;
    let settings = Settings {
        bridge_image: "example.com/mcp-operator:test".into(),
        // Retries every second or two: the test is about convergence, not patience.
        max_backoff: Some(Duration::from_secs(2)),
        ..Settings::default()
    };
    let metrics = ControllerMetrics::default();
    let _controller = tokio::spawn(mcp_operator::controller::run_all(
        flaky(client.clone(), 7),
        None,
        settings,
        Arc::new(StaticResolver::default()),
        metrics.clone(),
    ));

    let groups: Api<MCPGroup> = Api::namespaced(client.clone(), "default");
    let configs: Api<MCPToolConfig> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        groups
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": format!("g{i}")}, "spec": {}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        configs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": format!("tc{i}")}, "spec": {"toolsFilter": ["fetch"]}})).unwrap()).await.unwrap();
    }
    for i in 0..50 {
        create_server(&client, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": format!("f{i}"), "namespace": "default"}, "spec": {"image": "docker.io/mcp/fetch", "command": ["mcp-server-fetch"], "groupRef": {"name": format!("g{}", i % 5)}, "toolConfigRef": {"name": format!("tc{}", i % 5)}}})).await;
    }
    let registries: Api<MCPRegistry> = Api::namespaced(client.clone(), "default");
    let proxies: Api<MCPRemoteProxy> = Api::namespaced(client.clone(), "default");
    for i in 0..5 {
        registries.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": format!("r{i}")},
            "spec": {"configYAML": "sources:\n  - name: up\n    api:\n      endpoint: https://registry.example.com\nregistries:\n  - name: all\n    sources: [up]\n"}})).unwrap()).await.unwrap();
        proxies.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": format!("p{i}")},
            "spec": {"remoteUrl": format!("https://mcp{i}.example.com/mcp"), "groupRef": {"name": format!("g{i}")}, "toolConfigRef": {"name": format!("tc{i}")}}})).unwrap()).await.unwrap();
    }
    let servers: Api<MCPServer> = Api::namespaced(client.clone(), "default");
    eventually("every object converged despite faults", || async {
        let with_url = servers
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .filter(|s| s.status.as_ref().and_then(|s| s.url.as_ref()).is_some())
            .count();
        let proxies_done = proxies
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.url.as_ref()).is_some())
            .count();
        let registries_done = registries
            .list(&Default::default())
            .await
            .ok()?
            .items
            .iter()
            .filter(|r| {
                r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation
            })
            .count();
        (with_url == 50 && proxies_done == 5 && registries_done == 5).then_some(())
    })
    .await;
    eventually(
        "groups count their members, configs have hashes and finalizers",
        || async {
            let g = groups.list(&Default::default()).await.ok()?.items;
            let t = configs.list(&Default::default()).await.ok()?.items;
            let counted = g.iter().all(|g| {
                let s = g.status.as_ref();
                s.and_then(|s| s.server_count) == Some(10)
                    && s.and_then(|s| s.remote_proxy_count) == Some(1)
            });
            let hashed = t.iter().all(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.config_hash.as_ref())
                    .is_some()
                    && t.metadata.finalizers.as_ref().is_some_and(|f| f.len() == 1)
            });
            (counted && hashed).then_some(())
        },
    )
    .await;
    // Exactly one of each child per owner, of every kind: no duplicates from retried writes.
    for (kind, owners) in [("mcpserver", 50), ("mcpregistry", 5), ("mcpremoteproxy", 5)] {
        let children = count_children(&client, &format!("app.kubernetes.io/name={kind}")).await;
        for (child, n) in children {
            assert_eq!(n, owners, "{kind}: {n} {child} objects for {owners} owners");
        }
    }
    let failed = metrics.reconciles("MCPServer", "ApplyChild")
        + metrics.reconciles("MCPServer", "WriteStatus");
    assert!(
        failed > 5,
        "faults were injected and retried ({failed} failed reconciles)"
    );

    // Configs first: their deletion is held until the servers are gone too.
    configs
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    servers
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    registries
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    proxies
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    eventually("children garbage-collected", || async {
        server.collect_garbage();
        let children: usize = count_children(&client, "app.kubernetes.io/managed-by=mcp-operator")
            .await
            .into_iter()
            .map(|(_, n)| n)
            .sum();
        let left = children
            + servers.list(&Default::default()).await.ok()?.items.len()
            + configs.list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
}

/// How many objects of each child type carry `selector`'s labels.
async fn count_children(client: &Client, selector: &str) -> Vec<(&'static str, usize)> {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let lp = kube::api::ListParams::default().labels(selector);
    let ns = "default";
    let mut out = vec![
        (
            "Deployment",
            Api::<Deployment>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len(),
        ),
        (
            "Service",
            Api::<Service>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len(),
        ),
        (
            "ConfigMap",
            Api::<ConfigMap>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len(),
        ),
        (
            "ServiceAccount",
            Api::<ServiceAccount>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .unwrap()
                .items
                .len(),
        ),
    ];
    // Only the registries have RBAC children.
    let roles = Api::<Role>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
        .items
        .len();
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .list(&lp)
        .await
        .unwrap()
        .items
        .len();
    if selector.contains("mcpregistry") || selector.contains("managed-by") {
        out.push(("Role", roles));
        out.push(("RoleBinding", bindings));
    } else {
        assert_eq!(roles + bindings, 0, "{selector}: RBAC children");
    }
    out
}

#[tokio::test]
async fn group_reference_is_reported_and_follows_the_group() {
    let h = start(None).await;
    let c = &h.client;
    let mut obj = seed("mcpserver-fetch.yaml");
    obj["spec"]["groupRef"] = json!({"name": "research"});
    create_server(c, obj).await;
    let (_, missing) =
        wait_condition(c, "fetch", "GroupRefValidated", |c| c.status == "False").await;
    assert_eq!(missing.reason, "GroupRefNotFound");
    let groups: Api<mcp_operator::api::v1beta1::MCPGroup> = Api::namespaced(c.clone(), "default");
    groups
        .create(&PostParams::default(), &serde_json::from_value(json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup", "metadata": {"name": "research"}, "spec": {}})).unwrap())
        .await
        .unwrap();
    let (_, found) = wait_condition(c, "fetch", "GroupRefValidated", |c| c.status == "True").await;
    assert_eq!(found.reason, "GroupRefIsValid");
}

/// A telemetryConfigRef never holds the server (telemetry is not a security control): a missing
/// config is reported and the server still runs; once it exists, the condition turns True and
/// the status carries the config's hash, which follows edits of the config.
#[tokio::test]
async fn telemetry_reference_is_reported_and_never_holds_the_server() {
    let h = start(None).await;
    let c = &h.client;
    let mut obj = seed("mcpserver-fetch.yaml");
    obj["spec"]["telemetryConfigRef"] = json!({"name": "shared-otel", "serviceName": "fetch"});
    create_server(c, obj).await;
    let (_, missing) = wait_condition(c, "fetch", "TelemetryConfigRefValidated", |c| {
        c.status == "False"
    })
    .await;
    assert_eq!(missing.reason, "TelemetryConfigRefNotFound");
    assert!(
        missing.message.contains("runs without it"),
        "{}",
        missing.message
    );
    eventually("the Deployment, despite the missing config", || {
        get::<Deployment>(c, "default", "fetch")
    })
    .await;

    let configs: Api<MCPTelemetryConfig> = Api::namespaced(c.clone(), "default");
    let config: MCPTelemetryConfig = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPTelemetryConfig",
        "metadata": {"name": "shared-otel"},
        "spec": {"openTelemetry": {"endpoint": "collector:4318", "tracing": {"enabled": true}}}}))
    .unwrap();
    configs
        .create(&PostParams::default(), &config)
        .await
        .unwrap();
    let (_, found) = wait_condition(c, "fetch", "TelemetryConfigRefValidated", |c| {
        c.status == "True"
    })
    .await;
    assert_eq!(found.reason, "TelemetryConfigRefValid");
    let hash_now = || async {
        let s: MCPServer = get(c, "default", "fetch").await?;
        s.status?.telemetry_config_hash
    };
    let first = eventually("telemetryConfigHash", hash_now).await;
    // The hash of the spec as stored (with the schema's defaults filled in).
    let stored: MCPTelemetryConfig = get(c, "default", "shared-otel").await.unwrap();
    assert_eq!(first, frame::config_hash(&stored.spec));

    configs
        .patch(
            "shared-otel",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"openTelemetry": {"metrics": {"enabled": true}}}})),
        )
        .await
        .unwrap();
    eventually("a new telemetryConfigHash", || async {
        hash_now().await.filter(|h| *h != first)
    })
    .await;
}

/// The referenced MCPToolConfig's overrides are written into the bridge config, and changing
/// them rolls the pods (the MCPToolConfig watch reconciles the server; the checksum changes).
#[tokio::test]
async fn tool_config_overrides_reach_the_bridge_and_roll_pods() {
    let h = start(None).await;
    let c = &h.client;
    let tool_configs: Api<mcp_operator::api::v1beta1::MCPToolConfig> =
        Api::namespaced(c.clone(), "default");
    tool_configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
                "metadata": {"name": "renames"},
                "spec": {"toolsFilter": ["web_fetch"],
                         "toolsOverride": {"fetch": {"name": "web_fetch", "description": "Fetch a page"}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let mut obj = seed("mcpserver-fetch.yaml");
    obj["spec"]["toolConfigRef"] = json!({"name": "renames"});
    create_server(c, obj).await;
    let bridge_json = || async {
        let cm: ConfigMap = get(c, "default", "fetch-bridge-config").await?;
        let text = cm.data?.get("bridge.json")?.clone();
        serde_json::from_str::<serde_json::Value>(&text).ok()
    };
    let config = eventually("the bridge config", bridge_json).await;
    assert_eq!(config["tools"], json!(["web_fetch"]));
    assert_eq!(
        config["toolOverrides"],
        json!({"fetch": {"name": "web_fetch", "description": "Fetch a page"}})
    );
    let first: Deployment = eventually("Deployment", || get(c, "default", "fetch")).await;
    let before = checksum(&first);

    tool_configs
        .patch(
            "renames",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"toolsOverride": {"fetch": {"name": "web_fetch",
                "annotations": {"readOnlyHint": true}}}}}),
            ),
        )
        .await
        .unwrap();
    eventually("checksum after the MCPToolConfig change", || async {
        let d: Deployment = get(c, "default", "fetch").await?;
        (checksum(&d) != before).then_some(())
    })
    .await;
    let config = bridge_json().await.unwrap();
    assert_eq!(
        config["toolOverrides"]["fetch"]["annotations"],
        json!({"readOnlyHint": true})
    );
}

/// A toolConfigRef that names nothing, or a tool config the bridge would refuse, never becomes a
/// pod serving every tool: the MCPServer is Failed with the reason until the config is fixed.
#[tokio::test]
async fn missing_or_invalid_tool_configs_stop_the_rollout() {
    let h = start(None).await;
    let c = &h.client;
    let mut obj = seed("mcpserver-fetch.yaml");
    obj["spec"]["toolConfigRef"] = json!({"name": "later"});
    create_server(c, obj).await;
    let (phase, ready) =
        wait_condition(c, "fetch", "Ready", |c| c.reason == "ToolConfigNotFound").await;
    let message = ready.message;
    assert_eq!(phase.as_deref(), Some("Failed"));
    assert!(message.contains("\"later\" does not exist"), "{message}");
    assert!(get::<Deployment>(c, "default", "fetch").await.is_none());

    // Two tools served under one name: the admission core refuses it, so does the operator.
    let tool_configs: Api<mcp_operator::api::v1beta1::MCPToolConfig> =
        Api::namespaced(c.clone(), "default");
    tool_configs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
                "metadata": {"name": "later"},
                "spec": {"toolsOverride": {"a": {"name": "same"}, "b": {"name": "same"}}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let (_, ready) = wait_condition(c, "fetch", "Ready", |c| c.reason == "InvalidToolConfig").await;
    let message = ready.message;
    assert!(message.contains("spec.toolsOverride[b].name"), "{message}");
    assert!(get::<Deployment>(c, "default", "fetch").await.is_none());

    tool_configs
        .patch(
            "later",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"toolsOverride": {"b": {"name": "other"}}}})),
        )
        .await
        .unwrap();
    eventually("the Deployment once the config is valid", || {
        get::<Deployment>(c, "default", "fetch")
    })
    .await;
}

/// What the cluster shows of one MCPServer: its children (as JSON) and its status.
struct World {
    deployment: Option<serde_json::Value>,
    service: Option<serde_json::Value>,
    bridge_config: Option<serde_json::Value>,
    status: serde_json::Value,
}

impl World {
    fn condition(&self, type_: &str) -> Option<&serde_json::Value> {
        self.status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
    }
    fn ready_reason(&self) -> &str {
        self.condition("Ready")
            .and_then(|c| c["reason"].as_str())
            .unwrap_or_default()
    }
    fn mcp_container(&self) -> serde_json::Value {
        let containers = self
            .deployment
            .as_ref()
            .and_then(|d| d.pointer("/spec/template/spec/containers"))
            .and_then(|c| c.as_array())
            .cloned()
            .unwrap_or_default();
        containers
            .into_iter()
            .find(|c| c["name"] == "mcp")
            .unwrap_or_default()
    }
}

/// A change made to a converged MCPServer, or to its children by someone else.
enum Edit {
    /// Nothing: the case is about how the server first converges.
    Nothing,
    /// A merge patch of the MCPServer.
    Server(serde_json::Value),
    /// A merge patch of the Service by another field manager (`kubectl patch`).
    Service(serde_json::Value),
}

/// One row: a server (the fetch seed with `spec` merged in, `annotations` added), an edit once it
/// converged, and what must hold afterwards (`Err` says what does not, yet).
struct EditCase {
    name: &'static str,
    spec: serde_json::Value,
    annotations: serde_json::Value,
    edit: Edit,
    expect: fn(&World) -> Result<(), String>,
}

/// Absent, or a map or list with nothing in it (a real API server drops those on the way out).
fn empty(v: &serde_json::Value) -> bool {
    v.is_null()
        || v.as_object().is_some_and(|m| m.is_empty())
        || v.as_array().is_some_and(|a| a.is_empty())
}

/// Ready has `reason` and its message contains `needle`.
fn ready_says(w: &World, reason: &str, needle: &str) -> Result<(), String> {
    let message = w.condition("Ready").map(|c| c["message"].clone());
    check(
        w.ready_reason() == reason
            && message.is_some_and(|m| m.as_str().unwrap_or("").contains(needle)),
        format!("Ready {:?}", w.condition("Ready")),
    )
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn edit_cases() -> Vec<EditCase> {
    use serde_json::Value;
    vec![
        // Removed fields leave the children (issue 17, item 10).
        EditCase {
            name: "resources-removed",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"resources": null}})),
            expect: |w| {
                let r = &w.mcp_container()["resources"];
                check(
                    empty(&r["limits"]) && empty(&r["requests"]),
                    format!("resources still {r}"),
                )
            },
        },
        EditCase {
            name: "pod-template-removed",
            spec: json!({"podTemplateSpec": {"spec": {"nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"podTemplateSpec": null}})),
            expect: |w| {
                let pod = w
                    .deployment
                    .as_ref()
                    .and_then(|d| d.pointer("/spec/template/spec"))
                    .cloned()
                    .unwrap_or_default();
                check(
                    empty(&pod["nodeSelector"]) && empty(&pod["tolerations"]),
                    format!(
                        "nodeSelector {} tolerations {}",
                        pod["nodeSelector"], pod["tolerations"]
                    ),
                )
            },
        },
        EditCase {
            name: "overrides-removed",
            spec: json!({"resourceOverrides": {
                "proxyDeployment": {"labels": {"team": "a"}, "annotations": {"note": "d"}},
                "proxyService": {"labels": {"team": "a"}, "annotations": {"note": "s"}}}}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"resourceOverrides": null}})),
            expect: |w| {
                for child in [&w.deployment, &w.service] {
                    let meta = child.as_ref().map(|c| c["metadata"].clone());
                    let meta = meta.unwrap_or_default();
                    check(
                        meta["labels"].get("team").is_none()
                            && meta["annotations"].get("note").is_none(),
                        format!(
                            "labels {} annotations {}",
                            meta["labels"], meta["annotations"]
                        ),
                    )?;
                }
                Ok(())
            },
        },
        EditCase {
            name: "stopped-then-unset",
            spec: json!({"replicas": 0}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"replicas": null}})),
            expect: |w| {
                let replicas = w.deployment.as_ref().map(|d| d["spec"]["replicas"].clone());
                check(
                    replicas == Some(json!(1)) && w.status["phase"] != "Stopped",
                    format!("replicas {replicas:?}, phase {}", w.status["phase"]),
                )
            },
        },
        // The Service's selector and ports are ours whole (item 11).
        EditCase {
            name: "extra-selector-key",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Service(json!({"spec": {"selector": {"tier": "none"}}})),
            expect: |w| {
                let selector = w.service.as_ref().map(|s| s["spec"]["selector"].clone());
                check(
                    selector
                        == Some(json!({"app.kubernetes.io/instance": "extra-selector-key",
                                   "app.kubernetes.io/name": "mcpserver"})),
                    format!("selector {selector:?}"),
                )
            },
        },
        EditCase {
            name: "extra-port",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Service(json!({"spec": {"ports": [
                {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
                {"name": "debug", "port": 9999, "targetPort": 9999, "protocol": "TCP"}]}})),
            expect: |w| {
                let ports = w.service.as_ref().map(|s| s["spec"]["ports"].clone());
                let names: Vec<Value> = ports
                    .iter()
                    .flat_map(|p| p.as_array().cloned().unwrap_or_default())
                    .map(|p| p["name"].clone())
                    .collect();
                check(names == [json!("http")], format!("ports {ports:?}"))
            },
        },
        // Two allow-lists with nothing in common serve nothing, never everything (item 9): the
        // running pods keep their filtered config, the server is Failed with the reason.
        EditCase {
            name: "disjoint-allow-lists",
            spec: json!({"tools": ["fetch"], "toolConfigRef": {"name": "only-fetch"}}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"toolConfigRef": {"name": "only-other"}}})),
            expect: |w| {
                let tools = w.bridge_config.as_ref().map(|c| c["tools"].clone());
                check(
                    w.ready_reason() == "NoToolsAllowed" && w.status["phase"] == "Failed",
                    format!("Ready reason {:?}", w.ready_reason()),
                )?;
                check(
                    tools == Some(json!(["fetch"])),
                    format!("bridge tools {tools:?}"),
                )
            },
        },
        EditCase {
            name: "disjoint-from-the-start",
            spec: json!({"tools": ["fetch"], "toolConfigRef": {"name": "only-other"}}),
            annotations: json!({}),
            edit: Edit::Nothing,
            expect: |w| {
                check(
                    w.ready_reason() == "NoToolsAllowed" && w.deployment.is_none(),
                    format!(
                        "Ready reason {:?}, deployment {}",
                        w.ready_reason(),
                        w.deployment.is_some()
                    ),
                )
            },
        },
        // Missing Secrets and keys are reported (item 14).
        EditCase {
            name: "secret-missing",
            spec: json!({"secrets": [{"name": "nowhere", "key": "token"}]}),
            annotations: json!({}),
            edit: Edit::Nothing,
            expect: |w| ready_says(w, "SecretNotFound", "\"nowhere\" does not exist"),
        },
        EditCase {
            name: "secret-key-missing",
            spec: json!({"secrets": [{"name": "present", "key": "other"}]}),
            annotations: json!({}),
            edit: Edit::Nothing,
            expect: |w| ready_says(w, "SecretNotFound", "no key \"other\""),
        },
        EditCase {
            name: "secret-present",
            spec: json!({"secrets": [{"name": "present", "key": "token"}]}),
            annotations: json!({}),
            edit: Edit::Nothing,
            expect: |w| {
                check(
                    w.ready_reason() == "NotReady",
                    format!("Ready {:?}", w.condition("Ready")),
                )
            },
        },
        // A Failed server whose Service still serves keeps its url and conditions.
        EditCase {
            name: "failed-keeps-url",
            spec: json!({"groupRef": {"name": "research"}}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"toolConfigRef": {"name": "not-there"}}})),
            expect: |w| {
                check(
                    w.status["phase"] == "Failed" && w.ready_reason() == "ToolConfigNotFound",
                    format!("phase {}", w.status["phase"]),
                )?;
                check(
                    w.status["url"].is_string(),
                    format!("url {}", w.status["url"]),
                )?;
                check(
                    w.condition("ImageResolved").is_some()
                        && w.condition("GroupRefValidated").is_some(),
                    format!("conditions {}", w.status["conditions"]),
                )
            },
        },
        // Inline OIDC asked for at v1alpha1: nothing of ours serves it (item 15).
        EditCase {
            name: "inline-oidc",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Server(json!({"metadata": {"annotations": {
                "toolhive.stacklok.dev/v1alpha1-oidcConfig":
                    "{\"type\":\"kubernetes\",\"kubernetes\":{\"audience\":\"toolhive\"}}"}}})),
            expect: |w| {
                let accepted = w.condition("Accepted").cloned().unwrap_or_default();
                check(
                    accepted["status"] == "False"
                        && accepted["reason"] == "AuthenticationNotSupported"
                        && accepted["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("spec.oidcConfigRef")),
                    format!("Accepted {accepted}"),
                )?;
                check(
                    w.deployment.is_none() && w.service.is_none() && w.status["url"].is_null(),
                    format!(
                        "deployment {}, service {}, url {}",
                        w.deployment.is_some(),
                        w.service.is_some(),
                        w.status["url"]
                    ),
                )
            },
        },
        // Auth that cannot be resolved holds the server (issue 13): one row per kind of
        // reference, each naming a config that does not exist; each is added to a running
        // server, which must stop serving rather than serve without it.
        EditCase {
            name: "oidc-config-ref-missing-holds",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Server(
                json!({"spec": {"oidcConfigRef": {"name": "idp", "audience": "fetch"}}}),
            ),
            expect: |w| held_for_auth(w, "OIDCConfigRefNotFound", "spec.oidcConfigRef"),
        },
        EditCase {
            name: "authz-config-inline-without-oidc-holds",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"authzConfig": {"type": "inline",
                "inline": {"policies": ["permit(principal, action, resource);"]}}}})),
            expect: |w| held_for_auth(w, "AuthzNeedsAuthentication", "spec.authzConfig"),
        },
        EditCase {
            name: "authz-config-ref-missing-holds",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"authzConfigRef": {"name": "policies"}}})),
            expect: |w| held_for_auth(w, "AuthzConfigRefNotFound", "spec.authzConfigRef"),
        },
        EditCase {
            name: "external-auth-config-ref-missing-holds",
            spec: json!({}),
            annotations: json!({}),
            edit: Edit::Server(json!({"spec": {"externalAuthConfigRef": {"name": "token"}}})),
            expect: |w| {
                held_for_auth(
                    w,
                    "ExternalAuthConfigNotFound",
                    "spec.externalAuthConfigRef",
                )
            },
        },
        // Audit alone asks for no authentication: the server runs, its bridge writing events.
        EditCase {
            name: "audit-alone-runs",
            spec: json!({"audit": {"enabled": true}}),
            annotations: json!({}),
            edit: Edit::Nothing,
            expect: |w| {
                check(
                    w.deployment.is_some()
                        && w.bridge_config.as_ref().map(|c| &c["auth"])
                            == Some(&json!({"audit": {"enabled": true}})),
                    format!(
                        "deployment {}, bridge config {:?}",
                        w.deployment.is_some(),
                        w.bridge_config
                    ),
                )
            },
        },
        EditCase {
            name: "oidc-absent-marker",
            spec: json!({}),
            annotations: json!({"toolhive.stacklok.dev/v1alpha1-oidcConfig": "<absent>"}),
            edit: Edit::Nothing,
            expect: |w| {
                check(
                    w.deployment.is_some() && w.status["url"].is_string(),
                    "not deployed",
                )
            },
        },
    ]
}

/// A server held because the auth `field` asks for cannot be given: no Deployment, no
/// Service, no url, and Ready says why (`reason`) and names the field.
fn held_for_auth(w: &World, reason: &str, field: &str) -> Result<(), String> {
    let ready = w.condition("Ready").cloned().unwrap_or_default();
    let message = ready["message"].as_str().unwrap_or_default();
    check(
        ready["status"] == "False" && ready["reason"] == reason && message.contains(field),
        format!("Ready {ready}"),
    )?;
    check(
        w.deployment.is_none() && w.service.is_none() && w.status["url"].is_null(),
        format!(
            "deployment {}, service {}, url {}",
            w.deployment.is_some(),
            w.service.is_some(),
            w.status["url"]
        ),
    )
}

async fn world(c: &Client, name: &str) -> Option<World> {
    let server: MCPServer = get(c, "default", name).await?;
    let status = serde_json::to_value(server.status?).ok()?;
    let deployment = get::<Deployment>(c, "default", name)
        .await
        .map(|d| serde_json::to_value(d).unwrap());
    let service = get::<Service>(c, "default", &format!("mcp-{name}-proxy"))
        .await
        .map(|s| serde_json::to_value(s).unwrap());
    let bridge_config = get::<ConfigMap>(c, "default", &format!("{name}-bridge-config"))
        .await
        .and_then(|cm| serde_json::from_str(cm.data?.get("bridge.json")?).ok());
    Some(World {
        deployment,
        service,
        bridge_config,
        status,
    })
}

/// Every row of [`edit_cases`] on one cluster: converge, edit, then wait for the expectation.
#[tokio::test]
async fn edits_reach_the_children_and_the_status() {
    let h = start(None).await;
    let c = &h.client;
    for (name, filter) in [("only-fetch", "fetch"), ("only-other", "other")] {
        Api::<mcp_operator::api::v1beta1::MCPToolConfig>::namespaced(c.clone(), "default")
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
                "metadata": {"name": name}, "spec": {"toolsFilter": [filter]}}))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    Api::<mcp_operator::api::v1beta1::MCPGroup>::namespaced(c.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup",
            "metadata": {"name": "research"}, "spec": {}}))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<Secret>::namespaced(c.clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
            "metadata": {"name": "present"}, "stringData": {"token": "t"}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let cases = edit_cases();
    for case in &cases {
        let mut obj = seed("mcpserver-fetch.yaml");
        obj["metadata"]["name"] = json!(case.name);
        obj["metadata"]["annotations"] = case.annotations.clone();
        for (k, v) in case.spec.as_object().unwrap() {
            obj["spec"][k] = v.clone();
        }
        create_server(c, obj).await;
    }
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), "default");
    for case in &cases {
        if matches!(case.edit, Edit::Nothing) {
            continue;
        }
        // Converged first: the children exist and the status is for this generation.
        eventually(&format!("{}: converged", case.name), || async {
            let w = world(c, case.name).await?;
            let s: MCPServer = get(c, "default", case.name).await?;
            (w.deployment.is_some()
                && w.service.is_some()
                && w.status["observedGeneration"] == json!(s.metadata.generation))
            .then_some(())
        })
        .await;
        match &case.edit {
            Edit::Server(patch) => {
                servers
                    .patch(case.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
            }
            Edit::Service(patch) => {
                Api::<Service>::namespaced(c.clone(), "default")
                    .patch(
                        &format!("mcp-{}-proxy", case.name),
                        &PatchParams {
                            field_manager: Some("kubectl-patch".into()),
                            ..PatchParams::default()
                        },
                        &Patch::Merge(patch),
                    )
                    .await
                    .unwrap();
            }
            Edit::Nothing => {}
        }
    }
    // All rows are waited for together, and every one still failing is named at the end.
    let mut pending: Vec<&EditCase> = cases.iter().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut failing = Vec::new();
        for case in pending {
            let verdict = match world(c, case.name).await {
                Some(w) => (case.expect)(&w),
                None => Err("no status yet".into()),
            };
            if let Err(why) = verdict {
                failing.push((case, why));
            }
        }
        if failing.is_empty() {
            break;
        }
        let report: Vec<String> = failing
            .iter()
            .map(|(case, why)| format!("{}: {why}", case.name))
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} rows failed:\n{}",
            report.len(),
            cases.len(),
            report.join("\n")
        );
        pending = failing.into_iter().map(|(case, _)| case).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A Failed MCPServer can be alerted on: the per-phase gauge counts the Failed rows.
    let mut registry = prometheus_client::registry::Registry::default();
    h.metrics.register(&mut registry);
    let failed = cases
        .iter()
        .filter(|c| {
            matches!(
                c.name,
                "disjoint-allow-lists"
                    | "disjoint-from-the-start"
                    | "failed-keeps-url"
                    | "inline-oidc"
                    | "oidc-config-ref-missing-holds"
                    | "authz-config-inline-without-oidc-holds"
                    | "authz-config-ref-missing-holds"
                    | "external-auth-config-ref-missing-holds"
            )
        })
        .count();
    let line = format!("mcp_operator_mcpservers{{phase=\"Failed\"}} {failed}");
    eventually(&line, || async {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).ok()?;
        text.contains(&line).then_some(())
    })
    .await;
}
