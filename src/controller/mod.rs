//! Controllers: the only room that talks to the API server. Builders of desired children are
//! pure functions ([`children`]); reconcile loops apply them.

pub mod auth_configs;
pub mod auth_refs;
pub mod child_cache;
pub mod children;
pub mod credentials;
pub mod frame;
pub mod leader;
pub mod mcpgroup;
pub mod mcpregistry;
pub mod mcpregistry_children;
pub mod mcpremoteproxy;
pub mod mcpremoteproxy_children;
pub mod mcpserver;
pub mod mcpserverentry;
pub mod mcptelemetryconfig;
pub mod mcptoolconfig;
pub mod metrics;
pub mod migrate;
pub mod podmerge;
pub mod rbac;
pub mod registry;
pub mod resolve;
pub mod shared_config;
pub mod slim;
pub mod telemetry_ref;
pub mod virtualmcpserver;
pub mod vmcp_children;
pub mod vmcp_status;
pub mod workload;

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
    let c = || {
        (
            client.clone(),
            namespace.clone(),
            settings.clone(),
            metrics.clone(),
        )
    };
    // Who holds a child's name, shared by the kinds whose children share the child kinds.
    let (neighbours, watch_neighbours) = workload::Neighbourhood::watch(&client, &namespace);
    // One watch of the workloads' references for every controller that follows them.
    let mut workloads = slim::Workloads::watch(&client, &namespace);
    let (for_groups, for_tool_configs, for_telemetry_configs, for_vmcps) = (
        workloads.subscribe(),
        workloads.subscribe(),
        workloads.subscribe(),
        workloads.subscribe(),
    );
    let for_auth_configs = [
        workloads.subscribe(),
        workloads.subscribe(),
        workloads.subscribe(),
    ];
    let controllers: Vec<futures::future::BoxFuture<'static, ()>> = vec![
        watch_neighbours,
        workloads.run(),
        Box::pin({
            let (c, n, s, m) = c();
            mcpserver::run(c, n, s, resolver, m, neighbours.clone())
        }),
        Box::pin({
            let (c, n, s, m) = c();
            mcpregistry::run(c, n, s, m, neighbours.clone())
        }),
        Box::pin({
            let (c, n, s, m) = c();
            mcpremoteproxy::run(c, n, s, m, neighbours.clone())
        }),
        Box::pin({
            let (c, n, s, m) = c();
            virtualmcpserver::run(c, n, s, m, neighbours, for_vmcps)
        }),
        Box::pin({
            let (c, n, s, m) = c();
            mcpserverentry::run(c, n, s, m)
        }),
        Box::pin({
            let (c, n, s, m) = c();
            mcpgroup::run(c, n, s, m, for_groups)
        }),
        Box::pin({
            let (c, n, s, m) = c();
            mcptoolconfig::run(c, n, s, m, for_tool_configs)
        }),
        Box::pin({
            let (c, n, s, m) = c();
            mcptelemetryconfig::run(c, n, s, m, for_telemetry_configs)
        }),
        Box::pin({
            let (c, n, s, m) = c();
            auth_configs::run(c, n, s, m, for_auth_configs)
        }),
    ];
    futures::future::join_all(controllers).await;
}
