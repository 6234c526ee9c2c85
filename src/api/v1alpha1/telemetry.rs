//! MCPTelemetryConfig at v1alpha1 (ToolHive v0.15 – v0.21): the same spec as v1beta1; its status
//! also lists the workloads using the config (`referencingWorkloads`), which v1beta1 dropped and
//! conversion keeps in the stash.

use crate::api::auth::WorkloadReference;
use crate::api::schema::conditions;
use crate::api::telemetry::{OpenTelemetrySettings, SignalSettings};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// OpenTelemetry and Prometheus settings shared by workloads; the service name is per workload.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPTelemetryConfig",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPTelemetryConfig is deprecated; use toolhive.stacklok.dev/v1beta1 MCPTelemetryConfig",
    plural = "mcptelemetryconfigs",
    doc = "OpenTelemetry and Prometheus settings shared by workloads; the service name is per workload (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "TelemetryConfigStatus",
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

/// Observed state of an MCPTelemetryConfig (v1alpha1: with its users).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryConfigStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    pub config_hash: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub referencing_workloads: Option<Vec<WorkloadReference>>,
}
