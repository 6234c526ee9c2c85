//! The MCPToolConfig reconciler: a shared allow-list and renames that MCPServers and
//! MCPRemoteProxies point at with `spec.toolConfigRef`. Its status and held deletion are those
//! of every shared config kind ([`super::shared_config`]): a deleted allow-list would leave its
//! users unable to roll out (they stop at `ToolConfigNotFound`), never turn into "every tool".

use super::frame::Settings;
use super::metrics::ControllerMetrics;
use super::shared_config;
use crate::api::v1beta1::MCPToolConfig;
use kube::Client;

/// Upstream's finalizer name, so an object moved between the two operators keeps its hold.
pub const FINALIZER: &str = "toolhive.stacklok.dev/toolconfig-finalizer";

shared_config::shared_config!(MCPToolConfig, FINALIZER, tool_config_ref);

/// Runs the MCPToolConfig controller over `namespace` (all when `None`) until dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    workloads: super::slim::Subscription,
) {
    shared_config::run::<MCPToolConfig>(client, namespace, settings, metrics, workloads).await
}
