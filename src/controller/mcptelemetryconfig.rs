//! The MCPTelemetryConfig reconciler: shared OpenTelemetry and Prometheus settings that
//! MCPServers and MCPRemoteProxies point at with `spec.telemetryConfigRef`. Its status
//! (`configHash`, `Valid`, `Referenced`) and held deletion are those of every shared config kind
//! ([`super::shared_config`]). Telemetry is not a security control: its users never stop for
//! it, they report it (`TelemetryConfigRefValidated`); the hold keeps a config in use from
//! vanishing from under them unannounced.

use super::frame::Settings;
use super::metrics::ControllerMetrics;
use super::shared_config;
use crate::api::v1beta1::MCPTelemetryConfig;
use kube::Client;

/// Upstream's finalizer name, so an object moved between the two operators keeps its hold.
pub const FINALIZER: &str = "mcptelemetryconfig.toolhive.stacklok.dev/finalizer";

shared_config::shared_config!(MCPTelemetryConfig, FINALIZER, telemetry_config_ref);

/// Runs the MCPTelemetryConfig controller over `namespace` (all when `None`) until dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    workloads: super::slim::Subscription,
) {
    shared_config::run::<MCPTelemetryConfig>(client, namespace, settings, metrics, workloads).await
}
