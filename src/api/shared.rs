//! Types shared by several kinds and by both API versions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// Allowed values, kept next to the types so the schema and the validator share them.
pub const TRANSPORTS: &[&str] = &["stdio", "streamable-http", "sse"];
pub const PROXY_MODES: &[&str] = &["sse", "streamable-http"];
pub const REMOTE_TRANSPORTS: &[&str] = &["sse", "streamable-http"];
pub const SESSION_AFFINITIES: &[&str] = &["ClientIP", "None"];
pub const PERMISSION_PROFILE_TYPES: &[&str] = &["builtin", "configmap"];
pub const BUILTIN_PROFILES: &[&str] = &["none", "network"];

/// A plain environment variable (no `valueFrom`: secrets go through `secrets`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: String,
}

/// A Secret key exposed to the MCP server as an environment variable.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret in the same namespace.
    pub name: String,
    /// Key inside the Secret.
    pub key: String,
    /// Environment variable name; defaults to `key`.
    pub target_env_name: Option<String>,
}

/// A Secret key (both parts required).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// A host path mounted into the MCP server container.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    #[schemars(extend("default" = false))]
    pub read_only: Option<bool>,
}

/// CPU and memory as Kubernetes quantity strings.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ResourceList {
    pub cpu: Option<String>,
    pub memory: Option<String>,
}

/// Requests and limits of the MCP server container.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ResourceRequirements {
    pub limits: Option<ResourceList>,
    pub requests: Option<ResourceList>,
}

/// The permission profile of the MCP server.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct PermissionProfileRef {
    /// `builtin` (name `none` or `network`) or `configmap` (name of a ConfigMap, `key` inside it).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = PERMISSION_PROFILE_TYPES, "default" = "builtin"))]
    pub type_: String,
    pub name: String,
    pub key: Option<String>,
}

/// A same-namespace reference by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct NameRef {
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A reference to a pull secret.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    #[schemars(extend("default" = ""))]
    pub name: Option<String>,
}

/// Labels and annotations.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct MetadataOverrides {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Overrides for the workload Deployment the operator creates.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentOverrides {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Plain env vars for the proxy container.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Option<Vec<EnvVar>>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    pub pod_template_metadata_overrides: Option<MetadataOverrides>,
}

/// Metadata overrides for the objects the operator creates.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceOverrides {
    pub proxy_deployment: Option<DeploymentOverrides>,
    pub proxy_service: Option<MetadataOverrides>,
}
