//! MCPRegistry (structured `source`), MCPRemoteProxy (`remoteURL`, `port`), MCPGroup and
//! MCPToolConfig at v1alpha1.

use super::mcpserver::{OidcConfig, TelemetryConfig};
use super::registry_views::{
    RegistryAuthz, RegistryDynamicAuth, RegistrySourceConfig, RegistryTelemetryConfig,
};
use crate::api::schema::{conditions, free_form_list, free_form_object};
use crate::api::shared::*;
use crate::api::v1beta1::{HeaderForward, ToolOverride};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

pub const REGISTRY_PHASES: &[&str] = &["Pending", "Ready", "Failed", "Syncing", "Terminating"];
pub const SOURCE_TYPES: &[&str] = &["configmap", "git", "api"];
pub const SOURCE_FORMATS: &[&str] = &["toolhive", "upstream"];
/// Go duration, as the old CRD spelled it.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A registry with one structured source (deprecated shape; use v1beta1 `configYAML`).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPRegistry",
    plural = "mcpregistries",
    doc = "An MCP registry (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "MCPRegistryStatus",
    shortname = "mcpreg",
    shortname = "registry",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPRegistry is deprecated; use toolhive.stacklok.dev/v1beta1 MCPRegistry with spec.configYAML",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
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
    pub display_name: Option<String>,
    /// Dropped at v1beta1 (it had no effect).
    #[schemars(extend("default" = false))]
    pub enforce_servers: Option<bool>,
    /// Where the registry data comes from (ToolHive v0.2.17 to v0.6.6). Exactly one of
    /// `source`, `registries` and `configYAML`.
    pub source: Option<RegistrySource>,
    /// The registries the server serves, each with its own data source (ToolHive v0.6.7 to
    /// v0.16). Exactly one of `source`, `registries` and `configYAML` — unless `sources` is
    /// set: then these are views over the sources (ToolHive v0.17.0).
    #[schemars(length(min = 1))]
    pub registries: Option<Vec<RegistryItem>>,
    /// The data sources of the typed v2 layout (ToolHive v0.17.0), with `registries` as views
    /// over them. Exactly one of `source`, `registries` (without `sources`), `sources` and
    /// `configYAML`.
    #[schemars(length(max = 20))]
    pub sources: Option<Vec<RegistrySourceConfig>>,
    /// The registry server's PostgreSQL database (with `registries` or `sources`).
    pub database_config: Option<RegistryDatabaseConfig>,
    /// How clients authenticate to the registry API (with `registries` or `sources`).
    pub auth_config: Option<RegistryAuthConfig>,
    /// OpenTelemetry export of the registry server (with `sources`).
    pub telemetry_config: Option<RegistryTelemetryConfig>,
    pub sync_policy: Option<SyncPolicy>,
    pub filter: Option<RegistryFilter>,
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    /// The registry server's configuration, verbatim (later v1alpha1 releases, and v1beta1).
    #[serde(rename = "configYAML")]
    #[schemars(length(min = 1))]
    pub config_yaml: Option<String>,
    /// Volumes of the registry pod (with `configYAML`), raw `corev1.Volume` objects.
    #[serde(default)]
    #[schemars(schema_with = "free_form_list")]
    pub volumes: Option<Vec<serde_json::Value>>,
    /// Their mounts in the `registry-api` container (with `configYAML`).
    #[serde(default)]
    #[schemars(schema_with = "free_form_list")]
    pub volume_mounts: Option<Vec<serde_json::Value>>,
    /// The PostgreSQL password file of the registry's database (with `configYAML`).
    pub pgpass_secret_ref: Option<crate::api::v1beta1::PgpassSecretRef>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySource {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = SOURCE_TYPES, "default" = "configmap"))]
    pub type_: String,
    #[schemars(extend("enum" = SOURCE_FORMATS, "default" = "toolhive"))]
    pub format: Option<String>,
    pub config_map_ref: Option<ConfigMapKeySelector>,
    pub git: Option<GitSource>,
    pub api: Option<ApiSource>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKeySelector {
    pub key: String,
    #[schemars(extend("default" = ""))]
    pub name: Option<String>,
    pub optional: Option<bool>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct GitSource {
    #[schemars(
        length(min = 1),
        regex(pattern = r"^(file:///|https?://|git@|ssh://|git://).*")
    )]
    pub repository: String,
    #[schemars(length(min = 1))]
    pub branch: Option<String>,
    #[schemars(length(min = 1))]
    pub tag: Option<String>,
    #[schemars(length(min = 1))]
    pub commit: Option<String>,
    #[schemars(regex(pattern = r"^.*\.json$"), extend("default" = "registry.json"))]
    pub path: Option<String>,
}

