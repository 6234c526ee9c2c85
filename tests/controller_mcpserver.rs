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
use mcp_operator::api::v1beta1::MCPServer;
use mcp_operator::controller::children::CONFIG_CHECKSUM;
use mcp_operator::controller::credentials::PullCredentials;
use mcp_operator::controller::mcpserver::{self, Settings};
use mcp_operator::controller::metrics::ControllerMetrics;
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
    let _controller = tokio::spawn(mcpserver::run(
        flaky(client.clone(), 7),
        None,
        settings,
        Arc::new(StaticResolver::default()),
        metrics.clone(),
    ));

    for i in 0..50 {
        create_server(&client, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": format!("f{i}"), "namespace": "default"}, "spec": {"image": "docker.io/mcp/fetch", "command": ["mcp-server-fetch"]}})).await;
    }
    let servers: Api<MCPServer> = Api::namespaced(client.clone(), "default");
    eventually("50 converged despite faults", || async {
        let list = servers.list(&Default::default()).await.ok()?;
        let done = list
            .items
            .iter()
            .filter(|s| s.status.as_ref().and_then(|s| s.url.as_ref()).is_some())
            .count();
        (done == 50).then_some(())
    })
    .await;
    let managed =
        kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=mcp-operator");
    let deployments = Api::<Deployment>::namespaced(client.clone(), "default")
        .list(&managed)
        .await
        .unwrap();
    assert_eq!(
        deployments.items.len(),
        50,
        "one Deployment per MCPServer, none duplicated"
    );
    for kind_count in [
        Api::<Service>::namespaced(client.clone(), "default")
            .list(&managed)
            .await
            .unwrap()
            .items
            .len(),
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .list(&managed)
            .await
            .unwrap()
            .items
            .len(),
        Api::<ServiceAccount>::namespaced(client.clone(), "default")
            .list(&managed)
            .await
            .unwrap()
            .items
            .len(),
    ] {
        assert_eq!(kind_count, 50);
    }
    let failed = metrics.reconciles("MCPServer", "ApplyChild")
        + metrics.reconciles("MCPServer", "WriteStatus");
    assert!(
        failed > 5,
        "faults were injected and retried ({failed} failed reconciles)"
    );

    servers
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    eventually("children garbage-collected", || async {
        server.collect_garbage();
        let left = Api::<Deployment>::namespaced(client.clone(), "default")
            .list(&managed)
            .await
            .ok()?
            .items
            .len()
            + Api::<Service>::namespaced(client.clone(), "default")
                .list(&managed)
                .await
                .ok()?
                .items
                .len()
            + Api::<ConfigMap>::namespaced(client.clone(), "default")
                .list(&managed)
                .await
                .ok()?
                .items
                .len()
            + Api::<ServiceAccount>::namespaced(client.clone(), "default")
                .list(&managed)
                .await
                .ok()?
                .items
                .len()
            + servers.list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
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
