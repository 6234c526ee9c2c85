//! Two `mcp-operator run` processes against one API server: one reconciles, killing it hands
//! the lease over within its duration, and both serve webhooks and probes the whole time.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use mcp_operator::api::crd;
use mcp_operator::api::v1beta1::MCPServer;
use mcp_operator::webhook::config::{
    mutating_configuration, validating_configuration, ConfigOptions,
};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_apiserver::{Options, TestApiServer};

const LEASE_SECONDS: u64 = 3;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Operator {
    child: Child,
    metrics: u16,
    health: u16,
    webhook: u16,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_operator(kubeconfig: &Path, certs: &Path) -> Operator {
    spawn_operator_with(kubeconfig, certs, &["--leader-elect"])
}

fn spawn_operator_with(kubeconfig: &Path, certs: &Path, extra: &[&str]) -> Operator {
    let (metrics, health, webhook) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["run", "--no-registry-lookup", "--log-format", "text"])
        .args(extra)
        .args(["--lease-duration-seconds", &LEASE_SECONDS.to_string()])
        .args(["--image-command", "docker.io/mcp/fetch=mcp-server-fetch"])
        .arg("--cert-dir")
        .arg(certs)
        .args(["--webhook-bind-address", &format!("127.0.0.1:{webhook}")])
        .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics}")])
        .args([
            "--health-probe-bind-address",
            &format!("127.0.0.1:{health}"),
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", "mcp-operator-system")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Operator {
        child,
        metrics,
        health,
        webhook,
    }
}

async fn get(url: String) -> Option<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let r = client.get(url).send().await.ok()?;
    r.status().is_success().then_some(())?;
    r.text().await.ok()
}

async fn is_leader(op: &Operator) -> Option<bool> {
    let text = get(format!("http://127.0.0.1:{}/metrics", op.metrics)).await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("mcp_operator_leader "))?;
    Some(line.ends_with(" 1"))
}

async fn ready(op: &Operator) -> bool {
    get(format!("http://127.0.0.1:{}/readyz", op.health))
        .await
        .is_some()
}

/// A real AdmissionReview over TLS, trusting the test CA.
async fn webhook_answers(op: &Operator, ca: &[u8]) -> bool {
    let cert = reqwest::Certificate::from_pem(ca).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "toolhive.stacklok.dev", "version": "v1beta1", "kind": "MCPServer"},
        "resource": {"group": "toolhive.stacklok.dev", "version": "v1beta1", "resource": "mcpservers"},
        "operation": "CREATE", "name": "x", "namespace": "default", "userInfo": {},
        "object": {"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": "x", "namespace": "default"}, "spec": {"image": "docker.io/mcp/fetch", "transport": "grpc"}}
    }});
    let url = format!(
        "https://localhost:{}/validate-toolhive-stacklok-dev-v1beta1-mcpserver",
        op.webhook
    );
    let Ok(resp) = client.post(url).json(&review).send().await else {
        return false;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    body["response"]["allowed"] == false
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

async fn create(client: &kube::Client, name: &str) {
    let server: MCPServer = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"image": "docker.io/mcp/fetch", "transport": "stdio", "proxyPort": 8080, "proxyMode": "streamable-http", "sessionAffinity": "ClientIP"}
    }))
    .unwrap();
    Api::<MCPServer>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &server)
        .await
        .unwrap();
}

/// Our CRDs (with or without their conversion webhook) and the two namespaces.
async fn install_crds(client: &kube::Client, conversion: bool) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        if !conversion {
            c.spec.conversion = None;
        }
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    for ns in ["default", "mcp-operator-system"] {
        let _ = Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await;
    }
}

