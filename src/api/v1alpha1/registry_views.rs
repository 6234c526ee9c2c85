//! MCPRegistry's typed v2 layout at v1alpha1 (ToolHive v0.17.0 only): `sources` (each with a
//! name, claims and exactly one data source), `registries` as views over source names, and the
//! registry server's database, auth and telemetry settings as typed fields. The view items share
//! `registries` with the older list layout; their type is [`super::RegistryItem`], which carries
//! both shapes, and admission tells them apart by `spec.sources`.

use super::SOURCE_FORMATS;
use super::{ApiSource, ConfigMapKeySelector, ItemGitSource, RegistryFilter, SyncPolicy};
use crate::api::schema::free_form_object;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// At most this many sources, and this many views (the v0.17.0 CRD's bounds).
pub const MAX_SOURCES: usize = 20;
pub const MAX_VIEWS: usize = 20;

/// One data source of the typed v2 layout: exactly one of `configMapRef`, `git`, `api`, `url`,
/// `managed` and `kubernetes`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySourceConfig {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(extend("enum" = SOURCE_FORMATS, "default" = "toolhive"))]
    pub format: Option<String>,
    /// Claims every entry of this source carries (values: a string or a list of strings).
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub claims: Option<serde_json::Value>,
    pub config_map_ref: Option<ConfigMapKeySelector>,
    pub git: Option<ItemGitSource>,
    pub api: Option<ApiSource>,
    pub url: Option<UrlSource>,
    /// A source written through the registry API itself (at most one per registry).
    pub managed: Option<ManagedSource>,
    pub kubernetes: Option<KubernetesSource>,
    /// Ignored for `managed` and `kubernetes` sources.
    pub sync_policy: Option<SyncPolicy>,
    /// Ignored for `managed` and `kubernetes` sources.
    pub filter: Option<RegistryFilter>,
}

/// A registry file fetched over HTTP(S).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct UrlSource {
    #[schemars(length(min = 1), regex(pattern = r"^https?://.*"))]
    pub endpoint: String,
    /// Go duration; the registry server's default is 30s.
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub timeout: Option<String>,
}

/// Presence is the whole meaning: the source is edited through the registry API.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ManagedSource {}

/// MCP servers discovered from the cluster's own resources.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct KubernetesSource {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub namespaces: Option<Vec<String>>,
}

/// Short-lived database credentials instead of the pgpass passwords.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RegistryDynamicAuth {
    #[serde(rename = "awsRdsIam")]
    pub aws_rds_iam: Option<AwsRdsIam>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct AwsRdsIam {
    /// An AWS region, or `detect` to read it from the instance metadata.
    #[schemars(length(min = 1))]
    pub region: Option<String>,
}

/// Role-based authorization of the registry API.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RegistryAuthz {
    pub roles: Option<RegistryRoles>,
}

/// Each role is a list of claim matchers; a request matching any of them has the role.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryRoles {
    #[serde(default)]
    #[schemars(schema_with = "claim_matchers")]
    pub super_admin: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    #[schemars(schema_with = "claim_matchers")]
    pub manage_sources: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    #[schemars(schema_with = "claim_matchers")]
    pub manage_registries: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    #[schemars(schema_with = "claim_matchers")]
    pub manage_entries: Option<Vec<serde_json::Value>>,
}

/// A list of free-form claim objects (`[]apiextensionsv1.JSON` upstream).
fn claim_matchers(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    crate::api::schema::free_form_list(g)
}

/// OpenTelemetry export of the registry server.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryTelemetryConfig {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    pub service_name: Option<String>,
    pub service_version: Option<String>,
    /// The OTLP collector, `host:port`.
    pub endpoint: Option<String>,
    #[schemars(extend("default" = false))]
    pub insecure: Option<bool>,
    pub tracing: Option<RegistryTracing>,
    pub metrics: Option<RegistryMetrics>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RegistryTracing {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    /// The share of traces sampled, a number written as a string (`"0.05"`).
    pub sampling: Option<String>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RegistryMetrics {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
}
