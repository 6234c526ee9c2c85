//! The MCPTelemetryConfig reconciler: shared OpenTelemetry and Prometheus settings that
//! MCPServers and MCPRemoteProxies point at with `spec.telemetryConfigRef`. Its status
//! (`configHash`, `Valid`, `Referenced`) and held deletion are those of every shared config kind
//! ([`super::shared_config`]). Telemetry is not a security control: its users never stop for
//! it, they report it (`TelemetryConfigRefValidated`); the hold keeps a config in use from
//! vanishing from under them unannounced.

use super::frame::{self, Settings};
use super::metrics::ControllerMetrics;
use super::shared_config::{self, SharedConfig};
use super::slim::References;
use crate::api::v1beta1::MCPTelemetryConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;

/// Upstream's finalizer name, so an object moved between the two operators keeps its hold.
pub const FINALIZER: &str = "mcptelemetryconfig.toolhive.stacklok.dev/finalizer";

impl SharedConfig for MCPTelemetryConfig {
    const FINALIZER: &'static str = FINALIZER;
    fn named_by(refs: &References) -> Option<&str> {
        refs.telemetry_config_ref.as_ref().map(|r| r.name.as_str())
    }
    fn spec_hash(&self) -> String {
        frame::config_hash(&self.spec)
    }
    fn conditions(&self) -> Option<&[Condition]> {
        self.status.as_ref()?.conditions.as_deref()
    }
}

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
