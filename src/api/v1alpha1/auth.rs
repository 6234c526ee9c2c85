//! MCPOIDCConfig, MCPAuthzConfig and MCPExternalAuthConfig at v1alpha1: the same specs as
//! v1beta1 (upstream never changed them); the statuses of ToolHive v0.14 – v0.21 also list the
//! workloads using the config (`referencingWorkloads`, and `referencingServers` before that),
//! which v1beta1 dropped and conversion keeps in the stash.

use crate::api::auth::*;
use crate::api::schema::{conditions, free_form_object};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// Incoming token validation shared by workloads; audience and scopes are per workload.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPOIDCConfig",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPOIDCConfig is deprecated; use toolhive.stacklok.dev/v1beta1 MCPOIDCConfig",
    plural = "mcpoidcconfigs",
    doc = "Incoming token validation shared by workloads; audience and scopes are per workload (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "OidcConfigStatus",
    shortname = "mcpoidc",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Valid')].status"
    ),
    printcolumn(
        name = "References",
        type_ = "string",
        json_path = ".status.referencingWorkloads"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPOIDCConfigSpec {
    /// `kubernetesServiceAccount` or `inline`; exactly the matching sub-object is set.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = OIDC_CONFIG_TYPES))]
    pub type_: String,
    pub kubernetes_service_account: Option<KubernetesServiceAccountOidc>,
    pub inline: Option<InlineOidcShared>,
}

/// An authorizer configuration shared by workloads.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPAuthzConfig",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPAuthzConfig is deprecated; use toolhive.stacklok.dev/v1beta1 MCPAuthzConfig",
    plural = "mcpauthzconfigs",
    doc = "An authorizer configuration shared by workloads (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "crate::api::v1beta1::ConfigStatus",
    shortname = "authzcfg",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
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
pub struct MCPAuthzConfigSpec {
    /// The authorizer backend: `cedarv1` (or upstream's `httpv1`).
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    pub type_: String,
    /// The backend's configuration; for `cedarv1`: `policies`, `entities_json`,
    /// `group_claim_name`, `role_claim_name`, `group_entity_type`, `multi_valued_claims`.
    #[schemars(schema_with = "free_form_object")]
    pub config: serde_json::Value,
}

/// Credentials a workload adds to its requests towards the backend or remote server.
#[skip_serializing_none]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "toolhive.stacklok.dev",
    version = "v1alpha1",
    kind = "MCPExternalAuthConfig",
    storage = false,
    deprecated = "toolhive.stacklok.dev/v1alpha1 MCPExternalAuthConfig is deprecated; use toolhive.stacklok.dev/v1beta1 MCPExternalAuthConfig",
    plural = "mcpexternalauthconfigs",
    doc = "Credentials a workload adds to its requests towards the backend or remote server (deprecated version: use toolhive.stacklok.dev/v1beta1).",
    namespaced,
    status = "ExternalAuthConfigStatus",
    shortname = "extauth",
    shortname = "mcpextauth",
    category = "toolhive",
    label("toolhive.stacklok.dev/auto-migrate-storage-version", "true"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Valid')].status"
    ),
    printcolumn(
        name = "References",
        type_ = "string",
        json_path = ".status.referencingWorkloads"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPExternalAuthConfigSpec {
    /// Which sub-object applies; `unauthenticated` takes none.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = EXTERNAL_AUTH_TYPES))]
    pub type_: String,
    #[serde(flatten)]
    pub blocks: ExternalAuthBlocks,
}

/// Observed state of an MCPOIDCConfig (v1alpha1: with its users).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcConfigStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    pub config_hash: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub referencing_workloads: Option<Vec<WorkloadReference>>,
}

/// Observed state of an MCPExternalAuthConfig (v1alpha1: with its users, in either shape).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuthConfigStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    pub config_hash: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub referencing_workloads: Option<Vec<WorkloadReference>>,
    /// ToolHive ≤ v0.14: names of the MCPServers using it.
    pub referencing_servers: Option<Vec<String>>,
}