/// One item of `registries`, in either of the two layouts that share the list: a registry
/// with exactly one data source (ToolHive v0.6.7 to v0.16), or — with `spec.sources` — a view
/// naming sources (v0.17.0). Admission refuses the fields of the other layout.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryItem {
    #[schemars(length(min = 1))]
    pub name: String,
    /// `toolhive` when not set (the conversion says so; no schema default, which would also
    /// land on the views of the v0.17.0 layout).
    #[schemars(extend("enum" = SOURCE_FORMATS))]
    pub format: Option<String>,
    pub config_map_ref: Option<ConfigMapKeySelector>,
    pub git: Option<ItemGitSource>,
    pub api: Option<ApiSource>,
    pub pvc_ref: Option<PvcSource>,
    pub sync_policy: Option<SyncPolicy>,
    pub filter: Option<RegistryFilter>,
    /// A view's sources, by name (v0.17.0 layout).
    #[schemars(length(min = 1), extend("x-kubernetes-list-type" = "atomic"))]
    pub sources: Option<Vec<String>>,
    /// Claims a request needs to read a view (v0.17.0 layout; values: a string or a list of
    /// strings).
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub claims: Option<serde_json::Value>,
}

/// A Git source of the `registries` layout: [`GitSource`] plus credentials.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ItemGitSource {
    #[schemars(
        length(min = 1),
        regex(pattern = r"^(file:///|https?://|git@|ssh://|git://).*")
    )]
    pub repository: String,
    #[schemars(length(min = 1))]
    pub branch: Option<String>,
    #[schemars(length(min = 1))]
    pub tag: Option<String>,
    #[schemars(length(min = 1))]
    pub commit: Option<String>,
    #[schemars(regex(pattern = r"^.*\.json$"), extend("default" = "registry.json"))]
    pub path: Option<String>,
    pub auth: Option<GitAuth>,
}

/// HTTP basic credentials for a private repository: the password (or token) is a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitAuth {
    #[schemars(length(min = 1))]
    pub username: String,
    pub password_secret_ref: SecretKeySelector,
}

/// A registry file on a PersistentVolumeClaim.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcSource {
    #[schemars(length(min = 1))]
    pub claim_name: String,
    /// The file inside the claim.
    #[schemars(regex(pattern = r"^.*\.json$"), extend("default" = "registry.json"))]
    pub path: Option<String>,
}

/// A key of a Secret in the same namespace (`corev1.SecretKeySelector`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeySelector {
    pub key: String,
    #[schemars(extend("default" = ""))]
    pub name: Option<String>,
    pub optional: Option<bool>,
}

pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];
pub const REGISTRY_AUTH_MODES: &[&str] = &["anonymous", "oauth"];

/// The registry server's database, with the defaults the old operator used.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryDatabaseConfig {
    #[schemars(extend("default" = "postgres"))]
    pub host: Option<String>,
    #[schemars(range(min = 1, max = 65535), extend("default" = 5432))]
    pub port: Option<i32>,
    #[schemars(extend("default" = "db_app"))]
    pub user: Option<String>,
    #[schemars(extend("default" = "db_migrator"))]
    pub migration_user: Option<String>,
    #[schemars(extend("default" = "registry"))]
    pub database: Option<String>,
    #[schemars(extend("enum" = SSL_MODES, "default" = "prefer"))]
    pub ssl_mode: Option<String>,
    #[schemars(range(min = 1), extend("default" = 10))]
    pub max_open_conns: Option<i32>,
    #[schemars(range(min = 0), extend("default" = 2))]
    pub max_idle_conns: Option<i32>,
    #[schemars(
        regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"),
        extend("default" = "30m")
    )]
    pub conn_max_lifetime: Option<String>,
    /// The largest `_meta` a publisher may attach, in bytes (v0.17.0 layout).
    #[schemars(range(min = 1))]
    pub max_meta_size: Option<i32>,
    /// Short-lived credentials instead of passwords (v0.17.0 layout).
    pub dynamic_auth: Option<RegistryDynamicAuth>,
    /// The password of `user`.
    pub db_app_user_password_secret_ref: SecretKeySelector,
    /// The password of `migrationUser`.
    pub db_migration_user_password_secret_ref: SecretKeySelector,
}

/// How clients authenticate to the registry API.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct RegistryAuthConfig {
    #[schemars(extend("enum" = REGISTRY_AUTH_MODES, "default" = "anonymous"))]
    pub mode: Option<String>,
    /// Paths served without authentication, besides the server's own (v0.17.0 layout).
    #[serde(rename = "publicPaths")]
    #[schemars(inner(length(min = 1), regex(pattern = r"^/")))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub public_paths: Option<Vec<String>>,
    pub oauth: Option<RegistryOAuthConfig>,
    /// Role-based authorization (v0.17.0 layout).
    pub authz: Option<RegistryAuthz>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryOAuthConfig {
    pub resource_url: Option<String>,
    #[schemars(length(min = 1))]
    pub providers: Option<Vec<RegistryOAuthProvider>>,
    pub scopes_supported: Option<Vec<String>>,
    pub realm: Option<String>,
}

