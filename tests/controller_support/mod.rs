//! The harness of the controller tests: an in-memory API server with our CRDs and the
//! operator's controllers (every kind, as `run` starts them) running against it.

#![allow(dead_code)] // each test binary uses a part

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use kube::Client;
use mcp_operator::api::crd;
use mcp_operator::api::v1beta1::MCPServer;
use mcp_operator::controller::mcpserver::Settings;
use mcp_operator::controller::metrics::ControllerMetrics;
use mcp_operator::controller::resolve::{CommandResolver, StaticResolver};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use test_apiserver::{Options, TestApiServer};

pub struct Harness {
    pub server: TestApiServer,
    pub client: Client,
    pub metrics: ControllerMetrics,
    pub _controller: tokio::task::JoinHandle<()>,
    settings: Settings,
    resolver: Arc<dyn CommandResolver>,
}

impl Harness {
    /// Stops the controller and starts a new one (empty caches, fresh metrics), as a restart of
    /// the operator would.
    pub fn restart_controller(&mut self) {
        self._controller.abort();
        self.metrics = ControllerMetrics::default();
        self._controller = tokio::spawn(mcp_operator::controller::run_all(
            self.client.clone(),
            None,
            self.settings.clone(),
            self.resolver.clone(),
            self.metrics.clone(),
        ));
    }
}

pub async fn start(resync: Option<Duration>) -> Harness {
    let resolver = StaticResolver::new(HashMap::from([
        (
            "docker.io/mcp/fetch".to_string(),
            vec!["mcp-server-fetch".to_string()],
        ),
        (
            "ghcr.io/github/github-mcp-server".to_string(),
            vec!["github-mcp-server".to_string(), "stdio".to_string()],
        ),
    ]));
    start_with(resync, Arc::new(resolver)).await
}

/// The harness with a resolver of the test's choosing.
pub async fn start_with(resync: Option<Duration>, resolver: Arc<dyn CommandResolver>) -> Harness {
    start_configured(resync, resolver, |_| {}).await
}

/// The harness with the controllers' settings adjusted by `configure`.
pub async fn start_configured(
    resync: Option<Duration>,
    resolver: Arc<dyn CommandResolver>,
    configure: impl FnOnce(&mut Settings),
) -> Harness {
    mcp_operator::crypto::install_provider();
    let server = TestApiServer::start(Options::default()).await.unwrap();
    // Readiness of pods is the test's to decide (the fake has no kubelet).
    server.set_simulate_workloads(false);
    let client = server.client().unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut c in crd::all() {
        c.spec.conversion = None; // only v1beta1 is used here
        crds.create(&PostParams::default(), &c).await.unwrap();
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["default", "toolhive-system"] {
        let _ = namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
            )
            .await;
    }
    let mut settings = Settings {
        bridge_image: "example.com/mcp-operator:test".into(),
        resync,
        ..Settings::default()
    };
    configure(&mut settings);
    let metrics = ControllerMetrics::default();
    let controller = tokio::spawn(mcp_operator::controller::run_all(
        client.clone(),
        None,
        settings.clone(),
        resolver.clone(),
        metrics.clone(),
    ));
    Harness {
        server,
        client,
        metrics,
        _controller: controller,
        settings,
        resolver,
    }
}

pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    // Generous: other test binaries may share the two cores.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn seed(name: &str) -> Value {
    let path = format!("{}/examples/seed/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Creates `obj` in the `default` namespace as it is (no webhook: the controllers' own checks
/// are what stands).
pub async fn create<K>(client: &Client, obj: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(obj).unwrap();
    Api::<K>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

pub async fn create_server(client: &Client, obj: Value) -> MCPServer {
    // Defaults as the webhook (or the CRD schema) would fill them in.
    let verdict =
        mcp_operator::admission::admit(&obj, None, mcp_operator::admission::Operation::Create)
            .unwrap();
    assert!(verdict.allowed(), "{}", verdict.errors);
    let server: MCPServer = serde_json::from_value(verdict.defaulted).unwrap();
    let ns = server
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    Api::<MCPServer>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &server)
        .await
        .unwrap()
}

pub async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// Waits until the MCPServer's condition `type_` passes `accept`; returns the phase and the
/// condition.
pub async fn wait_condition(
    client: &Client,
    name: &str,
    type_: &str,
    accept: impl Fn(&Condition) -> bool,
) -> (Option<String>, Condition) {
    let servers: Api<MCPServer> = Api::namespaced(client.clone(), "default");
    let accept = &accept;
    eventually(&format!("{name}: condition {type_}"), || {
        let servers = servers.clone();
        async move {
            let status = servers.get(name).await.ok()?.status?;
            let found = status
                .conditions?
                .into_iter()
                .find(|c| c.type_ == type_ && accept(c))?;
            Some((status.phase, found))
        }
    })
    .await
}
