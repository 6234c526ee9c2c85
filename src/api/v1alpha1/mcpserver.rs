//! MCPServer at v1alpha1: `port`/`targetPort`, string `groupRef`, inline `oidcConfig` and
//! `telemetry`.

use crate::api::schema::{conditions, free_form_object};
use crate::api::shared::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

pub const PHASES: &[&str] = &["Pending", "Running", "Failed", "Terminating", "Stopped"];
pub const OIDC_TYPES: &[&str] = &["kubernetes", "configMap", "inline"];

/// An MCP server (deprecated shape; use v1beta1).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPServer",
    plural = "mcpservers",
    doc = "An MCP server (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "MCPServerStatus",
    shortname = "mcpserver",
    shortname = "mcpservers",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPServer is deprecated; use toolhive.stacklok.dev/v1beta1 MCPServer",
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
    pub image: String,
    #[schemars(extend("enum" = TRANSPORTS, "default" = "stdio"))]
    pub transport: Option<String>,
    #[schemars(extend("enum" = PROXY_MODES, "default" = "streamable-http"))]
    pub proxy_mode: Option<String>,
    /// Deprecated: use `proxyPort`.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Deprecated: use `mcpPort`.
    #[schemars(range(min = 1, max = 65535))]
    pub target_port: Option<i32>,
    #[schemars(range(min = 1, max = 65535), extend("default" = 8080))]
    pub proxy_port: Option<i32>,
    #[schemars(range(min = 1, max = 65535))]
    pub mcp_port: Option<i32>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub command: Option<Vec<String>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub args: Option<Vec<String>>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Option<Vec<EnvVar>>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub volumes: Option<Vec<Volume>>,
    pub resources: Option<ResourceRequirements>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub secrets: Option<Vec<SecretRef>>,
    pub service_account: Option<String>,
    pub permission_profile: Option<PermissionProfileRef>,
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    pub resource_overrides: Option<ResourceOverrides>,
    /// Tools allow-list.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tools: Option<Vec<String>>,
    pub tool_config_ref: Option<NameRef>,
    /// Name of the MCPGroup this server belongs to.
    pub group_ref: Option<super::GroupRef>,
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    pub endpoint_prefix: Option<String>,
    #[schemars(extend("default" = false))]
    pub trust_proxy_headers: Option<bool>,
    #[schemars(extend("enum" = SESSION_AFFINITIES, "default" = "ClientIP"))]
    pub session_affinity: Option<String>,
    /// Inline incoming-token validation (v1beta1: an MCPOIDCConfig and `oidcConfigRef`).
    pub oidc_config: Option<OidcConfig>,
    /// Inline telemetry (v1beta1: an MCPTelemetryConfig and `telemetryConfigRef`).
    pub telemetry: Option<TelemetryConfig>,
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
    /// Mutually exclusive with the inline `telemetry`.
    pub telemetry_config_ref: Option<crate::api::telemetry::TelemetryConfigRef>,
}

/// Inline OIDC configuration of the old shape.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcConfig {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = OIDC_TYPES, "default" = "kubernetes"))]
    pub type_: String,
    pub resource_url: Option<String>,
    pub kubernetes: Option<KubernetesOidc>,
    pub config_map: Option<ConfigMapOidc>,
    pub inline: Option<InlineOidc>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesOidc {
    #[schemars(extend("default" = "toolhive"))]
    pub audience: Option<String>,
    #[schemars(extend("default" = "https://kubernetes.default.svc"))]
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub introspection_url: Option<String>,
    pub namespace: Option<String>,
    pub service_account: Option<String>,
    pub use_cluster_auth: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapOidc {
    pub name: String,
    #[schemars(extend("default" = "oidc.json"))]
    pub key: Option<String>,
    pub ca_bundle_ref: Option<CaBundleRef>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleRef {
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKeyRef {
    pub key: String,
    #[schemars(extend("default" = ""))]
    pub name: Option<String>,
    pub optional: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineOidc {
    pub issuer: String,
    pub audience: Option<String>,
    pub jwks_url: Option<String>,
    pub introspection_url: Option<String>,
    pub client_id: Option<String>,
    /// Deprecated plaintext secret; use `clientSecretRef`.
    pub client_secret: Option<String>,
    pub client_secret_ref: Option<SecretKeyRef>,
    pub ca_bundle_ref: Option<CaBundleRef>,
    pub thv_ca_bundle_path: Option<String>,
    pub jwks_auth_token_path: Option<String>,
    #[serde(rename = "jwksAllowPrivateIP")]
    #[schemars(extend("default" = false))]
    pub jwks_allow_private_ip: Option<bool>,
    #[serde(rename = "protectedResourceAllowPrivateIP")]
    #[schemars(extend("default" = false))]
    pub protected_resource_allow_private_ip: Option<bool>,
    #[serde(rename = "insecureAllowHTTP")]
    #[schemars(extend("default" = false))]
    pub insecure_allow_http: Option<bool>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub scopes: Option<Vec<String>>,
}

/// Inline telemetry of the old shape.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryConfig {
    pub open_telemetry: Option<OpenTelemetry>,
    pub prometheus: Option<Enabled>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenTelemetry {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    pub endpoint: Option<String>,
    /// `key=value` strings.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub headers: Option<Vec<String>>,
    #[schemars(extend("default" = false))]
    pub insecure: Option<bool>,
    pub metrics: Option<Enabled>,
    pub service_name: Option<String>,
    pub tracing: Option<Tracing>,
    #[schemars(extend("default" = true))]
    pub use_legacy_attributes: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Enabled {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    #[schemars(extend("default" = "0.05"))]
    pub sampling_rate: Option<String>,
}

/// Observed state of an MCPServer (old shape: phase `Running`).
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