/// One OAuth/OIDC identity provider whose tokens the registry API accepts.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryOAuthProvider {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1), regex(pattern = r"^https?://.*"))]
    pub issuer_url: String,
    #[schemars(regex(pattern = r"^https?://.*"))]
    pub jwks_url: Option<String>,
    #[schemars(length(min = 1))]
    pub audience: String,
    pub client_id: Option<String>,
    pub client_secret_ref: Option<SecretKeySelector>,
    pub ca_cert_ref: Option<ConfigMapKeySelector>,
    pub ca_cert_path: Option<String>,
    pub auth_token_ref: Option<SecretKeySelector>,
    pub auth_token_file: Option<String>,
    #[schemars(regex(pattern = r"^https?://.*"))]
    pub introspection_url: Option<String>,
    #[serde(rename = "allowPrivateIP")]
    #[schemars(extend("default" = false))]
    pub allow_private_ip: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ApiSource {
    #[schemars(length(min = 1), regex(pattern = r"^https?://.*"))]
    pub endpoint: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SyncPolicy {
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub interval: String,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RegistryFilter {
    pub names: Option<IncludeExclude>,
    pub tags: Option<IncludeExclude>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct IncludeExclude {
    pub include: Option<Vec<String>>,
    pub exclude: Option<Vec<String>>,
}

/// Observed state of an MCPRegistry (old shape).
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

/// A proxy in front of a remote MCP server (deprecated shape; use v1beta1).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPRemoteProxy",
    plural = "mcpremoteproxies",
    doc = "A remote MCP proxy (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "MCPRemoteProxyStatus",
    shortname = "rp",
    shortname = "mcprp",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPRemoteProxy is deprecated; use toolhive.stacklok.dev/v1beta1 MCPRemoteProxy",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Remote URL", type_ = "string", json_path = ".spec.remoteURL"),
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
    /// The remote MCP endpoint (ToolHive ≤ v0.14 spelling).
    #[serde(rename = "remoteURL")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub remote_url_old: Option<String>,
    /// The same, as later v1alpha1 releases (and v1beta1) spell it; exactly one of the two.
    #[schemars(regex(pattern = r"^https?://"))]
    pub remote_url: Option<String>,
    /// Relaxes the private-address check for RFC 1918 / ULA addresses and `*.cluster.local`.
    /// Upstream added it at v1beta1 only; served here too, so the advice to set it works at
    /// either version.
    #[schemars(extend("default" = false))]
    pub allow_private_endpoint: Option<bool>,
    /// Deprecated: use `proxyPort`.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    #[schemars(range(min = 1, max = 65535), extend("default" = 8080))]
    pub proxy_port: Option<i32>,
    #[schemars(extend("enum" = REMOTE_TRANSPORTS, "default" = "streamable-http"))]
    pub transport: Option<String>,
    pub header_forward: Option<HeaderForward>,
    pub endpoint_prefix: Option<String>,
    /// Name of the MCPGroup this proxy belongs to.
    pub group_ref: Option<super::GroupRef>,
    pub tool_config_ref: Option<NameRef>,
    pub resource_overrides: Option<ResourceOverrides>,
    pub resources: Option<ResourceRequirements>,
    pub service_account: Option<String>,
    #[schemars(extend("enum" = SESSION_AFFINITIES, "default" = "ClientIP"))]
    pub session_affinity: Option<String>,
    #[schemars(extend("default" = false))]
    pub trust_proxy_headers: Option<bool>,
    pub oidc_config: Option<OidcConfig>,
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

/// Observed state of an MCPRemoteProxy (old shape: `externalURL`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPRemoteProxyStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    #[schemars(extend("enum" = crate::api::v1beta1::REMOTE_PROXY_PHASES))]
    pub phase: Option<String>,
    pub message: Option<String>,
    pub url: Option<String>,
    #[serde(rename = "externalURL")]
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

/// A logical group of MCP servers (deprecated version; use v1beta1).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPGroup",
    plural = "mcpgroups",
    doc = "A group of MCP servers (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "crate::api::v1beta1::MCPGroupStatus",
    shortname = "mcpg",
    shortname = "mcpgroup",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPGroup is deprecated; use toolhive.stacklok.dev/v1beta1 MCPGroup",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Servers", type_ = "integer", json_path = ".status.serverCount"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPGroupSpec {
    pub description: Option<String>,
}

/// A shared tools allow-list (deprecated version; use v1beta1).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPToolConfig",
    plural = "mcptoolconfigs",
    doc = "A shared tools allow-list (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "MCPToolConfigStatus",
    shortname = "tc",
    shortname = "toolconfig",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPToolConfig is deprecated; use toolhive.stacklok.dev/v1beta1 MCPToolConfig",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(
        name = "Filter Count",
        type_ = "integer",
        json_path = ".spec.toolsFilter[*]"
    ),
    printcolumn(
        name = "Referenced By",
        type_ = "string",
        json_path = ".status.referencingServers"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPToolConfigSpec {
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub tools_filter: Option<Vec<String>>,
    pub tools_override: Option<BTreeMap<String, ToolOverride>>,
}

/// Observed state of an MCPToolConfig (old shape: `referencingServers`).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPToolConfigStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    pub config_hash: Option<String>,
    pub referencing_servers: Option<Vec<String>>,
}
