//! VirtualMCPServer and MCPServerEntry at v1beta1.
//!
//! Upstream keeps a VirtualMCPServer's `config` free-form (the vMCP runtime's own config type,
//! schema-preserved). Ours is typed, and holds only what mcp-operator builds: aggregation and
//! operational settings. Upstream's other keys (composite tools, optimizer, code mode, rate
//! limiting, telemetry, static backends, ...) are absent, so the API server and admission
//! refuse them by name rather than storing what nothing would act on. The runtime defaults
//! (`prefixFormat: "{workload}_"`, timeouts of 30 s, ...) are not schema defaults, as upstream's
//! free-form `config` has none: an object reads back as it was written.

use crate::api::auth::{AuthzConfig, CaBundleSource, OidcConfigRef};
use crate::api::schema::{conditions, free_form_object};
use crate::api::shared::*;
use crate::api::v1beta1::{HeaderForward, ToolOverride};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

pub const VMCP_PHASES: &[&str] = &["Pending", "Ready", "Degraded", "Failed"];
pub const INCOMING_AUTH_TYPES: &[&str] = &["anonymous", "oidc"];
pub const OUTGOING_AUTH_SOURCES: &[&str] = &["discovered", "inline"];
pub const BACKEND_AUTH_TYPES: &[&str] = &["discovered", "externalAuthConfigRef"];
pub const CONFLICT_RESOLUTIONS: &[&str] = &["prefix", "priority", "manual"];
pub const TOOL_VISIBILITIES: &[&str] = &["allow", "deny"];
pub const PARTIAL_FAILURE_MODES: &[&str] = &["fail", "best_effort"];
pub const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer"];
pub const BACKEND_STATUSES: &[&str] = &[
    "ready",
    "unavailable",
    "degraded",
    "unknown",
    "unauthenticated",
];
pub const CIRCUIT_STATES: &[&str] = &["closed", "open", "half-open"];
pub const ENTRY_PHASES: &[&str] = &["Valid", "Pending", "Failed"];
/// The placeholder a `prefixFormat` must contain: the backend's name.
pub const WORKLOAD_PLACEHOLDER: &str = "{workload}";

/// One MCP endpoint aggregating every backend of an MCPGroup.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "VirtualMCPServer",
    plural = "virtualmcpservers",
    doc = "One MCP endpoint aggregating every backend of an MCPGroup.",
    namespaced,
    status = "VirtualMCPServerStatus",
    shortname = "vmcp",
    shortname = "virtualmcp",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(
        name = "Phase",
        type_ = "string",
        description = "Pending, Ready, Degraded (some backends unavailable) or Failed",
        json_path = ".status.phase"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        description = "The endpoint clients connect to",
        json_path = ".status.url"
    ),
    printcolumn(
        name = "Backends",
        type_ = "integer",
        description = "Backends that can be routed to",
        json_path = ".status.backendCount"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        description = "The Ready condition",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMCPServerSpec {
    /// The MCPGroup whose members are the backends.
    pub group_ref: NameRef,
    /// How clients authenticate to the endpoint.
    pub incoming_auth: IncomingAuth,
    /// How the endpoint authenticates to each backend.
    pub outgoing_auth: Option<OutgoingAuth>,
    /// Aggregation and operational settings of the endpoint.
    pub config: Option<VmcpConfig>,
    /// Type of the endpoint's Service.
    #[schemars(extend("enum" = SERVICE_TYPES, "default" = "ClusterIP"))]
    pub service_type: Option<String>,
    /// Session affinity of the endpoint's Service.
    #[schemars(extend("enum" = SESSION_AFFINITIES, "default" = "ClientIP"))]
    pub session_affinity: Option<String>,
    /// Replicas of the endpoint's Deployment; unset leaves the count to others (HPA, scale).
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Merged over the Deployment's pod template (user values win).
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    /// Pull secrets of the endpoint's pods.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

/// Incoming authentication and authorization.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncomingAuth {
    /// `anonymous`, or `oidc` (then `oidcConfigRef` is required).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = INCOMING_AUTH_TYPES))]
    pub type_: String,
    /// A shared MCPOIDCConfig and this endpoint's audience.
    pub oidc_config_ref: Option<OidcConfigRef>,
    /// Inline Cedar authorization; mutually exclusive with `authzConfigRef`.
    pub authz_config: Option<AuthzConfig>,
    /// A shared MCPAuthzConfig (Cedar); mutually exclusive with `authzConfig`.
    pub authz_config_ref: Option<NameRef>,
}

/// Outgoing authentication towards the backends.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingAuth {
    /// `discovered`: each backend's own `externalAuthConfigRef`; `inline`: `default` and
    /// `backends` here.
    #[schemars(extend("enum" = OUTGOING_AUTH_SOURCES, "default" = "discovered"))]
    pub source: Option<String>,
    /// For backends without an entry in `backends`.
    pub default: Option<BackendAuth>,
    /// Per backend (keyed by the member's name).
    pub backends: Option<BTreeMap<String, BackendAuth>>,
}

