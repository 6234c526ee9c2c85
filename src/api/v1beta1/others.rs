//! MCPRegistry, MCPRemoteProxy, MCPGroup and MCPToolConfig at v1beta1.

use crate::api::schema::{conditions, free_form_list, free_form_object, string_map};
use crate::api::shared::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

pub const REGISTRY_PHASES: &[&str] = &["Pending", "Ready", "Failed", "Terminating"];
pub const REMOTE_PROXY_PHASES: &[&str] = &["Pending", "Ready", "Failed", "Terminating"];
pub const GROUP_PHASES: &[&str] = &["Ready", "Pending", "Failed"];

/// A ToolHive registry-API server configured by its raw `config.yaml`.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPRegistry",
    plural = "mcpregistries",
    doc = "A ToolHive registry-API server configured by its raw config.yaml.",
    namespaced,
    status = "MCPRegistryStatus",
    shortname = "mcpreg",
    shortname = "registry",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPRegistrySpec {
    /// The registry server's whole `config.yaml`; must not contain secrets.
    #[serde(rename = "configYAML")]
    #[schemars(length(min = 1))]
    pub config_yaml: String,
    /// Informational name.
    pub display_name: Option<String>,
    /// Pull secrets for the registry-API pod.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// A Secret holding a pgpass file for the database connection.
    pub pgpass_secret_ref: Option<PgpassSecretRef>,
    /// Base PodTemplateSpec of the registry-API Deployment (user values win).
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    /// Raw `corev1.VolumeMount`s appended to the `registry-api` container.
    #[serde(default)]
    #[schemars(schema_with = "free_form_list")]
    pub volume_mounts: Option<Vec<serde_json::Value>>,
    /// Raw `corev1.Volume`s appended to the registry-API pod.
    #[serde(default)]
    #[schemars(schema_with = "free_form_list")]
    pub volumes: Option<Vec<serde_json::Value>>,
}

/// A Secret key holding a pgpass file.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct PgpassSecretRef {
    pub key: String,
    #[schemars(extend("default" = ""))]
    pub name: Option<String>,
    pub optional: Option<bool>,
}

/// Observed state of an MCPRegistry.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPRegistryStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = REGISTRY_PHASES))]
    pub phase: Option<String>,
    pub message: Option<String>,
    pub url: Option<String>,
    pub ready_replicas: Option<i32>,
}

/// A proxy in front of a remote MCP server reached by URL.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPRemoteProxy",
    plural = "mcpremoteproxies",
    doc = "A proxy in front of a remote MCP server reached by URL.",
    namespaced,
    status = "MCPRemoteProxyStatus",
    shortname = "rp",
    shortname = "mcprp",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Remote URL", type_ = "string", json_path = ".spec.remoteUrl"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPRemoteProxySpec {
    /// The remote MCP endpoint.
    #[schemars(regex(pattern = r"^https?://"))]
    pub remote_url: String,
    /// Relaxes the private-address check for RFC 1918 / ULA addresses and `*.cluster.local`.
    #[schemars(extend("default" = false))]
    pub allow_private_endpoint: Option<bool>,
    /// Port of the proxy Service.
    #[schemars(range(min = 1, max = 65535), extend("default" = 8080))]
    pub proxy_port: Option<i32>,
    /// Transport towards the remote server, also exposed by the proxy.
    #[schemars(extend("enum" = REMOTE_TRANSPORTS, "default" = "streamable-http"))]
    pub transport: Option<String>,
    /// Headers added to upstream requests.
    pub header_forward: Option<HeaderForward>,
    pub endpoint_prefix: Option<String>,
    pub group_ref: Option<NameRef>,
    pub tool_config_ref: Option<NameRef>,
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    pub resource_overrides: Option<ResourceOverrides>,
    pub resources: Option<ResourceRequirements>,
    pub service_account: Option<String>,
    #[schemars(extend("enum" = SESSION_AFFINITIES, "default" = "ClientIP"))]
    pub session_affinity: Option<String>,
    #[schemars(extend("default" = false))]
    pub trust_proxy_headers: Option<bool>,
    /// Incoming authentication: a shared MCPOIDCConfig and this workload's audience.
    pub oidc_config_ref: Option<crate::api::auth::OidcConfigRef>,
    /// Inline authorization (Cedar); mutually exclusive with `authzConfigRef`.
    pub authz_config: Option<crate::api::auth::AuthzConfig>,
    /// A shared MCPAuthzConfig; mutually exclusive with `authzConfig`.
    pub authz_config_ref: Option<NameRef>,
    /// Credentials added towards the backend: an MCPExternalAuthConfig.
    pub external_auth_config_ref: Option<NameRef>,
    /// Audit events for MCP requests.
    pub audit: Option<crate::api::auth::Audit>,
    /// Shared telemetry settings: an MCPTelemetryConfig, and this workload's service name.
    pub telemetry_config_ref: Option<crate::api::telemetry::TelemetryConfigRef>,
}

