//! Authentication and authorization types, the same at both served versions (upstream's
//! v1alpha1 and v1beta1 schemas of these fields are identical): the references and inline
//! blocks on MCPServer and MCPRemoteProxy, and the parts of MCPOIDCConfig, MCPAuthzConfig and
//! MCPExternalAuthConfig.
//!
//! Rules that upstream writes as CEL (one sub-object per `type`, `authzConfig` xor
//! `authzConfigRef`) are checked by the admission core, which names the field that is wrong.

use super::schema::free_form_object;
use super::shared::SecretKeyRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// `MCPOIDCConfig.spec.type`.
pub const OIDC_CONFIG_TYPES: &[&str] = &["kubernetesServiceAccount", "inline"];
/// `authzConfig.type` on a workload.
pub const INLINE_AUTHZ_TYPES: &[&str] = &["configMap", "inline"];
/// `MCPExternalAuthConfig.spec.type`, with the sub-object each one selects (`unauthenticated`
/// selects none).
pub const EXTERNAL_AUTH_TYPES: &[&str] = &[
    "tokenExchange",
    "headerInjection",
    "bearerToken",
    "unauthenticated",
    "embeddedAuthServer",
    "awsSts",
    "upstreamInject",
    "obo",
    "xaa",
];
/// The external-auth types the data path will implement (issue 13); the others are accepted
/// by the schema and reported by their consumers.
pub const EXTERNAL_AUTH_IMPLEMENTED: &[&str] = &[
    "unauthenticated",
    "headerInjection",
    "bearerToken",
    "tokenExchange",
];
/// The authorizer backends upstream registers; `cedarv1` is the one we validate and will run.
pub const AUTHZ_BACKENDS: &[&str] = &["cedarv1", "httpv1"];
/// Kinds that may appear in a config kind's `referencingWorkloads`.
pub const WORKLOAD_KINDS: &[&str] = &["MCPServer", "VirtualMCPServer", "MCPRemoteProxy"];

/// `oidcConfigRef`: a shared MCPOIDCConfig, plus the values that must differ per workload.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcConfigRef {
    /// The MCPOIDCConfig, same namespace.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The `aud` tokens must carry; unique per workload, so a token for one cannot be replayed
    /// against another.
    #[schemars(length(min = 1))]
    pub audience: String,
    /// Scopes advertised in the protected-resource metadata (RFC 9728); `["openid"]` when unset.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub scopes: Option<Vec<String>>,
    /// The public URL clients use, when it is not the in-cluster Service URL.
    pub resource_url: Option<String>,
}

/// Inline authorization on a workload: Cedar policies in the spec or in a ConfigMap.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthzConfig {
    /// `configMap` (the default) or `inline`; exactly the matching sub-object is set.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = INLINE_AUTHZ_TYPES, "default" = "configMap"))]
    pub type_: String,
    pub config_map: Option<AuthzConfigMapRef>,
    pub inline: Option<InlineAuthz>,
    /// The JWT claim holding the caller's groups.
    #[schemars(length(max = 253))]
    pub group_claim_name: Option<String>,
    /// The JWT claim holding the caller's roles.
    #[schemars(length(max = 253))]
    pub role_claim_name: Option<String>,
    /// The Cedar entity type of group parents (`THVGroup` when unset).
    #[schemars(length(max = 63), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub group_entity_type: Option<String>,
}

/// A ConfigMap key holding an authorization config document.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct AuthzConfigMapRef {
    pub name: String,
    #[schemars(extend("default" = "authz.json"))]
    pub key: Option<String>,
}

/// Cedar policies written in the spec.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineAuthz {
    /// Cedar policies, one or more per string.
    #[schemars(length(min = 1), extend("x-kubernetes-list-type" = "atomic"))]
    pub policies: Vec<String>,
    /// Cedar entities, as JSON.
    #[schemars(extend("default" = "[]"))]
    pub entities_json: Option<String>,
    /// Deprecated upstream, and without effect on MCPServer and MCPRemoteProxy.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub primary_upstream_provider: Option<String>,
}