/// How one backend is authenticated to.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendAuth {
    /// `discovered` (the backend's own reference) or `externalAuthConfigRef`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = BACKEND_AUTH_TYPES))]
    pub type_: String,
    /// The MCPExternalAuthConfig, with `type: externalAuthConfigRef`.
    pub external_auth_config_ref: Option<NameRef>,
}

/// The parts of upstream's vMCP config that mcp-operator builds.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmcpConfig {
    /// Upstream's older home of the group name; the operator uses `spec.groupRef`.
    pub group_ref: Option<String>,
    /// How the backends' tools are merged into one list.
    pub aggregation: Option<Aggregation>,
    /// Timeouts and failure handling.
    pub operational: Option<Operational>,
}

/// Merging the backends' capabilities.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Aggregation {
    /// `prefix` (the runtime's default: every tool is renamed `<prefixFormat><tool>`),
    /// `priority` (the first backend of `priorityOrder` offering a name keeps it) or `manual`
    /// (names are made unique by `tools[].overrides`).
    #[schemars(extend("enum" = CONFLICT_RESOLUTIONS))]
    pub conflict_resolution: Option<String>,
    pub conflict_resolution_config: Option<ConflictResolutionConfig>,
    /// Whether a backend without a `tools` entry is advertised (`allow`, the runtime's
    /// default) or hidden (`deny`).
    #[schemars(extend("enum" = TOOL_VISIBILITIES))]
    pub default_tool_visibility: Option<String>,
    /// Advertise no tools at all (resources and prompts still are).
    pub exclude_all_tools: Option<bool>,
    /// Per-backend tool selection and renames.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tools: Option<Vec<WorkloadTools>>,
}

/// Settings of the conflict strategies.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictResolutionConfig {
    /// `prefix`: the prefix, with `{workload}` standing for the backend's name
    /// (the runtime's default is `{workload}_`).
    pub prefix_format: Option<String>,
    /// `priority`: backend names, highest priority first.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub priority_order: Option<Vec<String>>,
    /// mcp-operator's extension, not upstream's: with `prefix`, rename only the tools whose
    /// names more than one backend offers, and leave unique names as the backends wrote them.
    pub prefix_only_conflicts: Option<bool>,
}

/// The tools of one backend.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadTools {
    /// The backend (a member of the group), by name.
    #[schemars(length(min = 1))]
    pub workload: String,
    /// Allow-list of tool names (after overrides); empty means every tool.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub filter: Option<Vec<String>>,
    /// Advertise none of this backend's tools.
    pub exclude_all: Option<bool>,
    /// An MCPToolConfig whose allow-list and overrides apply to this backend.
    pub tool_config_ref: Option<NameRef>,
    /// Renames and descriptions, keyed by the backend's tool name.
    pub overrides: Option<BTreeMap<String, ToolOverride>>,
}

/// Timeouts and failure handling.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operational {
    pub timeouts: Option<Timeouts>,
    pub failure_handling: Option<FailureHandling>,
}

/// Per-request timeouts towards the backends (Go durations, e.g. `30s`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// For every backend without its own (the runtime's default is 30s).
    pub default: Option<String>,
    /// Per backend, keyed by its name.
    pub per_workload: Option<BTreeMap<String, String>>,
}

