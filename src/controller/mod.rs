//! Controllers: the only room that talks to the API server. Builders of desired children are
//! pure functions ([`children`]); reconcile loops apply them.

pub mod children;
pub mod credentials;
pub mod frame;
pub mod leader;
pub mod mcpremoteproxy;
pub mod mcpremoteproxy_children;
pub mod mcpserver;
pub mod metrics;
pub mod migrate;
pub mod podmerge;
pub mod rbac;
pub mod registry;
pub mod resolve;

use std::sync::Arc;

/// Runs every kind's controller over `namespace` (all namespaces when `None`) until the
/// returned future is dropped. A kind's controller is one line here.
pub async fn run_all(
    client: kube::Client,
    namespace: Option<String>,
    settings: frame::Settings,
    resolver: Arc<dyn resolve::CommandResolver>,
    metrics: metrics::ControllerMetrics,
) {
    let kinds: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        Box::pin(mcpserver::run(
            client.clone(),
            namespace.clone(),
            settings.clone(),
            resolver,
            metrics.clone(),
        )),
        Box::pin(mcpremoteproxy::run(
            client.clone(),
            namespace.clone(),
            settings.clone(),
            metrics.clone(),
        )),
    ];
    futures::future::join_all(kinds).await;
}