/// Headers the proxy adds to upstream requests.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderForward {
    /// Literal headers.
    #[serde(default)]
    #[schemars(schema_with = "string_map")]
    pub add_plaintext_headers: Option<BTreeMap<String, String>>,
    /// Headers whose values come from Secrets.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["headerName"]))]
    pub add_headers_from_secret: Option<Vec<HeaderFromSecret>>,
}

/// One header whose value is read from a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderFromSecret {
    #[schemars(length(min = 1, max = 255))]
    pub header_name: String,
    pub value_secret_ref: SecretKeyRef,
}

/// Observed state of an MCPRemoteProxy.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPRemoteProxyStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = REMOTE_PROXY_PHASES))]
    pub phase: Option<String>,
    pub message: Option<String>,
    pub url: Option<String>,
    pub external_url: Option<String>,
    pub tool_config_hash: Option<String>,
    /// The `status.configHash` of the referenced MCPTelemetryConfig, as last seen.
    pub telemetry_config_hash: Option<String>,
    /// The `status.configHash` of the referenced MCPOIDCConfig the pods run with.
    pub oidc_config_hash: Option<String>,
    /// The `status.configHash` of the referenced MCPAuthzConfig the pods run with.
    pub authz_config_hash: Option<String>,
    /// The `status.configHash` of the referenced MCPExternalAuthConfig the pods run with.
    pub external_auth_config_hash: Option<String>,
}

/// A logical group of MCP servers and proxies.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPGroup",
    plural = "mcpgroups",
    doc = "A logical group of MCP servers and proxies.",
    namespaced,
    status = "MCPGroupStatus",
    shortname = "mcpg",
    shortname = "mcpgroup",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Servers", type_ = "integer", json_path = ".status.serverCount"),
    printcolumn(
        name = "Proxies",
        type_ = "integer",
        json_path = ".status.remoteProxyCount"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Checked",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='MCPServersChecked')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPGroupSpec {
    /// Free text.
    pub description: Option<String>,
}

/// Observed state of an MCPGroup.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPGroupStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = GROUP_PHASES, "default" = "Pending"))]
    pub phase: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub servers: Option<Vec<String>>,
    pub server_count: Option<i32>,
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub remote_proxies: Option<Vec<String>>,
    pub remote_proxy_count: Option<i32>,
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub entries: Option<Vec<String>>,
    pub entry_count: Option<i32>,
}

/// A shared tools allow-list and renames.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPToolConfig",
    plural = "mcptoolconfigs",
    doc = "A shared tools allow-list and renames.",
    namespaced,
    status = "MCPToolConfigStatus",
    shortname = "tc",
    shortname = "toolconfig",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Valid')].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPToolConfigSpec {
    /// Allow-list of tool names; empty means all tools.
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub tools_filter: Option<Vec<String>>,
    /// Per-tool overrides keyed by the backend tool name.
    pub tools_override: Option<BTreeMap<String, ToolOverride>>,
}

/// How one tool is presented to clients.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ToolOverride {
    /// New exposed name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// MCP tool annotation overrides; unset keeps the backend's value.
    pub annotations: Option<ToolAnnotations>,
}

/// MCP tool annotations.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    pub title: Option<String>,
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

/// Observed state of an MCPToolConfig.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPToolConfigStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    pub config_hash: Option<String>,
}