/// Health checks, partial failures and the circuit breaker.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureHandling {
    /// Between health checks of a backend (runtime default 30s).
    pub health_check_interval: Option<String>,
    /// Of one health check (runtime default 10s).
    pub health_check_timeout: Option<String>,
    /// Failed checks in a row before a backend is unavailable (runtime default 3).
    #[schemars(range(min = 1))]
    pub unhealthy_threshold: Option<i32>,
    /// `best_effort`: answer from the healthy backends; `fail`: refuse while any is down.
    #[schemars(extend("enum" = PARTIAL_FAILURE_MODES))]
    pub partial_failure_mode: Option<String>,
    /// Between backend-health reports to the operator (runtime default 30s).
    pub status_reporting_interval: Option<String>,
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// Stops calling a failing backend for a while (closed → open → half-open → closed).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    pub enabled: Option<bool>,
    /// Failures in a row that open the circuit.
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<i32>,
    /// How long the circuit stays open before one trial call (at least 1s).
    pub timeout: Option<String>,
}

/// Observed state of a VirtualMCPServer.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMCPServerStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = VMCP_PHASES, "default" = "Pending"))]
    pub phase: Option<String>,
    pub message: Option<String>,
    /// `http://vmcp-<name>.<namespace>.svc.cluster.local:4483`.
    pub url: Option<String>,
    /// Every backend, as the endpoint last saw it.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub discovered_backends: Option<Vec<DiscoveredBackend>>,
    /// Backends that can be routed to (ready or unauthenticated).
    pub backend_count: Option<i32>,
    /// The `status.configHash` of the referenced MCPOIDCConfig the pods run with.
    pub oidc_config_hash: Option<String>,
    /// The `status.configHash` of the referenced MCPAuthzConfig the pods run with.
    pub authz_config_hash: Option<String>,
}

/// One backend of a VirtualMCPServer.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredBackend {
    pub name: String,
    pub url: Option<String>,
    #[schemars(extend("enum" = BACKEND_STATUSES))]
    pub status: Option<String>,
    /// The outgoing authentication used for it.
    pub auth_type: Option<String>,
    pub auth_config_ref: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub last_health_check: Option<String>,
    pub consecutive_failures: Option<i32>,
    #[schemars(extend("enum" = CIRCUIT_STATES))]
    pub circuit_breaker_state: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub circuit_last_changed: Option<String>,
    /// The MCP protocol revision it speaks.
    pub mcp_revision: Option<String>,
    /// The last error, when it is not ready.
    pub message: Option<String>,
}

/// A remote MCP endpoint that joins an MCPGroup without a proxy.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPServerEntry",
    plural = "mcpserverentries",
    doc = "A remote MCP endpoint that joins an MCPGroup without a proxy.",
    namespaced,
    status = "MCPServerEntryStatus",
    shortname = "mcpentry",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Transport", type_ = "string", json_path = ".spec.transport"),
    printcolumn(name = "Remote URL", type_ = "string", json_path = ".spec.remoteUrl"),
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.groupRef.name"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPServerEntrySpec {
    /// The remote MCP endpoint.
    #[schemars(regex(pattern = r"^https?://"))]
    pub remote_url: String,
    /// How the endpoint speaks MCP.
    #[schemars(extend("enum" = REMOTE_TRANSPORTS))]
    pub transport: String,
    /// The MCPGroup it joins.
    pub group_ref: NameRef,
    /// Relaxes the private-address check for RFC 1918 / ULA addresses and `*.cluster.local`.
    #[schemars(extend("default" = false))]
    pub allow_private_endpoint: Option<bool>,
    /// Credentials added towards the endpoint: an MCPExternalAuthConfig.
    pub external_auth_config_ref: Option<NameRef>,
    /// Headers added to requests to the endpoint.
    pub header_forward: Option<HeaderForward>,
    /// CA certificates the endpoint's TLS certificate is checked against.
    pub ca_bundle_ref: Option<CaBundleSource>,
}

/// Observed state of an MCPServerEntry.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPServerEntryStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = ENTRY_PHASES, "default" = "Pending"))]
    pub phase: Option<String>,
}
