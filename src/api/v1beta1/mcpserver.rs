//! MCPServer at v1beta1 (storage version).

use crate::api::schema::{conditions, free_form_object};
use crate::api::shared::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

pub const PHASES: &[&str] = &["Pending", "Ready", "Failed", "Terminating", "Stopped"];

/// An MCP server run in the cluster, reachable over HTTP through the in-pod bridge.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1beta1",
    kind = "MCPServer",
    plural = "mcpservers",
    doc = "An MCP server run in the cluster, reachable over HTTP through the in-pod bridge.",
    namespaced,
    status = "MCPServerStatus",
    shortname = "mcpserver",
    shortname = "mcpservers",
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
pub struct MCPServerSpec {
    /// OCI image of the MCP server.
    pub image: String,
    /// How the bridge talks to the MCP server process.
    #[schemars(extend("enum" = TRANSPORTS, "default" = "stdio"))]
    pub transport: Option<String>,
    /// For stdio servers: which HTTP flavour the bridge exposes.
    #[schemars(extend("enum" = PROXY_MODES, "default" = "streamable-http"))]
    pub proxy_mode: Option<String>,
    /// Port clients use on the Service.
    #[schemars(range(min = 1, max = 65535), extend("default" = 8080))]
    pub proxy_port: Option<i32>,
    /// Port the MCP server listens on (HTTP transports).
    #[schemars(range(min = 1, max = 65535))]
    pub mcp_port: Option<i32>,
    /// The server's entrypoint; when unset it is read from the image's configuration.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub command: Option<Vec<String>>,
    /// Extra arguments for the MCP server.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub args: Option<Vec<String>>,
    /// Plain environment variables for the MCP server.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Option<Vec<EnvVar>>,
    /// Host paths mounted into the MCP server container.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Option<Vec<Volume>>,
    /// CPU and memory of the MCP server container.
    pub resources: Option<ResourceRequirements>,
    /// Secret keys exposed as environment variables.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub secrets: Option<Vec<SecretRef>>,
    /// Existing ServiceAccount for the MCP server pod; one is created when unset.
    pub service_account: Option<String>,
    /// Permission profile of the MCP server.
    pub permission_profile: Option<PermissionProfileRef>,
    /// Raw PodTemplateSpec merged into the MCP server pod (user values win).
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    /// Labels, annotations and env for the objects the operator creates.
    pub resource_overrides: Option<ResourceOverrides>,
    /// Tools allow-list (empty: all tools).
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tools: Option<Vec<String>>,
    /// Reference to an MCPToolConfig (allow-list and renames).
    pub tool_config_ref: Option<NameRef>,
    /// Membership in an MCPGroup.
    pub group_ref: Option<NameRef>,
    /// Deployment replicas; unset leaves scaling to HPA or `kubectl scale`.
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Path prefix added to SSE endpoint URLs (ingress path stripping).
    pub endpoint_prefix: Option<String>,
    /// Honour X-Forwarded-* headers when building endpoint URLs.
    #[schemars(extend("default" = false))]
    pub trust_proxy_headers: Option<bool>,
    /// Session affinity of the Service.
    #[schemars(extend("enum" = SESSION_AFFINITIES, "default" = "ClientIP"))]
    pub session_affinity: Option<String>,
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

/// Observed state of an MCPServer.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPServerStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = PHASES))]
    pub phase: Option<String>,
    pub message: Option<String>,
    pub url: Option<String>,
    pub ready_replicas: Option<i32>,
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
