//! MCPOIDCConfig, MCPAuthzConfig and MCPExternalAuthConfig at v1beta1: shared settings that
//! workloads reference by name (`oidcConfigRef`, `authzConfigRef`, `externalAuthConfigRef`).

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
    version = "v1beta1",
    kind = "MCPOIDCConfig",
    plural = "mcpoidcconfigs",
    doc = "Incoming token validation shared by workloads; audience and scopes are per workload.",
    namespaced,
    status = "ConfigStatus",
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
    version = "v1beta1",
    kind = "MCPAuthzConfig",
    plural = "mcpauthzconfigs",
    doc = "An authorizer configuration shared by workloads.",
    namespaced,
    status = "ConfigStatus",
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
    version = "v1beta1",
    kind = "MCPExternalAuthConfig",
    plural = "mcpexternalauthconfigs",
    doc = "Credentials a workload adds to its requests towards the backend or remote server.",
    namespaced,
    status = "ConfigStatus",
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

/// Observed state of a config kind (upstream's, at v1beta1).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    #[serde(default)]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    pub observed_generation: Option<i64>,
    /// A hash of the spec; workloads copy it and roll when it changes.
    pub config_hash: Option<String>,
}