/// `audit`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Audit {
    /// One audit event per MCP request.
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
}

/// MCPOIDCConfig `kubernetesServiceAccount`: Kubernetes service-account tokens.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesServiceAccountOidc {
    /// The service account whose tokens are accepted; the pod's own when unset.
    pub service_account: Option<String>,
    /// Its namespace; the workload's when unset.
    pub namespace: Option<String>,
    #[schemars(extend("default" = "https://kubernetes.default.svc"))]
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    pub introspection_url: Option<String>,
    /// Use the pod's CA bundle and token towards the API server (true when unset).
    pub use_cluster_auth: Option<bool>,
}

/// MCPOIDCConfig `inline`: an OIDC provider given by its issuer.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InlineOidcShared {
    pub issuer: String,
    pub jwks_url: Option<String>,
    pub introspection_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_ref: Option<SecretKeyRef>,
    pub ca_bundle_ref: Option<CaBundleSource>,
    pub jwks_auth_token_path: Option<String>,
    #[serde(rename = "jwksAllowPrivateIP")]
    #[schemars(extend("default" = false))]
    pub jwks_allow_private_ip: Option<bool>,
    #[serde(rename = "protectedResourceAllowPrivateIP")]
    #[schemars(extend("default" = false))]
    pub protected_resource_allow_private_ip: Option<bool>,
    /// Allows `http://` issuer and JWKS URLs (development only).
    #[serde(rename = "insecureAllowHTTP")]
    #[schemars(extend("default" = false))]
    pub insecure_allow_http: Option<bool>,
}

/// A ConfigMap holding CA certificates.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundleSource {
    pub config_map_ref: Option<ConfigMapKeySelector>,
}

/// `corev1.ConfigMapKeySelector`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKeySelector {
    pub key: String,
    #[schemars(extend("default" = ""))]
    pub name: Option<String>,
    pub optional: Option<bool>,
}

/// MCPExternalAuthConfig `tokenExchange` (RFC 8693).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenExchange {
    pub token_url: String,
    pub audience: String,
    pub client_id: Option<String>,
    pub client_secret_ref: Option<SecretKeyRef>,
    /// When set, the exchanged token goes into this header instead of `Authorization`.
    pub external_token_header_name: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub scopes: Option<Vec<String>>,
    pub subject_provider_name: Option<String>,
    #[schemars(regex(
        pattern = r"^(access_token|id_token|jwt|urn:ietf:params:oauth:token-type:(access_token|id_token|jwt))?$"
    ))]
    pub subject_token_type: Option<String>,
}

/// MCPExternalAuthConfig `headerInjection`: one header from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderInjection {
    #[schemars(length(min = 1))]
    pub header_name: String,
    pub value_secret_ref: SecretKeyRef,
}

/// MCPExternalAuthConfig `bearerToken`: a static token from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BearerToken {
    pub token_secret_ref: SecretKeyRef,
}

/// The IAM role ARN pattern of `awsSts`.
const ROLE_ARN: &str = r"^arn:(aws|aws-cn|aws-us-gov):iam::\d{12}:role/[\w+=,.@\-_/]+$";

/// MCPExternalAuthConfig `awsSts` (accepted, not implemented).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSts {
    #[schemars(length(min = 1), regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$"))]
    pub region: String,
    #[schemars(regex(pattern = ROLE_ARN))]
    pub fallback_role_arn: Option<String>,
    #[schemars(extend("default" = "groups"))]
    pub role_claim: Option<String>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub role_mappings: Option<Vec<RoleMapping>>,
    #[schemars(extend("default" = "aws-mcp"))]
    pub service: Option<String>,
    #[schemars(range(min = 900, max = 43200), extend("default" = 3600))]
    pub session_duration: Option<i32>,
    #[schemars(extend("default" = "sub"))]
    pub session_name_claim: Option<String>,
    pub subject_provider_name: Option<String>,
}

