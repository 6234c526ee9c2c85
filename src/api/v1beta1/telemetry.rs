//! MCPTelemetryConfig at v1beta1: OpenTelemetry and Prometheus settings shared by workloads,
//! which reference it with `telemetryConfigRef` (and name their own service there).

use super::ConfigStatus;
use crate::api::telemetry::{OpenTelemetrySettings, SignalSettings};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// OpenTelemetry and Prometheus settings shared by workloads; the service name is per workload.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPTelemetryConfig",
    plural = "mcptelemetryconfigs",
    doc = "OpenTelemetry and Prometheus settings shared by workloads; the service name is per workload.",
    namespaced,
    status = "ConfigStatus",
    shortname = "mcpotel",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.openTelemetry.endpoint"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Valid')].status"
    ),
    printcolumn(
        name = "Tracing",
        type_ = "boolean",
        json_path = ".spec.openTelemetry.tracing.enabled"
    ),
    printcolumn(
        name = "Metrics",
        type_ = "boolean",
        json_path = ".spec.openTelemetry.metrics.enabled"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPTelemetryConfigSpec {
    /// OTLP export: collector, headers, signals.
    pub open_telemetry: Option<OpenTelemetrySettings>,
    /// A Prometheus `/metrics` endpoint on each workload.
    pub prometheus: Option<SignalSettings>,
}
