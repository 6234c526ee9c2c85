//! The contract between the VirtualMCPServer reconciler and the `vmcp` runtime.
//!
//! The reconciler resolves everything — the group's members and their URLs, MCPToolConfigs,
//! durations, credentials' environment variable names — and renders one [`FileConfig`] as JSON
//! into the ConfigMap `<name>-vmcp-config`; the runtime reads it and discovers nothing itself,
//! so the two can never disagree about the backends. The runtime reports back on
//! `GET /status` with a [`StatusReport`], which the reconciler copies into
//! `status.discoveredBackends`. Both sides use these types, so a field renamed on one side fails
//! to compile on the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::bridge::config::{AuthConfig, ToolOverride};

/// The port the runtime serves on (upstream's), behind Service `vmcp-<name>`.
pub const VMCP_PORT: u16 = 4483;
/// The file name of the config inside ConfigMap `<name>-vmcp-config`.
pub const CONFIG_FILE: &str = "vmcp.json";
/// Where the runtime reports its backends' health.
pub const STATUS_PATH: &str = "/status";

/// The runtime's whole configuration (`mcp-operator vmcp --config <file>`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    /// The VirtualMCPServer's name: the `serverInfo.name` clients see.
    pub name: String,
    /// `host:port`; default `0.0.0.0:4483`.
    pub listen: Option<String>,
    /// Every member of the group, in the order the reconciler lists them (sorted by name).
    pub backends: Vec<Backend>,
    #[serde(default)]
    pub aggregation: Aggregation,
    #[serde(default)]
    pub operational: Operational,
    /// Incoming authentication, authorization and audit, as the bridge's `auth` block
    /// (MCPOIDCConfig / MCPAuthzConfig resolved by the reconciler); none: anonymous.
    pub auth: Option<AuthConfig>,
}

/// One backend: a member MCPServer's or MCPRemoteProxy's Service, or an MCPServerEntry's URL.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// The member's name; what `{workload}`, `priorityOrder` and `tools[].workload` refer to.
    pub name: String,
    /// `MCPServer`, `MCPRemoteProxy` or `MCPServerEntry` (shown in the status).
    pub kind: Option<String>,
    /// The MCP endpoint (streamable HTTP) or SSE endpoint.
    pub url: String,
    /// `streamable-http` (default) or `sse`.
    pub transport: Option<String>,
    /// RFC 1918 / ULA addresses may be reached (in-cluster members always; entries when they
    /// say `allowPrivateEndpoint`). Loopback, link-local and metadata addresses never are.
    pub allow_private_endpoint: Option<bool>,
    /// A PEM file of CA certificates trusted for this backend's TLS, besides the system's.
    pub ca_bundle: Option<String>,
    /// Headers added to every request to this backend.
    pub headers: Option<BTreeMap<String, String>>,
    /// Headers whose values come from environment variables (set from Secrets):
    /// header name → variable name.
    pub headers_from_env: Option<BTreeMap<String, String>>,
    /// The environment variable holding a bearer token sent to this backend.
    pub bearer_token_env: Option<String>,
    /// Per-request timeout towards this backend, in milliseconds (default: the operational
    /// default).
    pub timeout_ms: Option<u64>,
}

/// How the backends' capabilities are merged into one list.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Aggregation {
    /// `prefix` (default), `priority` or `manual`.
    pub conflict_resolution: Option<String>,
    /// `prefix`: with `{workload}` standing for the backend's name; default `{workload}_`.
    pub prefix_format: Option<String>,
    /// `prefix`: rename only names more than one backend offers (our extension).
    pub prefix_only_conflicts: Option<bool>,
    /// `priority`: backend names, highest first; backends not listed come after, by name.
    pub priority_order: Option<Vec<String>>,
    /// `allow` (default) or `deny`: whether a backend without a `tools` entry is advertised.
    pub default_tool_visibility: Option<String>,
    /// Advertise no tools at all.
    pub exclude_all_tools: Option<bool>,
    /// Per backend; MCPToolConfig references already merged in by the reconciler.
    pub tools: Option<Vec<WorkloadTools>>,
}

/// One backend's tool selection and renames.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadTools {
    pub workload: String,
    /// Allow-list of names after overrides; none or empty: every tool.
    pub filter: Option<Vec<String>>,
    pub exclude_all: Option<bool>,
    /// Keyed by the backend's own tool name.
    pub overrides: Option<BTreeMap<String, ToolOverride>>,
}

/// Timeouts, health checks, partial failures and the circuit breaker, all durations in
/// milliseconds (the reconciler parses the Go durations of the spec).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operational {
    /// Per request towards a backend; default 30000.
    pub default_timeout_ms: Option<u64>,
    /// Between health checks of a backend; default 30000.
    pub health_check_interval_ms: Option<u64>,
    /// Of one health check; default 10000.
    pub health_check_timeout_ms: Option<u64>,
    /// Failed checks in a row before a backend is unavailable; default 3.
    pub unhealthy_threshold: Option<u32>,
    /// `best_effort` (default) or `fail`.
    pub partial_failure_mode: Option<String>,
    /// Within this, `initialize` and the `*/list` calls answer from the backends that have
    /// answered; default 5000.
    pub aggregate_deadline_ms: Option<u64>,
    /// Default enabled.
    pub circuit_breaker_enabled: Option<bool>,
    /// Failures in a row that open the circuit; default 5.
    pub circuit_failure_threshold: Option<u32>,
    /// How long an open circuit waits before one trial call; default 60000.
    pub circuit_open_ms: Option<u64>,
}

/// `GET /status`: what the runtime knows of its backends.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The SHA-256 (hex) of the config file the runtime runs with, so the reconciler can tell
    /// a report of the old config from one of the new.
    pub config_hash: Option<String>,
    pub backends: Vec<BackendReport>,
}

/// One backend in the [`StatusReport`]; the fields of `status.discoveredBackends[]`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendReport {
    pub name: String,
    pub url: Option<String>,
    /// `ready`, `unavailable`, `degraded`, `unknown` or `unauthenticated`.
    pub status: String,
    /// RFC 3339.
    pub last_health_check: Option<String>,
    pub consecutive_failures: Option<u32>,
    /// `closed`, `open` or `half-open`.
    pub circuit_breaker_state: Option<String>,
    /// RFC 3339.
    pub circuit_last_changed: Option<String>,
    /// The protocol revision the backend answered `initialize` with.
    pub mcp_revision: Option<String>,
    /// The last error, when not ready (never a credential).
    pub message: Option<String>,
    /// Tools it advertises after filtering.
    pub tool_count: Option<u32>,
}