#[tokio::test]
async fn one_leader_reconciles_and_hands_over_when_killed() {
    mcp_operator::crypto::install_provider();
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let client = server.client().unwrap();
    install_crds(&client, false).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let certs = dir.path().join("certs");
    let status = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["certs", "--dns-name", "localhost", "--out"])
        .arg(&certs)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();

    let a = spawn_operator(&kubeconfig, &certs);
    let b = spawn_operator(&kubeconfig, &certs);
    let mut ops = vec![a, b];
    wait_for("both ready", Duration::from_secs(30), || async {
        ready(&ops[0]).await && ready(&ops[1]).await
    })
    .await;
    wait_for("a leader", Duration::from_secs(20), || async {
        is_leader(&ops[0]).await == Some(true) || is_leader(&ops[1]).await == Some(true)
    })
    .await;
    let leaders = [is_leader(&ops[0]).await, is_leader(&ops[1]).await];
    assert_eq!(
        leaders.iter().filter(|l| **l == Some(true)).count(),
        1,
        "exactly one leader: {leaders:?}"
    );
    for op in &ops {
        assert!(
            webhook_answers(op, &ca).await,
            "every replica serves the webhooks"
        );
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    create(&client, "first").await;
    wait_for("first reconciled", Duration::from_secs(20), || async {
        deployments.get_opt("first").await.ok().flatten().is_some()
    })
    .await;

    // Kill the leader without letting it release the lease.
    let leader_index = if leaders[0] == Some(true) { 0 } else { 1 };
    let mut leader = ops.remove(leader_index);
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let survivor = &ops[0];
    let took = wait_for(
        "hand-over",
        Duration::from_secs(LEASE_SECONDS * 3),
        || async { is_leader(survivor).await == Some(true) },
    )
    .await;
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 2),
        "hand-over took {took:?}, lease is {LEASE_SECONDS}s"
    );
    assert!(webhook_answers(survivor, &ca).await);
    assert!(ready(survivor).await);

    create(&client, "second").await;
    wait_for(
        "second reconciled by the new leader",
        Duration::from_secs(20),
        || async { deployments.get_opt("second").await.ok().flatten().is_some() },
    )
    .await;
}

/// No cert-manager: `run --self-signed` creates the shared CA and serving pair, patches every
/// caBundle, and the API server then admits and converts through it.
#[tokio::test]
async fn self_signed_run_bootstraps_the_webhooks_from_nothing() {
    mcp_operator::crypto::install_provider();
    let server = TestApiServer::start(Options::default()).await.unwrap();
    let client = server.client().unwrap();
    install_crds(&client, true).await;
    let options = ConfigOptions::new("mcp-operator-webhook", "mcp-operator-system");
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &validating_configuration(&options))
        .await
        .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mutating_configuration(&options))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let certs = dir.path().join("certs-written-by-the-operator");

    let op = spawn_operator_with(&kubeconfig, &certs, &["--self-signed"]);
    server.set_service(
        "mcp-operator-system/mcp-operator-webhook",
        &format!("127.0.0.1:{}", op.webhook),
    );
    wait_for("ready", Duration::from_secs(30), || ready(&op)).await;

    let secret = Api::<Secret>::namespaced(client.clone(), "mcp-operator-system")
        .get("mcp-operator-webhook-certs")
        .await
        .expect("the shared pair is stored for every replica");
    let ca = secret.data.unwrap()["ca.crt"].0.clone();
    for webhook in Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("mcp-operator")
        .await
        .unwrap()
        .webhooks
        .unwrap()
    {
        assert_eq!(
            webhook.client_config.ca_bundle.unwrap().0,
            ca,
            "{}",
            webhook.name
        );
    }
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get("mcpservers.toolhive.stacklok.dev")
        .await
        .unwrap();
    let conversion = crd.spec.conversion.unwrap().webhook.unwrap();
    assert_eq!(conversion.client_config.unwrap().ca_bundle.unwrap().0, ca);

    // The API server trusts the new CA: a bad spec is refused by our validating webhook...
    let servers = Api::<MCPServer>::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gh", "namespace": "default"}, "stringData": {"token": "t0ps3cret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let bad: MCPServer = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {"image": "docker.io/mcp/fetch", "secrets": [{"name": "gh", "key": "tokn"}]}
    }))
    .unwrap();
    let refused = servers.create(&PostParams::default(), &bad).await;
    let Err(kube::Error::Api(status)) = refused else {
        panic!("a Secret without the key is refused: {refused:?}")
    };
    assert!(
        status.message.contains(
            "admission webhook \"vmcpserver.toolhive.stacklok.dev\" denied the request: spec.secrets[0]"
        ),
        "{}",
        status.message
    );
    // ...and a good one is defaulted by the mutating one and reconciled.
    let good: MCPServer = serde_json::from_value(json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": "good", "namespace": "default"},
        "spec": {"image": "docker.io/mcp/fetch"}
    }))
    .unwrap();
    let stored = servers.create(&PostParams::default(), &good).await.unwrap();
    assert_eq!(stored.spec.transport.as_deref(), Some("stdio"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    wait_for("reconciled", Duration::from_secs(20), || async {
        deployments.get_opt("good").await.ok().flatten().is_some()
    })
    .await;
}
