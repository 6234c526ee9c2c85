//! VirtualMCPServer and MCPServerEntry at v1alpha1: every shape upstream served under that
//! name, side by side. VirtualMCPServer: the group as `config.groupRef` (ToolHive ≤ v0.19) or
//! `groupRef: {name}` (v0.20+), the inline `incomingAuth.oidcConfig` (≤ v0.20), and the backend
//! auth type spelled `external_auth_config_ref` (≤ v0.18; both spellings in v0.19).
//! MCPServerEntry: `remoteURL` (≤ v0.18) or `remoteUrl`, `groupRef` as a name (≤ v0.19) or
//! `{name}`.

use super::mcpserver::OidcConfig;
use crate::api::auth::{AuthzConfig, CaBundleSource, OidcConfigRef};
use crate::api::schema::free_form_object;
use crate::api::shared::*;
use crate::api::v1beta1::{
    HeaderForward, MCPServerEntryStatus, VirtualMCPServerStatus, VmcpConfig, INCOMING_AUTH_TYPES,
    OUTGOING_AUTH_SOURCES, SERVICE_TYPES,
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// The backend auth types of the old shape: upstream's first spelling and the current one.
pub const BACKEND_AUTH_TYPES: &[&str] = &[
    "discovered",
    "externalAuthConfigRef",
    "external_auth_config_ref",
];
/// The first spelling of `externalAuthConfigRef` as a backend auth type.
pub const SNAKE_EXTERNAL_AUTH: &str = "external_auth_config_ref";

/// One MCP endpoint aggregating an MCPGroup (deprecated version; use v1beta1).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "VirtualMCPServer",
    plural = "virtualmcpservers",
    doc = "A virtual MCP server (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "VirtualMCPServerStatus",
    shortname = "vmcp",
    shortname = "virtualmcp",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 VirtualMCPServer is deprecated; use toolhive.stacklok.dev/v1beta1 VirtualMCPServer",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(
        name = "Backends",
        type_ = "integer",
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
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMCPServerSpec {
    /// The MCPGroup (ToolHive v0.20+); older releases name it in `config.groupRef`. One of
    /// the two is required; both must then name the same group.
    pub group_ref: Option<NameRef>,
    pub incoming_auth: IncomingAuth,
    pub outgoing_auth: Option<OutgoingAuth>,
    /// Aggregation and operational settings; `config.groupRef` names the group in the old
    /// shape.
    pub config: Option<VmcpConfig>,
    #[schemars(extend("enum" = SERVICE_TYPES, "default" = "ClusterIP"))]
    pub service_type: Option<String>,
    #[schemars(extend("enum" = SESSION_AFFINITIES, "default" = "ClientIP"))]
    pub session_affinity: Option<String>,
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub pod_template_spec: Option<serde_json::Value>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

/// Incoming authentication, with the old inline `oidcConfig`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncomingAuth {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = INCOMING_AUTH_TYPES))]
    pub type_: String,
    /// The old inline OIDC configuration (ToolHive ≤ v0.20); mutually exclusive with
    /// `oidcConfigRef`.
    pub oidc_config: Option<OidcConfig>,
    pub oidc_config_ref: Option<OidcConfigRef>,
    pub authz_config: Option<AuthzConfig>,
    pub authz_config_ref: Option<NameRef>,
}

/// Outgoing authentication, with the old spelling of the backend auth type.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingAuth {
    #[schemars(extend("enum" = OUTGOING_AUTH_SOURCES, "default" = "discovered"))]
    pub source: Option<String>,
    pub default: Option<BackendAuth>,
    pub backends: Option<BTreeMap<String, BackendAuth>>,
}

#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendAuth {
    #[serde(rename = "type")]
    #[schemars(extend("enum" = BACKEND_AUTH_TYPES))]
    pub type_: String,
    pub external_auth_config_ref: Option<NameRef>,
}

/// A remote MCP endpoint in an MCPGroup (deprecated version; use v1beta1).
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPServerEntry",
    plural = "mcpserverentries",
    doc = "A remote MCP endpoint in an MCPGroup (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "MCPServerEntryStatus",
    shortname = "mcpentry",
    category = "toolhive",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPServerEntry is deprecated; use toolhive.stacklok.dev/v1beta1 MCPServerEntry",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Transport", type_ = "string", json_path = ".spec.transport"),
    printcolumn(name = "Remote URL", type_ = "string", json_path = ".spec.remoteURL"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPServerEntrySpec {
    /// The remote MCP endpoint (ToolHive ≤ v0.18 spelling).
    #[serde(rename = "remoteURL")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub remote_url_old: Option<String>,
    /// The same, as later releases spell it; exactly one of the two.
    #[schemars(regex(pattern = r"^https?://"))]
    pub remote_url: Option<String>,
    #[schemars(extend("enum" = REMOTE_TRANSPORTS))]
    pub transport: String,
    /// The MCPGroup it joins: its name, or `{name}`.
    pub group_ref: super::GroupRef,
    #[schemars(extend("default" = false))]
    pub allow_private_endpoint: Option<bool>,
    pub external_auth_config_ref: Option<NameRef>,
    pub header_forward: Option<HeaderForward>,
    pub ca_bundle_ref: Option<CaBundleSource>,
}
