//! End to end: the real `kubectl` against the in-memory API server, which calls our admission
//! and conversion webhooks over TLS exactly as configured for a cluster (Service references,
//! caBundle). Needs scripts/install-kube-tools.sh (the test says so when kubectl is missing).

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use mcp_operator::api::crd;
use mcp_operator::webhook::config::{
    mutating_configuration, validating_configuration, ConfigOptions,
};
use mcp_operator::webhook::server::{start, RunningServer, ServerOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer};

const NAMESPACE: &str = "mcp-operator-system";
const SERVICE: &str = "mcp-operator-webhook";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn kubectl_path() -> PathBuf {
    let p = root().join(".tools/bin/kubectl");
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-test-deps.sh first",
        p.display()
    );
    p
}

struct Cluster {
    server: TestApiServer,
    _webhook: RunningServer,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    _controller: tokio::task::JoinHandle<()>,
}

impl Cluster {
    async fn kubectl(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(kubectl_path())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output();
        tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .expect("kubectl hung")
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args).await;
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

/// The API server, our webhook server (admission + conversion), CRDs converting through it,
/// and the webhook configurations the chart would install.
async fn cluster() -> Cluster {
    mcp_operator::crypto::install_provider();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let ca = mcp_operator::webhook::certs::generate_ca(
        "e2e CA",
        mcp_operator::webhook::certs::CA_VALIDITY,
    )
    .unwrap();
    let dns = format!("{SERVICE}.{NAMESPACE}.svc");
    let pair = ca
        .issue_serving(&[dns, "localhost".into()], Duration::from_secs(3600))
        .unwrap();
    mcp_operator::webhook::certs::write_cert_dir(&certs, &ca, &pair, true).unwrap();
    let ca_pem = std::fs::read(certs.join("ca.crt")).unwrap();

    let server = TestApiServer::start(Options::default()).await.unwrap();
    let client = server.client().unwrap();
    let mut options = ServerOptions::new(certs.clone(), "127.0.0.1:0".parse().unwrap());
    options.conversion = Some(mcp_operator::webhook::conversion::handler());
    options.lookup = Some(std::sync::Arc::new(
        mcp_operator::webhook::lookup::KubeLookup::new(client.clone()),
    ));
    let webhook = start(options).await.unwrap();
    server.set_service(
        &format!("{NAMESPACE}/{SERVICE}"),
        &format!("127.0.0.1:{}", webhook.addr().port()),
    );

    for ns in [NAMESPACE, "toolhive-system"] {
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        let hook = c
            .spec
            .conversion
            .as_mut()
            .unwrap()
            .webhook
            .as_mut()
            .unwrap();
        hook.client_config.as_mut().unwrap().ca_bundle =
            Some(k8s_openapi::ByteString(ca_pem.clone()));
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    let mut config = ConfigOptions::new(SERVICE, NAMESPACE);
    config.ca_bundle = Some(ca_pem);
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating_configuration(&config))
        .await
        .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating_configuration(&config))
        .await
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    // The operator's controller, as `run` starts it on the leader.
    let resolver =
        mcp_operator::controller::resolve::StaticResolver::new(std::collections::HashMap::from([
            (
                "docker.io/mcp/fetch".to_string(),
                vec!["mcp-server-fetch".to_string()],
            ),
            (
                "ghcr.io/github/github-mcp-server".to_string(),
                vec!["github-mcp-server".to_string(), "stdio".to_string()],
            ),
        ]));
    let settings = mcp_operator::controller::mcpserver::Settings {
        bridge_image: "example.com/mcp-operator:e2e".into(),
        ..Default::default()
    };
    let controller = tokio::spawn(mcp_operator::controller::mcpserver::run(
        client,
        None,
        settings,
        std::sync::Arc::new(resolver),
        Default::default(),
    ));
    Cluster {
        server,
        _webhook: webhook,
        kubeconfig,
        _dir: dir,
        _controller: controller,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_goes_through_our_webhooks() {
    let c = cluster().await;
    let seeds = root().join("examples/seed");
    let out = c
        .ok(&["apply", "--validate=false", "-f", seeds.to_str().unwrap()])
        .await;
    assert!(
        out.contains("mcpserver.toolhive.stacklok.dev/github created"),
        "{out}"
    );
    assert!(
        out.contains("mcpregistry.toolhive.stacklok.dev/my-registry created"),
        "{out}"
    );
    assert!(
        out.contains("Warning: spec.mcpPort: ignored for transport stdio"),
        "warnings reach kubectl: {out}"
    );

    // The controller made every child with the documented names.
    for (kind, name) in [
        ("deployment", "github"),
        ("service", "mcp-github-proxy"),
        ("serviceaccount", "github-sa"),
        ("configmap", "github-bridge-config"),
    ] {
        let mut found = false;
        for _ in 0..100 {
            if c.kubectl(&["get", kind, name, "-n", "toolhive-system"])
                .await
                .status
                .success()
            {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found, "{kind}/{name} was not created");
    }
    let deployment: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "deployment",
            "github",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0]["valueFrom"]["secretKeyRef"]["name"], "github-token",
        "{env}"
    );
    let url = c.ok(&["wait", "--for=jsonpath={.status.url}=http://mcp-github-proxy.toolhive-system.svc.cluster.local:8080/mcp", "mcpserver/github", "-n", "toolhive-system", "--timeout=20s"]).await;
    assert!(url.contains("condition met"), "{url}");

    // The mutating webhook filled in upstream's defaults.
    let github: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpserver",
            "github",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(github["spec"]["transport"], "stdio");
    assert_eq!(github["spec"]["proxyPort"], 8080);
    assert_eq!(github["spec"]["sessionAffinity"], "ClientIP");

    // Errors the schema can say, the API server says itself (before any validating webhook).
    let bad = c._dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: bad, namespace: default}\nspec:\n  image: docker.io/mcp/fetch\n  transport: grpc\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("spec.transport: Unsupported value: \"grpc\""),
        "{err}"
    );

    // What only we can say, our webhook says: refused by kubectl apply, field and reason.
    std::fs::write(&bad, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: bad, namespace: default}\nspec:\n  image: docker.io/mcp/fetch\n  env: [{name: MY VAR, value: x}]\n  secrets: [{name: tok, key: token, targetEnvName: MY VAR}]\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // kubectl prints a 422 with causes one field per line (its message, which names the
    // webhook, is shown only for denials without causes).
    assert!(err.contains("The MCPServer \"bad\" is invalid"), "{err}");
    assert!(
        err.contains("* spec.env[0].name: Invalid value: \"MY VAR\""),
        "{err}"
    );
    assert!(
        err.contains("collides with an entry of spec.env"),
        "only our webhook says this: {err}"
    );
    assert!(c
        .server
        .stored_object("toolhive.stacklok.dev", "mcpservers", "default", "bad")
        .is_none());

    // A registry whose config names a source it does not define never gets stored.
    let reg = c._dir.path().join("reg.yaml");
    std::fs::write(&reg, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRegistry\nmetadata: {name: reg, namespace: default}\nspec:\n  configYAML: |\n    sources: [{name: a, api: {endpoint: 'https://r.example.com'}}]\n    registries: [{name: all, sources: [a, b]}]\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", reg.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("registries[0].sources[1]: unknown source \"b\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A missing Secret is a warning, not a denial (GitOps applies in any order).
    let good = c._dir.path().join("good.yaml");
    std::fs::write(&good, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: good, namespace: default}\nspec:\n  image: docker.io/mcp/fetch\n  secrets: [{name: not-yet, key: token, targetEnvName: TOKEN}]\n").unwrap();
    let out = c
        .ok(&["apply", "--validate=false", "-f", good.to_str().unwrap()])
        .await;
    assert!(out.contains("Warning:") && out.contains("not-yet"), "{out}");

    // Printer columns.
    let table = c.ok(&["get", "mcpservers", "-A"]).await;
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "STATUS", "READY", "REPLICAS", "URL", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_objects_are_stored_new_and_read_at_both_versions() {
    let c = cluster().await;
    let old = root().join("examples/v1alpha1/mcpserver-old.yaml");
    let out = c
        .ok(&["apply", "--validate=false", "-f", old.to_str().unwrap()])
        .await;
    assert!(
        out.contains("mcpserver.toolhive.stacklok.dev/time created"),
        "{out}"
    );
    assert!(
        out.contains("Warning:"),
        "the deprecated version warns: {out}"
    );

    // Stored at v1beta1, converted by our webhook.
    let stored = c
        .server
        .stored_object(
            "toolhive.stacklok.dev",
            "mcpservers",
            "toolhive-system",
            "time",
        )
        .unwrap();
    assert_eq!(stored["apiVersion"], "toolhive.stacklok.dev/v1beta1");
    assert_eq!(stored["spec"]["proxyPort"], 9090);
    assert_eq!(stored["spec"]["groupRef"]["name"], "research");

    // Its inline oidcConfig (kept in the stash) is not enforced by the data path: the operator
    // holds it and runs nothing, rather than serving it unauthenticated (issue 17, item 15).
    let held = c
        .ok(&[
            "wait",
            "--for=jsonpath={.status.conditions[?(@.type==\"Accepted\")].reason}=AuthenticationNotSupported",
            "mcpserver/time",
            "-n",
            "toolhive-system",
            "--timeout=20s",
        ])
        .await;
    assert!(held.contains("condition met"), "{held}");
    let deployments = c
        .ok(&["get", "deployments", "-n", "toolhive-system", "-o", "name"])
        .await;
    assert!(
        !deployments.contains("deployment.apps/time"),
        "{deployments}"
    );

    // Read back at the old version: the old shape, whole.
    let alpha: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpservers.v1alpha1.toolhive.stacklok.dev",
            "time",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(alpha["apiVersion"], "toolhive.stacklok.dev/v1alpha1");
    assert_eq!(alpha["spec"]["port"], 9090);
    assert_eq!(alpha["spec"]["targetPort"], 3000);
    assert_eq!(alpha["spec"]["groupRef"], "research");
    assert_eq!(
        alpha["spec"]["oidcConfig"]["kubernetes"]["audience"],
        "time-server"
    );
    assert!(
        alpha["metadata"]["annotations"]
            .get("toolhive.stacklok.dev/v1alpha1-port")
            .is_none(),
        "stash annotations never show at v1alpha1"
    );

    // And at the new version.
    let beta: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpservers.v1beta1.toolhive.stacklok.dev",
            "time",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(beta["spec"]["mcpPort"], 3000);
    assert!(beta["spec"].get("port").is_none());

    // An edit at the old version keeps every other field.
    c.ok(&[
        "patch",
        "mcpservers.v1alpha1.toolhive.stacklok.dev",
        "time",
        "-n",
        "toolhive-system",
        "--type=merge",
        "-p",
        r#"{"spec":{"tools":["get_current_time"]}}"#,
    ])
    .await;
    let alpha: Value = serde_json::from_str(
        &c.ok(&[
            "get",
            "mcpservers.v1alpha1.toolhive.stacklok.dev",
            "time",
            "-n",
            "toolhive-system",
            "-o",
            "json",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(alpha["spec"]["tools"], json!(["get_current_time"]));
    assert_eq!(alpha["spec"]["port"], 9090);
    assert_eq!(
        alpha["spec"]["telemetry"]["openTelemetry"]["endpoint"],
        "otel-collector.monitoring:4317"
    );
}

/// The address guard at admission: a remote proxy pointed at the cloud metadata service is
/// refused by `kubectl apply`, field and reason, and never stored; a public one is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_refuses_a_remote_proxy_to_the_metadata_service() {
    let c = cluster().await;
    let file = c._dir.path().join("rp.yaml");
    std::fs::write(&file, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRemoteProxy\nmetadata: {name: meta, namespace: default}\nspec:\n  remoteUrl: http://169.254.169.254/\n").unwrap();
    let o = c
        .kubectl(&["apply", "--validate=false", "-f", file.to_str().unwrap()])
        .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("The MCPRemoteProxy \"meta\" is invalid"),
        "{err}"
    );
    assert!(
        err.contains("spec.remoteUrl: Forbidden") && err.contains("169.254.169.254 is link-local"),
        "{err}"
    );
    assert!(c
        .server
        .stored_object(
            "toolhive.stacklok.dev",
            "mcpremoteproxies",
            "default",
            "meta"
        )
        .is_none());

    std::fs::write(&file, "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRemoteProxy\nmetadata: {name: docs, namespace: default}\nspec:\n  remoteUrl: https://mcp.docs.example.com/mcp\n").unwrap();
    let out = c
        .ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()])
        .await;
    assert!(
        out.contains("mcpremoteproxy.toolhive.stacklok.dev/docs created"),
        "{out}"
    );
}