/// One claim-to-role mapping of `awsSts`.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleMapping {
    #[schemars(regex(pattern = ROLE_ARN))]
    pub role_arn: String,
    #[schemars(length(min = 1))]
    pub claim: Option<String>,
    #[schemars(length(min = 1))]
    pub matcher: Option<String>,
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
}

/// MCPExternalAuthConfig `upstreamInject` (accepted, not implemented).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamInject {
    #[schemars(length(min = 1))]
    pub provider_name: String,
}

/// MCPExternalAuthConfig `obo`, Entra on-behalf-of (accepted, not implemented).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Obo {
    pub audience: Option<String>,
    #[schemars(regex(pattern = r"^https://[^\s?#@]+[^/\s?#@]$"))]
    pub authority: Option<String>,
    pub cache_skew: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_ref: Option<SecretKeyRef>,
    #[schemars(
        length(max = 20),
        extend("x-kubernetes-list-type" = "atomic", "items" = {"type": "string", "minLength": 1, "maxLength": 256})
    )]
    pub scopes: Option<Vec<String>>,
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub subject_token_provider_name: Option<String>,
    #[schemars(
        length(max = 253),
        regex(
            pattern = r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,})$"
        )
    )]
    pub tenant_id: Option<String>,
}

/// MCPExternalAuthConfig `xaa`, cross-application access (accepted, not implemented).
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Xaa {
    #[schemars(regex(pattern = r"^https://.*$"))]
    pub idp_token_url: String,
    pub target_audience: String,
    pub target_token_url: String,
    pub idp_client_id: Option<String>,
    pub idp_client_secret_ref: Option<SecretKeyRef>,
    pub insecure_target_token_url: Option<bool>,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub scopes: Option<Vec<String>>,
    pub subject_provider_name: Option<String>,
    #[schemars(extend("enum" = ["urn:ietf:params:oauth:token-type:id_token"]))]
    pub subject_token_type: Option<String>,
    pub target_client_id: Option<String>,
    pub target_client_secret_ref: Option<SecretKeyRef>,
    pub target_resource: Option<String>,
}

/// The sub-objects of an MCPExternalAuthConfig spec, shared by both versions' specs so the
/// admission rules are written once.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuthBlocks {
    pub token_exchange: Option<TokenExchange>,
    pub header_injection: Option<HeaderInjection>,
    pub bearer_token: Option<BearerToken>,
    /// Upstream's embedded OAuth authorization server: kept as written (its schema is large and
    /// nothing here runs it yet).
    #[serde(default)]
    #[schemars(schema_with = "free_form_object")]
    pub embedded_auth_server: Option<serde_json::Value>,
    pub aws_sts: Option<AwsSts>,
    pub upstream_inject: Option<UpstreamInject>,
    pub obo: Option<Obo>,
    pub xaa: Option<Xaa>,
}

impl ExternalAuthBlocks {
    /// The field names of the sub-objects that are set.
    pub fn present(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name: &'static str| {
            if set {
                out.push(name);
            }
        };
        add(self.token_exchange.is_some(), "tokenExchange");
        add(self.header_injection.is_some(), "headerInjection");
        add(self.bearer_token.is_some(), "bearerToken");
        add(self.embedded_auth_server.is_some(), "embeddedAuthServer");
        add(self.aws_sts.is_some(), "awsSts");
        add(self.upstream_inject.is_some(), "upstreamInject");
        add(self.obo.is_some(), "obo");
        add(self.xaa.is_some(), "xaa");
        out
    }
}

/// A workload using a config kind (the v1alpha1 status shape of ToolHive v0.15 – v0.21).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct WorkloadReference {
    #[schemars(extend("enum" = WORKLOAD_KINDS))]
    pub kind: String,
    #[schemars(length(min = 1))]
    pub name: String,
}
