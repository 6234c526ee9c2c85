//! The auth fields of an MCPServer or MCPRemoteProxy (`oidcConfigRef`, `authzConfig` or
//! `authzConfigRef`, `audit`, `externalAuthConfigRef`), resolved against the configs they name
//! into what the bridge runs with: the `auth` block of its config file, the headers it adds
//! from the environment, and the Secret keys the pod reads as `secretKeyRef` env.
//!
//! [`resolve`] is pure: the reconcilers look the configs up in [`AuthStores`] and pass them
//! in, so tests resolve the same way. A workload whose auth cannot be resolved must not serve at all (it would serve
//! unauthenticated, or call its backend without the credentials asked for), so every problem
//! comes back as a [`Finding`] that holds it, naming the field and the object.
//!
//! Secret values never pass through here: only Secret names, keys and the names of the
//! environment variables that will carry them.

use super::frame;
use crate::admission::auth::WorkloadAuth;
use crate::api::auth::{
    AuthzConfig, AuthzConfigMapRef, InlineOidcShared, KubernetesServiceAccountOidc, TokenExchange,
};
use crate::api::v1beta1::{MCPAuthzConfig, MCPExternalAuthConfig, MCPOIDCConfig};
use futures::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Upstream's condition types on a workload.
pub const OIDC_CONDITION: &str = "OIDCConfigRefValidated";
pub const AUTHZ_CONDITION: &str = "AuthzConfigRefValidated";
pub const EXTERNAL_AUTH_CONDITION: &str = "ExternalAuthConfigValidated";
/// Problems that lie between the fields rather than in one referenced object.
pub const AUTH_CONDITION: &str = "AuthConfigured";

/// The issuer of Kubernetes service-account tokens inside the cluster (upstream's default).
pub const KUBERNETES_ISSUER: &str = "https://kubernetes.default.svc";
/// Where the API server serves its service-account signing keys. The issuer's discovery
/// document names the API server's external address, which a pod may not reach; this path on
/// the in-cluster name always works.
const KUBERNETES_JWKS_PATH: &str = "/openid/v1/jwks";

/// Environment variables the pod carries secrets in (upstream's names).
pub const OIDC_CLIENT_SECRET_ENV: &str = "TOOLHIVE_OIDC_CLIENT_SECRET";
pub const TOKEN_EXCHANGE_CLIENT_SECRET_ENV: &str = "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET";
/// Upstream's prefix of a bearer token's variable (`TOOLHIVE_SECRET_<secret name>`).
const BEARER_TOKEN_ENV_PREFIX: &str = "TOOLHIVE_SECRET_";
/// The variable of a `headerInjection` header's value (upstream names none).
pub const HEADER_INJECTION_ENV: &str = "TOOLHIVE_HEADER_INJECTION_VALUE";

/// Where the kubelet puts a pod's service-account files when it mounts them for the API
/// (upstream's `useClusterAuth` reads the CA and the token there).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume that gives the bridge those files. Pods never automount them, so only the
/// container that runs the bridge gets a token (in an MCPServer pod, the server's process
/// runs in that container too).
pub const SERVICE_ACCOUNT_VOLUME: &str = "oidc-service-account";
/// How long a projected token lives; the kubelet writes a new one well before it expires.
const SERVICE_ACCOUNT_TOKEN_SECONDS: i64 = 3600;
/// The ConfigMap Kubernetes publishes in every namespace with the API server's CA.
const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Upstream's volume name prefix and directory of an inline `caBundleRef`.
pub const OIDC_CA_VOLUME_PREFIX: &str = "oidc-ca-bundle-";
const OIDC_CA_DIR: &str = "/config/certs";
/// The key of `caBundleRef.configMapRef` when none is given.
const DEFAULT_CA_KEY: &str = "ca.crt";

/// RFC 8693's name of an access token, the subject type when none is given.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The configs the workload's references name, as the caches hold them (`None`: not there).
#[derive(Default, Clone, Copy)]
pub struct Found<'a> {
    pub oidc: Option<&'a MCPOIDCConfig>,
    pub authz: Option<&'a MCPAuthzConfig>,
    pub external: Option<&'a MCPExternalAuthConfig>,
    /// The `data` of the ConfigMap `authzConfig.configMap` names, as read at reconcile
    /// (`None`: it does not exist).
    pub authz_config_map: Option<&'a BTreeMap<String, String>>,
}

/// What the resolution needs to know of the workload besides its auth fields.
pub struct Workload<'a> {
    pub auth: WorkloadAuth<'a>,
    pub name: &'a str,
    pub namespace: &'a str,
    /// The URL clients reach it at: the protected-resource metadata's `resource` unless the
    /// reference gives one.
    pub service_url: String,
    /// Whether its backend is reached over HTTP, where outgoing credentials can go (a stdio
    /// server has no requests to add them to).
    pub http_backend: bool,
    /// Header names the workload already adds from its own spec (`headerForward`).
    pub own_headers: Vec<String>,
}

/// A Secret key the pod reads into an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub env: String,
    pub secret: String,
    pub key: String,
    /// The field that asks for it, for messages (`MCPExternalAuthConfig "x" headerInjection`).
    pub field: String,
}

/// A volume the bridge reads an auth file from, and its read-only mount, which goes on the
/// bridge's container only.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeVolume {
    pub volume: Value,
    pub mount: Value,
}

/// What the bridge runs with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// The bridge config's `auth` block; `None` when nothing is asked for.
    pub block: Option<Value>,
    /// Header name → variable, for the bridge config's `headersFromEnv`.
    pub headers_from_env: BTreeMap<String, String>,
    pub secret_env: Vec<SecretEnv>,
    /// The files the `auth` block names (a CA bundle, a token), as volumes of the pod.
    pub volumes: Vec<BridgeVolume>,
    pub oidc_hash: Option<String>,
    pub authz_hash: Option<String>,
    pub external_hash: Option<String>,
}

/// One condition a workload reports about its auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub condition: &'static str,
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Finding {
    fn ok(condition: &'static str, reason: &'static str, message: String) -> Self {
        Finding {
            condition,
            ok: true,
            reason,
            message,
        }
    }
    fn hold(condition: &'static str, reason: &'static str, message: String) -> Self {
        Finding {
            condition,
            ok: false,
            reason,
            message: frame::truncate(&message, 1000),
        }
    }
}

/// The conditions to report, and what the bridge runs with or the first reason it must not run.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub findings: Vec<Finding>,
    pub outcome: Result<Resolved, Finding>,
}

impl Resolution {
    /// Holds the workload because a Secret key its pods would read is missing (`why` names the
    /// field, the Secret and the key): pods without it could not start, and the pods still
    /// running from before must not go on serving without the auth now asked for.
    pub fn hold_for_secret(&mut self, why: String) {
        let f = Finding::hold(AUTH_CONDITION, "AuthSecretNotFound", why);
        self.findings.push(f.clone());
        self.outcome = Err(f);
    }
}

/// The Secret keys the pods read, in the shape [`frame::SecretKeys::first_missing`] checks.
pub fn secret_uses(resolved: &Resolved) -> Vec<frame::SecretUse> {
    resolved
        .secret_env
        .iter()
        .map(|s| (s.field.clone(), s.secret.clone(), s.key.clone()))
        .collect()
}

/// Resolves the workload's auth fields against the configs found for them.
pub fn resolve(w: &Workload<'_>, found: Found<'_>) -> Resolution {
    let mut findings = Vec::new();
    let mut resolved = Resolved::default();
    let mut block = Map::new();
    let oidc = w.auth.oidc_config_ref.map(|r| judge_oidc(w, r, found.oidc));
    if let Some((finding, oidc)) = oidc {
        if let Some(oidc) = oidc {
            block.insert("oidc".into(), oidc.block);
            resolved.secret_env.extend(oidc.secret);
            resolved.volumes.extend(oidc.volumes);
            resolved.oidc_hash = Some(oidc.hash);
        }
        findings.push(finding);
    }
    if let Some(judged) = judge_authz(w, found) {
        if let Some(authz) = &judged.1 {
            block.insert("authz".into(), authz.block.clone());
            resolved.authz_hash = authz.hash.clone();
        }
        findings.extend(judged.0);
    }
    if w.auth.audit.and_then(|a| a.enabled).unwrap_or(false) {
        block.insert("audit".into(), json!({"enabled": true}));
    }
    if let Some(r) = w.auth.external_auth_config_ref {
        let judged = judge_external(w, &r.name, found.external);
        if let Some(outgoing) = &judged.1 {
            apply_outgoing(outgoing, &mut block, &mut resolved);
        }
        findings.push(judged.0);
    }
    findings.extend(between_fields(w, &block));
    if !block.is_empty() {
        resolved.block = Some(Value::Object(block));
    }
    let outcome = match findings.iter().find(|f| !f.ok) {
        Some(problem) => Err(problem.clone()),
        None => Ok(resolved),
    };
    Resolution { findings, outcome }
}

/// What holds the workload between its fields rather than in one config: a policy or a token
/// exchange decides on the caller's token, which only `oidcConfigRef` validates.
fn between_fields(w: &Workload<'_>, block: &Map<String, Value>) -> Vec<Finding> {
    let mut cross = Vec::new();
    if block.contains_key("authz") && w.auth.oidc_config_ref.is_none() {
        cross.push(Finding::hold(
            AUTH_CONDITION,
            "AuthzNeedsAuthentication",
            format!(
                "{} decides on the caller's token, which needs spec.oidcConfigRef: without it every call would be refused; \
                 add spec.oidcConfigRef or remove the authorization",
                authz_field(&w.auth)
            ),
        ));
    }
    let exchanges = block
        .get("outgoing")
        .is_some_and(|o| o.get("tokenExchange").is_some());
    if exchanges && w.auth.oidc_config_ref.is_none() {
        cross.push(Finding::hold(
            AUTH_CONDITION,
            "TokenExchangeNeedsAuthentication",
            "the MCPExternalAuthConfig of spec.externalAuthConfigRef exchanges the caller's token (tokenExchange), \
             which needs spec.oidcConfigRef to validate it first; add spec.oidcConfigRef"
                .into(),
        ));
    }
    cross
}

fn authz_field(auth: &WorkloadAuth<'_>) -> &'static str {
    if auth.authz_config_ref.is_some() {
        "spec.authzConfigRef"
    } else {
        "spec.authzConfig"
    }
}

/// The config, or the finding that holds the workload: it is missing, or admission refuses it
/// (the webhook may have been off when it was written). The last argument is the condition
/// and its not-found and not-valid reasons, upstream's for the kind.
fn usable<'a, C: serde::Serialize>(
    kind: &str,
    name: &str,
    field: &str,
    w: &Workload<'_>,
    config: Option<&'a C>,
    (condition, not_found, not_valid): (&'static str, &'static str, &'static str),
) -> Result<&'a C, Finding> {
    let Some(config) = config else {
        return Err(Finding::hold(
            condition,
            not_found,
            format!(
                "{kind} {name:?} ({field}) does not exist in namespace {ns}; the {wkind} is held (no Deployment, no Service) \
                 so that it never runs without it; create it or remove {field}",
                ns = w.namespace,
                wkind = w.auth.kind
            ),
        ));
    };
    match frame::admission_refusal(config) {
        Some(errors) => Err(Finding::hold(
            condition,
            not_valid,
            format!(
                "{kind} {name:?} ({field}) is not valid, so the {wkind} is held: {errors}",
                wkind = w.auth.kind
            ),
        )),
        None => Ok(config),
    }
}

/// A reference's condition, and what it adds when it can be used.
type Judged<T> = (Finding, Option<T>);

/// What an `oidcConfigRef` adds: the bridge's `oidc` block, the client secret's env, the
/// volumes of the files it names, the config's hash.
struct Oidc {
    block: Value,
    secret: Option<SecretEnv>,
    volumes: Vec<BridgeVolume>,
    hash: String,
}

/// `oidcConfigRef`: what it adds, or why the workload is held.
fn judge_oidc(
    w: &Workload<'_>,
    r: &crate::api::auth::OidcConfigRef,
    config: Option<&MCPOIDCConfig>,
) -> Judged<Oidc> {
    let reasons = (
        OIDC_CONDITION,
        "OIDCConfigRefNotFound",
        "OIDCConfigRefNotValid",
    );
    let config = match usable(
        "MCPOIDCConfig",
        &r.name,
        "spec.oidcConfigRef",
        w,
        config,
        reasons,
    ) {
        Ok(c) => c,
        Err(f) => return (f, None),
    };
    let mut oidc = Map::new();
    let (secret, volumes) = match (&config.spec.kubernetes_service_account, &config.spec.inline) {
        (Some(k), _) => (None, kubernetes_oidc(k, &mut oidc)),
        (None, Some(i)) => inline_oidc(&r.name, i, &mut oidc),
        // Admission requires the sub-object of the type; a `kubernetesServiceAccount` config
        // written without one means upstream's defaults.
        (None, None) => (
            None,
            kubernetes_oidc(&KubernetesServiceAccountOidc::default(), &mut oidc),
        ),
    };
    if let Some(url) = token_in_the_clear(&oidc) {
        let f = Finding::hold(
            OIDC_CONDITION,
            "OIDCConfigRefNotValid",
            format!(
                "MCPOIDCConfig {:?} sends the token of spec.inline.jwksAuthTokenPath to {url:?}, which is plain http: \
                 the bridge sends it over https only, so it would refuse to start; use an https issuer or jwksUrl",
                r.name
            ),
        );
        return (f, None);
    }
    oidc.insert("audience".into(), json!(r.audience));
    let resource = r
        .resource_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| w.service_url.clone());
    oidc.insert("resourceUrl".into(), json!(resource));
    if let Some(scopes) = r.scopes.as_ref().filter(|s| !s.is_empty()) {
        oidc.insert("scopes".into(), json!(scopes));
    }
    let hash = frame::published_hash(config.status.as_ref(), &config.spec);
    let finding = Finding::ok(
        OIDC_CONDITION,
        "OIDCConfigRefValid",
        format!(
            "MCPOIDCConfig {:?} is valid; the bridge checks every caller's bearer token for audience {:?}",
            r.name, r.audience
        ),
    );
    let oidc = Oidc {
        block: Value::Object(oidc),
        secret,
        volumes,
        hash,
    };
    (finding, Some(oidc))
}

/// The plain-http URL the block's `jwksAuthTokenPath` token would be sent to (the JWKS URL, or
/// the issuer's discovery without one), if any: the bridge refuses such a config.
fn token_in_the_clear(oidc: &Map<String, Value>) -> Option<String> {
    oidc.get("jwksAuthTokenPath")?;
    let keys_from = oidc
        .get("jwksUrl")
        .or_else(|| oidc.get("issuer"))?
        .as_str()?;
    (!crate::bridge::config::is_https(keys_from)).then(|| keys_from.to_owned())
}

/// Service-account tokens: the API server is the issuer and serves the keys. With cluster auth
/// (the default) the bridge reads them as the pod's service account, over the cluster's CA:
/// the volume that holds both files is returned.
fn kubernetes_oidc(
    k: &KubernetesServiceAccountOidc,
    oidc: &mut Map<String, Value>,
) -> Vec<BridgeVolume> {
    let issuer = k
        .issuer
        .clone()
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| KUBERNETES_ISSUER.into());
    let jwks = k.jwks_url.clone().filter(|u| !u.is_empty()).or_else(|| {
        (issuer == KUBERNETES_ISSUER).then(|| format!("{KUBERNETES_ISSUER}{KUBERNETES_JWKS_PATH}"))
    });
    oidc.insert("issuer".into(), json!(issuer));
    if let Some(jwks) = jwks {
        oidc.insert("jwksUrl".into(), json!(jwks));
    }
    if let Some(url) = k.introspection_url.as_ref().filter(|u| !u.is_empty()) {
        oidc.insert("introspectionUrl".into(), json!(url));
    }
    // The API server sits on a cluster-internal address; upstream allows private addresses
    // with cluster auth (the default), and reads the keys with the pod's CA and token (the
    // API server serves them only to callers it knows).
    if !k.use_cluster_auth.unwrap_or(true) {
        return Vec::new();
    }
    oidc.insert("allowPrivateIp".into(), json!(true));
    oidc.insert(
        "caBundle".into(),
        json!(format!("{SERVICE_ACCOUNT_DIR}/{DEFAULT_CA_KEY}")),
    );
    oidc.insert(
        "jwksAuthTokenPath".into(),
        json!(format!("{SERVICE_ACCOUNT_DIR}/token")),
    );
    vec![service_account_volume()]
}

/// The pod's service-account token (bounded lifetime, for the API server's audience) and the
/// cluster's CA, where automount would have put them. A projected volume mounted on the
/// bridge's container alone, so that no other container of the pod gets a token.
fn service_account_volume() -> BridgeVolume {
    BridgeVolume {
        volume: json!({"name": SERVICE_ACCOUNT_VOLUME, "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": SERVICE_ACCOUNT_TOKEN_SECONDS}},
            {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": DEFAULT_CA_KEY, "path": DEFAULT_CA_KEY}]}},
        ]}}),
        mount: json!({"name": SERVICE_ACCOUNT_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": true}),
    }
}

/// `caBundleRef.configMapRef`'s key mounted where upstream mounts it, and the file's path.
fn ca_bundle_volume(r: &crate::api::auth::ConfigMapKeySelector) -> Option<(BridgeVolume, String)> {
    let name = r.name.as_deref().filter(|n| !n.is_empty())?;
    let key = Some(r.key.as_str())
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_CA_KEY);
    let volume = format!("{OIDC_CA_VOLUME_PREFIX}{name}");
    let dir = format!("{OIDC_CA_DIR}/{name}");
    let bridge = BridgeVolume {
        volume: json!({"name": volume, "configMap": {"name": name, "items": [{"key": key, "path": key}]}}),
        mount: json!({"name": volume, "mountPath": dir, "readOnly": true}),
    };
    Some((bridge, format!("{dir}/{key}")))
}

/// An OIDC provider by its issuer; the client secret stays in its Secret (env only). Returns
/// the secret's env and the volumes of the files the block names.
fn inline_oidc(
    name: &str,
    i: &InlineOidcShared,
    oidc: &mut Map<String, Value>,
) -> (Option<SecretEnv>, Vec<BridgeVolume>) {
    let mut volumes = Vec::new();
    oidc.insert("issuer".into(), json!(i.issuer));
    let ca = i
        .ca_bundle_ref
        .as_ref()
        .and_then(|c| c.config_map_ref.as_ref());
    if let Some((volume, path)) = ca.and_then(ca_bundle_volume) {
        oidc.insert("caBundle".into(), json!(path));
        volumes.push(volume);
    }
    if let Some(path) = i.jwks_auth_token_path.as_ref().filter(|p| !p.is_empty()) {
        oidc.insert("jwksAuthTokenPath".into(), json!(path));
        // Upstream's pods have the service-account token there (automount); ours get it only
        // where it is asked for.
        if Path::new(path).parent() == Some(Path::new(SERVICE_ACCOUNT_DIR)) {
            volumes.push(service_account_volume());
        }
    }
    if let Some(url) = i.jwks_url.as_ref().filter(|u| !u.is_empty()) {
        oidc.insert("jwksUrl".into(), json!(url));
    }
    if i.jwks_allow_private_ip == Some(true) {
        oidc.insert("allowPrivateIp".into(), json!(true));
    }
    // The client identity is used for introspection only: without an endpoint the bridge has
    // no use for it (and refuses a client without one).
    let Some(url) = i.introspection_url.as_ref().filter(|u| !u.is_empty()) else {
        return (None, volumes);
    };
    oidc.insert("introspectionUrl".into(), json!(url));
    if let Some(client) = i.client_id.as_ref().filter(|c| !c.is_empty()) {
        oidc.insert("clientId".into(), json!(client));
    }
    let Some(s) = &i.client_secret_ref else {
        return (None, volumes);
    };
    oidc.insert("clientSecretEnv".into(), json!(OIDC_CLIENT_SECRET_ENV));
    let secret = SecretEnv {
        env: OIDC_CLIENT_SECRET_ENV.into(),
        secret: s.name.clone(),
        key: s.key.clone(),
        field: format!("MCPOIDCConfig {name:?} spec.inline.clientSecretRef"),
    };
    (Some(secret), volumes)
}

/// The bridge's `authz` block, and the shared config's hash (none for inline policies).
struct Authz {
    block: Value,
    hash: Option<String>,
}

/// `authzConfigRef` or inline `authzConfig`: its conditions (none for inline policies that can
/// be used) and what it adds; `None` when neither is set.
fn judge_authz(w: &Workload<'_>, found: Found<'_>) -> Option<(Vec<Finding>, Option<Authz>)> {
    let config = found.authz;
    if let Some(r) = w.auth.authz_config_ref {
        let reasons = (
            AUTHZ_CONDITION,
            "AuthzConfigRefNotFound",
            "AuthzConfigRefNotValid",
        );
        let config = match usable(
            "MCPAuthzConfig",
            &r.name,
            "spec.authzConfigRef",
            w,
            config,
            reasons,
        ) {
            Ok(c) => c,
            Err(f) => return Some((vec![f], None)),
        };
        if config.spec.type_ != "cedarv1" {
            let f = Finding::hold(
                AUTHZ_CONDITION,
                "AuthzConfigRefNotSupported",
                format!(
                    "MCPAuthzConfig {:?} has type {:?}; mcp-operator runs only cedarv1, so the workload is held \
                     rather than served without the authorization asked for",
                    r.name, config.spec.type_
                ),
            );
            return Some((vec![f], None));
        }
        let options = &config.spec.config;
        let text = |k: &str| options.get(k).and_then(Value::as_str).map(str::to_owned);
        let policies: Vec<String> = options
            .get("policies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect();
        let block = cedar_block(
            w.name,
            policies,
            text("entities_json"),
            text("group_claim_name"),
            text("role_claim_name"),
            text("group_entity_type"),
        );
        let hash = frame::published_hash(config.status.as_ref(), &config.spec);
        let ok = Finding::ok(
            AUTHZ_CONDITION,
            "AuthzConfigRefValid",
            format!(
                "MCPAuthzConfig {:?} is valid; the bridge decides every call with its Cedar policies",
                r.name
            ),
        );
        let hash = Some(hash);
        return Some((vec![ok], Some(Authz { block, hash })));
    }
    let a: &AuthzConfig = w.auth.authz_config?;
    if a.type_ != "inline" {
        return Some(match from_config_map(w, a, found.authz_config_map) {
            Ok(authz) => (Vec::new(), Some(authz)),
            Err(f) => (vec![f], None),
        });
    }
    let Some(inline) = a.inline.as_ref() else {
        return Some((vec![sub_object_missing(w, "inline")], None));
    };
    let block = cedar_block(
        w.name,
        inline.policies.clone(),
        inline.entities_json.clone(),
        a.group_claim_name.clone(),
        a.role_claim_name.clone(),
        a.group_entity_type.clone(),
    );
    Some((Vec::new(), Some(Authz { block, hash: None })))
}

/// `authzConfig` without the sub-object its type selects (admission refuses it; the webhook
/// may have been off).
fn sub_object_missing(w: &Workload<'_>, sub: &str) -> Finding {
    Finding::hold(
        AUTH_CONDITION,
        "AuthzConfigInvalid",
        format!(
            "{at}.authzConfig.{sub} must be set when {at}.authzConfig.type is {sub:?}; the {kind} is held so that it \
             never serves without the authorization asked for",
            at = w.auth.at,
            kind = w.auth.kind
        ),
    )
}

/// `authzConfig.type: configMap`: the policies of the authz document in the ConfigMap's key
/// (upstream's format), checked as admission checks an MCPAuthzConfig's; the claim settings of
/// the spec take precedence over the document's. A change of the document changes the bridge
/// config, which rolls the pods.
fn from_config_map(
    w: &Workload<'_>,
    a: &AuthzConfig,
    data: Option<&BTreeMap<String, String>>,
) -> Result<Authz, Finding> {
    let Some(r) = a.config_map.as_ref() else {
        return Err(sub_object_missing(w, "configMap"));
    };
    let key = config_map_key(r);
    let field = format!("{}.authzConfig.configMap", w.auth.at);
    let kind = w.auth.kind;
    let name = &r.name;
    let Some(data) = data else {
        return Err(Finding::hold(
            AUTH_CONDITION,
            "AuthzConfigMapNotFound",
            format!(
                "ConfigMap {name:?} ({field}) does not exist in namespace {ns}; the {kind} is held (no Deployment, \
                 no Service) so that it never serves without the authorization asked for; create it with the \
                 authorization config under key {key:?}",
                ns = w.namespace
            ),
        ));
    };
    let Some(text) = data.get(key) else {
        return Err(Finding::hold(
            AUTH_CONDITION,
            "AuthzConfigMapNotFound",
            format!(
                "ConfigMap {name:?} ({field}) has no key {key:?} (it has {keys}); the {kind} is held so that it never \
                 serves without the authorization asked for; put the authorization config under {key:?} or set {field}.key",
                keys = if data.is_empty() {
                    "none".to_string()
                } else {
                    data.keys().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
                }
            ),
        ));
    };
    let options = crate::admission::auth::read_authz_document(text).map_err(|why| {
        Finding::hold(
            AUTH_CONDITION,
            "AuthzConfigMapInvalid",
            format!(
                "ConfigMap {name:?} key {key:?} ({field}) is not a valid authorization config, so the {kind} is held: {why}"
            ),
        )
    })?;
    let block = cedar_block(
        w.name,
        options.policies,
        options.entities_json,
        a.group_claim_name.clone().or(options.group_claim_name),
        a.role_claim_name.clone().or(options.role_claim_name),
        a.group_entity_type.clone().or(options.group_entity_type),
    );
    Ok(Authz { block, hash: None })
}

/// The key of `authzConfig.configMap` (the default when unset or empty).
fn config_map_key(r: &AuthzConfigMapRef) -> &str {
    r.key
        .as_deref()
        .filter(|k| !k.is_empty())
        .unwrap_or(crate::admission::auth::DEFAULT_AUTHZ_CONFIG_MAP_KEY)
}

/// The ConfigMap `auth`'s `authzConfig` reads its policies from, if it reads them from one.
pub fn authz_config_map<'a>(auth: &WorkloadAuth<'a>) -> Option<&'a str> {
    auth.authz_config
        .filter(|a| a.type_ != "inline")
        .and_then(|a| a.config_map.as_ref())
        .map(|r| r.name.as_str())
}

/// Reads the ConfigMap `auth`'s `authzConfig` names in `ns`, if it names one: its `data`, or
/// `None` when it does not exist. Read at each reconcile (its watch is by metadata only).
pub async fn read_authz_config_map(
    client: &kube::Client,
    ns: &str,
    auth: &WorkloadAuth<'_>,
) -> Result<Option<BTreeMap<String, String>>, frame::Error> {
    let Some(name) = authz_config_map(auth) else {
        return Ok(None);
    };
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(cm) => Ok(cm.map(|cm| cm.data.unwrap_or_default())),
        Err(source) => Err(frame::Error::ReadChild {
            child: format!("ConfigMap {ns}/{name}"),
            source,
        }),
    }
}

/// The bridge's `authz` block, in its camelCase; unset options are left out.
fn cedar_block(
    server: &str,
    policies: Vec<String>,
    entities: Option<String>,
    group_claim: Option<String>,
    role_claim: Option<String>,
    group_type: Option<String>,
) -> Value {
    let mut b = Map::new();
    b.insert("policies".into(), json!(policies));
    for (key, value) in [
        ("entitiesJson", entities),
        ("groupClaimName", group_claim),
        ("roleClaimName", role_claim),
        ("groupEntityType", group_type),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            b.insert(key.into(), json!(v));
        }
    }
    b.insert("serverName".into(), json!(server));
    Value::Object(b)
}

/// What an MCPExternalAuthConfig adds to the requests towards the backend.
#[derive(Debug, Clone, PartialEq)]
enum Outgoing {
    Nothing,
    Header {
        name: String,
        env: SecretEnv,
    },
    Bearer(SecretEnv),
    Exchange {
        block: Value,
        secret: Option<SecretEnv>,
    },
}

/// `externalAuthConfigRef`: what is added, or why the workload is held.
fn judge_external(
    w: &Workload<'_>,
    name: &str,
    config: Option<&MCPExternalAuthConfig>,
) -> Judged<(Outgoing, String)> {
    let reasons = (
        EXTERNAL_AUTH_CONDITION,
        "ExternalAuthConfigNotFound",
        "InvalidConfig",
    );
    let field = "spec.externalAuthConfigRef";
    let config = match usable("MCPExternalAuthConfig", name, field, w, config, reasons) {
        Ok(c) => c,
        Err(f) => return (f, None),
    };
    let type_ = config.spec.type_.as_str();
    let hold = |reason, message: String| {
        (
            Finding::hold(EXTERNAL_AUTH_CONDITION, reason, message),
            None,
        )
    };
    if !crate::api::auth::EXTERNAL_AUTH_IMPLEMENTED.contains(&type_) {
        return hold(
            "ExternalAuthTypeNotSupported",
            format!(
                "MCPExternalAuthConfig {name:?} has type {type_:?}, which mcp-operator does not build (it builds {}); \
                 the {} is held so that it never runs without the credentials asked for",
                crate::api::auth::EXTERNAL_AUTH_IMPLEMENTED.join(", "),
                w.auth.kind
            ),
        );
    }
    if type_ != "unauthenticated" && !w.http_backend {
        return hold(
            "ExternalAuthNeedsHttpBackend",
            format!(
                "MCPExternalAuthConfig {name:?} ({type_}) adds credentials to HTTP requests towards the backend, and a \
                 stdio server receives none; use transport sse or streamable-http, or remove {field}"
            ),
        );
    }
    let origin = format!("MCPExternalAuthConfig {name:?}");
    let b = &config.spec.blocks;
    let outgoing = match type_ {
        "headerInjection" => match &b.header_injection {
            Some(h) => Outgoing::Header {
                name: h.header_name.clone(),
                env: SecretEnv {
                    env: HEADER_INJECTION_ENV.into(),
                    secret: h.value_secret_ref.name.clone(),
                    key: h.value_secret_ref.key.clone(),
                    field: format!("{origin} spec.headerInjection.valueSecretRef"),
                },
            },
            None => Outgoing::Nothing,
        },
        "bearerToken" => match &b.bearer_token {
            Some(t) => Outgoing::Bearer(SecretEnv {
                env: format!("{BEARER_TOKEN_ENV_PREFIX}{}", t.token_secret_ref.name),
                secret: t.token_secret_ref.name.clone(),
                key: t.token_secret_ref.key.clone(),
                field: format!("{origin} spec.bearerToken.tokenSecretRef"),
            }),
            None => Outgoing::Nothing,
        },
        "tokenExchange" => match &b.token_exchange {
            Some(t) if t.subject_provider_name.as_deref().is_some_and(|p| !p.is_empty()) => {
                return hold(
                    "ExternalAuthTypeNotSupported",
                    format!(
                        "{origin} sets spec.tokenExchange.subjectProviderName, a token of an embedded authorization \
                         server's upstream, which mcp-operator does not build; the {} is held",
                        w.auth.kind
                    ),
                )
            }
            Some(t) => token_exchange(&origin, t),
            None => Outgoing::Nothing,
        },
        _ => Outgoing::Nothing,
    };
    if let Outgoing::Header { name: header, .. } = &outgoing {
        if w.own_headers.iter().any(|h| h.eq_ignore_ascii_case(header)) {
            return hold(
                "HeaderConflict",
                format!(
                    "{origin} injects header {header:?}, which spec.headerForward sets too; remove one of them"
                ),
            );
        }
    }
    let hash = frame::published_hash(config.status.as_ref(), &config.spec);
    let finding = Finding::ok(
        EXTERNAL_AUTH_CONDITION,
        "ExternalAuthConfigValid",
        format!("{origin} ({type_}) is valid and applied to requests towards the backend"),
    );
    (finding, Some((outgoing, hash)))
}

/// RFC 8693 towards the backend; the client secret stays in its Secret.
fn token_exchange(origin: &str, t: &TokenExchange) -> Outgoing {
    let mut x = Map::new();
    x.insert("tokenUrl".into(), json!(t.token_url));
    if let Some(c) = t.client_id.as_ref().filter(|c| !c.is_empty()) {
        x.insert("clientId".into(), json!(c));
    }
    let secret = t.client_secret_ref.as_ref().map(|s| SecretEnv {
        env: TOKEN_EXCHANGE_CLIENT_SECRET_ENV.into(),
        secret: s.name.clone(),
        key: s.key.clone(),
        field: format!("{origin} spec.tokenExchange.clientSecretRef"),
    });
    if secret.is_some() {
        x.insert(
            "clientSecretEnv".into(),
            json!(TOKEN_EXCHANGE_CLIENT_SECRET_ENV),
        );
    }
    x.insert("audience".into(), json!(t.audience));
    if let Some(s) = t.scopes.as_ref().filter(|s| !s.is_empty()) {
        x.insert("scopes".into(), json!(s));
    }
    x.insert(
        "subjectTokenType".into(),
        json!(full_token_type(t.subject_token_type.as_deref())),
    );
    if let Some(h) = t
        .external_token_header_name
        .as_ref()
        .filter(|h| !h.is_empty())
    {
        x.insert("externalTokenHeaderName".into(), json!(h));
    }
    Outgoing::Exchange {
        block: Value::Object(x),
        secret,
    }
}

/// The short forms upstream accepts (`access_token`, `id_token`, `jwt`) as their URNs.
fn full_token_type(t: Option<&str>) -> String {
    match t.filter(|t| !t.is_empty()) {
        None => ACCESS_TOKEN_TYPE.into(),
        Some(short @ ("access_token" | "id_token" | "jwt")) => {
            format!("urn:ietf:params:oauth:token-type:{short}")
        }
        Some(full) => full.into(),
    }
}

fn apply_outgoing(
    (outgoing, hash): &(Outgoing, String),
    block: &mut Map<String, Value>,
    resolved: &mut Resolved,
) {
    resolved.external_hash = Some(hash.clone());
    match outgoing {
        Outgoing::Nothing => {}
        Outgoing::Header { name, env } => {
            resolved
                .headers_from_env
                .insert(name.clone(), env.env.clone());
            resolved.secret_env.push(env.clone());
        }
        Outgoing::Bearer(env) => {
            block.insert("outgoing".into(), json!({"bearerTokenEnv": env.env}));
            resolved.secret_env.push(env.clone());
        }
        Outgoing::Exchange { block: x, secret } => {
            block.insert("outgoing".into(), json!({"tokenExchange": x}));
            resolved.secret_env.extend(secret.clone());
        }
    }
}

/// The volumes of the auth files and their mounts on the bridge's container.
pub fn volumes_and_mounts(resolved: &Resolved) -> (Vec<Value>, Vec<Value>) {
    resolved
        .volumes
        .iter()
        .map(|v| (v.volume.clone(), v.mount.clone()))
        .unzip()
}

/// The pod's env entries for the Secret keys (references only: values never leave the Secret).
pub fn env_entries(resolved: &Resolved) -> Vec<Value> {
    resolved
        .secret_env
        .iter()
        .map(|s| json!({"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}))
        .collect()
}

/// The names of the Secrets the configs found for a workload make its pods read, whether or
/// not the resolution succeeds: a Secret's change must bring the workload back either way.
pub fn secret_names(found: Found<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(i) = found.oidc.and_then(|c| c.spec.inline.as_ref()) {
        names.extend(i.client_secret_ref.as_ref().map(|s| s.name.clone()));
    }
    if let Some(b) = found.external.map(|c| &c.spec.blocks) {
        names.extend(
            b.header_injection
                .as_ref()
                .map(|h| h.value_secret_ref.name.clone()),
        );
        names.extend(
            b.bearer_token
                .as_ref()
                .map(|t| t.token_secret_ref.name.clone()),
        );
        let exchange = b.token_exchange.as_ref();
        names.extend(
            exchange
                .and_then(|t| t.client_secret_ref.as_ref())
                .map(|s| s.name.clone()),
        );
    }
    names
}

/// Whether the workload's auth fields name `config` (an MCPOIDCConfig, MCPAuthzConfig or
/// MCPExternalAuthConfig of its namespace), for mapping a config's events to its users.
pub fn names_config<C: Resource<DynamicType = ()>>(auth: &WorkloadAuth<'_>, config: &C) -> bool {
    let name = config.meta().name.as_deref();
    let named = match C::kind(&()).as_ref() {
        "MCPOIDCConfig" => auth.oidc_config_ref.map(|r| r.name.as_str()),
        "MCPAuthzConfig" => auth.authz_config_ref.map(|r| r.name.as_str()),
        "MCPExternalAuthConfig" => auth.external_auth_config_ref.map(|r| r.name.as_str()),
        _ => None,
    };
    named.is_some() && named == name
}

/// The workloads of `store` whose auth fields (read by `auth_of`) name `config`, to reconcile
/// when it changes.
pub fn users_of<W, C>(
    store: &Store<W>,
    config: &C,
    auth_of: fn(&W) -> WorkloadAuth<'_>,
) -> Vec<ObjectRef<W>>
where
    W: Resource<DynamicType = ()> + Clone + 'static,
    C: Resource<DynamicType = ()>,
{
    let ns = config.meta().namespace.clone();
    frame::referencing(store, &ns, |w: &W| names_config(&auth_of(w), config))
}

/// The workloads of `store` whose `authzConfig` reads ConfigMap `cm`, to reconcile when it
/// changes.
pub fn config_map_users<W>(
    store: &Store<W>,
    cm: &PartialObjectMeta<ConfigMap>,
    auth_of: fn(&W) -> WorkloadAuth<'_>,
) -> Vec<ObjectRef<W>>
where
    W: Resource<DynamicType = ()> + Clone + 'static,
{
    let name = cm.metadata.name.as_deref().unwrap_or_default();
    frame::referencing(store, &cm.metadata.namespace, |w: &W| {
        authz_config_map(&auth_of(w)) == Some(name)
    })
}

/// The changes of the ConfigMaps an `authzConfig` may read, by metadata only and without a
/// cache (the reconcile reads the one it needs). Our own ConfigMaps are left out: no
/// workload's policies come from them, and every workload has one.
pub fn watch_authz_config_maps(
    client: &kube::Client,
    namespace: &Option<String>,
) -> BoxStream<'static, Result<PartialObjectMeta<ConfigMap>, kube::runtime::watcher::Error>> {
    use kube::runtime::WatchStreamExt;
    let api: kube::Api<PartialObjectMeta<ConfigMap>> = match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    };
    let not_ours = format!(
        "{}!={}",
        super::workload::MANAGED_BY,
        super::workload::OPERATOR
    );
    kube::runtime::watcher(
        api,
        kube::runtime::watcher::Config::default().labels(&not_ours),
    )
    .default_backoff()
    .touched_objects()
    .boxed()
}

/// The caches of the three config kinds, which a workload controller resolves from.
#[derive(Clone)]
pub struct AuthStores {
    pub oidc: Store<MCPOIDCConfig>,
    pub authz: Store<MCPAuthzConfig>,
    pub external: Store<MCPExternalAuthConfig>,
}

type ConfigStream<C> = BoxStream<'static, Result<C, kube::runtime::watcher::Error>>;

/// The watches feeding [`AuthStores`], to map to the workloads that use each config.
pub struct AuthStreams {
    pub oidc: ConfigStream<MCPOIDCConfig>,
    pub authz: ConfigStream<MCPAuthzConfig>,
    pub external: ConfigStream<MCPExternalAuthConfig>,
}

/// The configs one workload's references name, as the caches hold them now.
#[derive(Default)]
pub struct Looked {
    oidc: Option<Arc<MCPOIDCConfig>>,
    authz: Option<Arc<MCPAuthzConfig>>,
    external: Option<Arc<MCPExternalAuthConfig>>,
}

impl Looked {
    pub fn found(&self) -> Found<'_> {
        Found {
            oidc: self.oidc.as_deref(),
            authz: self.authz.as_deref(),
            external: self.external.as_deref(),
            authz_config_map: None,
        }
    }
}

impl AuthStores {
    pub fn reflect<K: frame::Owner>(
        frame: &frame::Frame<K>,
        namespace: &Option<String>,
    ) -> (Self, AuthStreams) {
        let all = kube::runtime::watcher::Config::default;
        let (oidc, oidc_stream) = frame.reflect::<MCPOIDCConfig>(namespace, all());
        let (authz, authz_stream) = frame.reflect::<MCPAuthzConfig>(namespace, all());
        let (external, external_stream) = frame.reflect::<MCPExternalAuthConfig>(namespace, all());
        let stores = AuthStores {
            oidc,
            authz,
            external,
        };
        let streams = AuthStreams {
            oidc: oidc_stream.boxed(),
            authz: authz_stream.boxed(),
            external: external_stream.boxed(),
        };
        (stores, streams)
    }

    /// Whether every cache has listed once (waiting a bounded time): right after start-up a
    /// config missing from a cache is not missing from the cluster, and judging it missing
    /// would take a running workload down.
    pub async fn ready(&self) -> bool {
        tokio::time::timeout(frame::STORE_READY_WAIT, async {
            let _ = self.oidc.wait_until_ready().await;
            let _ = self.authz.wait_until_ready().await;
            let _ = self.external.wait_until_ready().await;
        })
        .await
        .is_ok()
    }

    /// The configs `auth` names in `ns`.
    pub fn look_up(&self, ns: &str, auth: &WorkloadAuth<'_>) -> Looked {
        Looked {
            oidc: auth
                .oidc_config_ref
                .and_then(|r| self.oidc.get(&ObjectRef::new(&r.name).within(ns))),
            authz: auth
                .authz_config_ref
                .and_then(|r| self.authz.get(&ObjectRef::new(&r.name).within(ns))),
            external: auth
                .external_auth_config_ref
                .and_then(|r| self.external.get(&ObjectRef::new(&r.name).within(ns))),
        }
    }
}

/// The conditions of `findings`, keeping the transition times of unchanged ones.
pub fn conditions(
    old: Option<&[Condition]>,
    generation: Option<i64>,
    findings: &[Finding],
) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::new();
    for f in findings {
        // One condition per type: the first problem of a type is the one reported.
        if out.iter().any(|c| c.type_ == f.condition) {
            continue;
        }
        out.push(frame::condition(
            old,
            generation,
            f.condition,
            f.ok,
            f.reason,
            f.message.clone(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1beta1::MCPServer;
    use crate::bridge::config::AuthConfig;

    fn server(spec: Value) -> MCPServer {
        let mut s = json!({"image": "x", "transport": "streamable-http", "mcpPort": 8080});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "fetch", "namespace": "ns"}, "spec": s,
        }))
        .unwrap()
    }

    fn config<T: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: Value) -> T {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec,
        }))
        .unwrap()
    }

    fn oidc(spec: Value) -> MCPOIDCConfig {
        config("MCPOIDCConfig", "idp", spec)
    }
    fn authz(policies: &[&str]) -> MCPAuthzConfig {
        config(
            "MCPAuthzConfig",
            "policies",
            json!({"type": "cedarv1", "config": {"policies": policies, "group_claim_name": "groups"}}),
        )
    }
    fn external(spec: Value) -> MCPExternalAuthConfig {
        config("MCPExternalAuthConfig", "out", spec)
    }

    const ECHO_FOR_DEV: &str = r#"permit(principal in THVGroup::"dev", action == Action::"call_tool", resource == Tool::"echo");"#;

    fn resolve_server(s: &MCPServer, found: Found<'_>) -> Resolution {
        resolve(&crate::controller::children::auth_workload(s), found)
    }

    /// The three references and audit resolve into the block the bridge reads: the bridge's
    /// own types accept it, with upstream's service-account defaults.
    #[test]
    fn references_resolve_into_the_bridge_auth_block() {
        let s = server(json!({
            "oidcConfigRef": {"name": "idp", "audience": "fetch", "scopes": ["openid", "mcp"]},
            "authzConfigRef": {"name": "policies"},
            "audit": {"enabled": true},
        }));
        let (o, a) = (
            oidc(json!({"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}})),
            authz(&[ECHO_FOR_DEV]),
        );
        let found = Found {
            oidc: Some(&o),
            authz: Some(&a),
            external: None,
            authz_config_map: None,
        };
        let r = resolve_server(&s, found);
        let resolved = r.outcome.expect("resolves");
        let block: AuthConfig = serde_json::from_value(resolved.block.clone().unwrap()).unwrap();
        let oidc = block.oidc.unwrap();
        assert_eq!(oidc.issuer, KUBERNETES_ISSUER);
        assert_eq!(
            oidc.jwks_url.as_deref(),
            Some("https://kubernetes.default.svc/openid/v1/jwks")
        );
        assert_eq!(oidc.audience.as_deref(), Some("fetch"));
        assert_eq!(oidc.allow_private_ip, Some(true));
        assert_eq!(
            oidc.resource_url.as_deref(),
            Some("http://mcp-fetch-proxy.ns.svc.cluster.local:8080")
        );
        assert_eq!(oidc.scopes, Some(vec!["openid".into(), "mcp".into()]));
        let authz = block.authz.unwrap();
        assert_eq!(authz.policies, [ECHO_FOR_DEV]);
        assert_eq!(authz.group_claim_name.as_deref(), Some("groups"));
        assert_eq!(authz.server_name.as_deref(), Some("fetch"));
        assert!(block.audit.unwrap().enabled);
        assert_eq!(resolved.oidc_hash, Some(frame::config_hash(&o.spec)));
        assert_eq!(resolved.authz_hash, Some(frame::config_hash(&a.spec)));
        assert!(resolved.secret_env.is_empty());
        let reasons: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.condition, f.ok, f.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (OIDC_CONDITION, true, "OIDCConfigRefValid"),
                (AUTHZ_CONDITION, true, "AuthzConfigRefValid"),
            ]
        );
    }

    /// `authzConfig.type: configMap` reads upstream's authz document, JSON or YAML, from the
    /// key named (`authz.json` by default): its policies and options become the bridge's
    /// `authz` block, the spec's claim settings winning over the document's; nothing holds
    /// the workload and no hash is copied (the bridge config's checksum rolls the pods).
    #[test]
    fn policies_from_a_config_map_resolve_into_the_bridge_authz_block() {
        let o = oidc(json!({"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}}));
        let json_doc = json!({"version": "1.0", "type": "cedarv1", "cedar": {
            "policies": [ECHO_FOR_DEV], "entities_json": "[]", "group_claim_name": "groups",
            "role_claim_name": "roles"}})
        .to_string();
        let yaml_doc = format!(
            "version: \"1.0\"\ntype: cedarv1\ncedar:\n  policies:\n    - '{ECHO_FOR_DEV}'\n  group_claim_name: groups\n"
        );
        // (authzConfig, ConfigMap data, group claim, role claim)
        let rows = [
            (
                json!({"type": "configMap", "configMap": {"name": "cm"}}),
                BTreeMap::from([("authz.json".to_string(), json_doc.clone())]),
                Some("groups"),
                Some("roles"),
            ),
            (
                json!({"type": "configMap", "configMap": {"name": "cm", "key": "authz.yaml"},
                    "groupClaimName": "teams"}),
                BTreeMap::from([("authz.yaml".to_string(), yaml_doc)]),
                Some("teams"),
                None,
            ),
        ];
        for (i, (authz_config, data, group_claim, role_claim)) in rows.into_iter().enumerate() {
            let s = server(json!({
                "oidcConfigRef": {"name": "idp", "audience": "fetch"},
                "authzConfig": authz_config,
            }));
            let found = Found {
                oidc: Some(&o),
                authz_config_map: Some(&data),
                ..Found::default()
            };
            let r = resolve_server(&s, found);
            let resolved = r.outcome.unwrap_or_else(|f| panic!("row {i}: {f:?}"));
            let block: AuthConfig =
                serde_json::from_value(resolved.block.clone().unwrap()).unwrap();
            let authz = block.authz.unwrap();
            assert_eq!(authz.policies, [ECHO_FOR_DEV], "row {i}");
            assert_eq!(authz.group_claim_name.as_deref(), group_claim, "row {i}");
            assert_eq!(authz.role_claim_name.as_deref(), role_claim, "row {i}");
            assert_eq!(authz.server_name.as_deref(), Some("fetch"), "row {i}");
            assert_eq!(resolved.authz_hash, None, "row {i}");
            assert!(r.findings.iter().all(|f| f.ok), "row {i}: {:?}", r.findings);
        }
    }

    /// Every way a reference can fail holds the workload, with the reason and a message that
    /// names the field or the object.
    #[test]
    fn unusable_references_hold_with_a_reason() {
        let good_oidc =
            oidc(json!({"type": "kubernetesServiceAccount", "kubernetesServiceAccount": {}}));
        let bad_policy = authz(&["permit(principal action, resource);"]);
        let http_authz: MCPAuthzConfig = config(
            "MCPAuthzConfig",
            "policies",
            json!({"type": "httpv1", "config": {"http": {"url": "https://pdp"}}}),
        );
        let aws = external(json!({"type": "awsSts", "awsSts": {"region": "eu-west-1",
            "fallbackRoleArn": "arn:aws:iam::123456789012:role/x"}}));
        let header = external(json!({"type": "headerInjection", "headerInjection": {
            "headerName": "X-Api-Key", "valueSecretRef": {"name": "api", "key": "key"}}}));
        let exchange = external(json!({"type": "tokenExchange", "tokenExchange": {
            "tokenUrl": "https://idp/token", "audience": "backend"}}));
        let token_over_http = oidc(
            json!({"type": "inline", "inline": {"issuer": "http://idp.local",
            "insecureAllowHTTP": true, "jwksAuthTokenPath": "/var/run/secrets/tokens/idp"}}),
        );
        let with_oidc = json!({"name": "idp", "audience": "fetch"});
        let other_key = BTreeMap::from([(
            "policies.yaml".to_string(),
            "version: '1.0'\ntype: cedarv1\ncedar:\n  policies: ['permit(principal action, resource);']\n"
                .to_string(),
        )]);
        type Row<'a> = (Value, Found<'a>, &'static str, &'static str);
        let rows: Vec<Row<'_>> = vec![
            (
                json!({"oidcConfigRef": with_oidc}),
                Found::default(),
                "OIDCConfigRefNotFound",
                r#"MCPOIDCConfig "idp" (spec.oidcConfigRef) does not exist in namespace ns"#,
            ),
            (
                json!({"oidcConfigRef": with_oidc}),
                Found {
                    oidc: Some(&token_over_http),
                    ..Found::default()
                },
                "OIDCConfigRefNotValid",
                r#"jwksAuthTokenPath to "http://idp.local""#,
            ),
            (
                json!({"oidcConfigRef": with_oidc, "authzConfigRef": {"name": "policies"}}),
                Found {
                    oidc: Some(&good_oidc),
                    ..Found::default()
                },
                "AuthzConfigRefNotFound",
                "spec.authzConfigRef",
            ),
            (
                json!({"oidcConfigRef": with_oidc, "authzConfigRef": {"name": "policies"}}),
                Found {
                    oidc: Some(&good_oidc),
                    authz: Some(&bad_policy),
                    ..Found::default()
                },
                "AuthzConfigRefNotValid",
                "spec.config.policies[0]",
            ),
            (
                json!({"oidcConfigRef": with_oidc, "authzConfigRef": {"name": "policies"}}),
                Found {
                    oidc: Some(&good_oidc),
                    authz: Some(&http_authz),
                    ..Found::default()
                },
                "AuthzConfigRefNotSupported",
                "httpv1",
            ),
            (
                json!({"authzConfig": {"type": "inline", "inline": {"policies": [ECHO_FOR_DEV]}}}),
                Found::default(),
                "AuthzNeedsAuthentication",
                "spec.authzConfig",
            ),
            (
                json!({"oidcConfigRef": with_oidc, "authzConfig": {"type": "configMap", "configMap": {"name": "cm"}}}),
                Found {
                    oidc: Some(&good_oidc),
                    ..Found::default()
                },
                "AuthzConfigMapNotFound",
                r#"ConfigMap "cm" (spec.authzConfig.configMap) does not exist in namespace ns"#,
            ),
            (
                json!({"oidcConfigRef": with_oidc, "authzConfig": {"type": "configMap", "configMap": {"name": "cm"}}}),
                Found {
                    oidc: Some(&good_oidc),
                    authz_config_map: Some(&other_key),
                    ..Found::default()
                },
                "AuthzConfigMapNotFound",
                r#"ConfigMap "cm" (spec.authzConfig.configMap) has no key "authz.json" (it has "policies.yaml")"#,
            ),
            (
                json!({"oidcConfigRef": with_oidc, "authzConfig": {"type": "configMap", "configMap": {"name": "cm", "key": "policies.yaml"}}}),
                Found {
                    oidc: Some(&good_oidc),
                    authz_config_map: Some(&other_key),
                    ..Found::default()
                },
                "AuthzConfigMapInvalid",
                r#"ConfigMap "cm" key "policies.yaml" (spec.authzConfig.configMap) is not a valid authorization config, so the MCPServer is held: cedar.policies[0]: Invalid value: line 1, column"#,
            ),
            (
                json!({"externalAuthConfigRef": {"name": "out"}}),
                Found::default(),
                "ExternalAuthConfigNotFound",
                "spec.externalAuthConfigRef",
            ),
            (
                json!({"externalAuthConfigRef": {"name": "out"}}),
                Found {
                    external: Some(&aws),
                    ..Found::default()
                },
                "ExternalAuthTypeNotSupported",
                r#"type "awsSts""#,
            ),
            (
                json!({"externalAuthConfigRef": {"name": "out"}, "transport": "stdio"}),
                Found {
                    external: Some(&header),
                    ..Found::default()
                },
                "ExternalAuthNeedsHttpBackend",
                "stdio",
            ),
            (
                json!({"externalAuthConfigRef": {"name": "out"}}),
                Found {
                    external: Some(&exchange),
                    ..Found::default()
                },
                "TokenExchangeNeedsAuthentication",
                "spec.oidcConfigRef",
            ),
        ];
        for (i, (spec, found, reason, part)) in rows.into_iter().enumerate() {
            let r = resolve_server(&server(spec), found);
            let problem = r.outcome.expect_err(reason);
            assert_eq!(problem.reason, reason, "row {i}: {problem:?}");
            assert!(
                problem.message.contains(part),
                "row {i}: {}",
                problem.message
            );
            assert!(
                r.findings.iter().any(|f| !f.ok && f.reason == reason),
                "row {i}: the hold is also a condition"
            );
        }
    }

    /// The files an MCPOIDCConfig makes the bridge read become volumes of the bridge's
    /// container, and the paths in its `oidc` block point into them: the service account's
    /// token and CA with cluster auth (the default), a `caBundleRef` where upstream mounts it,
    /// a `jwksAuthTokenPath` as written (with the service account's volume when it points
    /// there). Nothing holds the workload.
    #[test]
    fn oidc_files_become_bridge_volumes() {
        const SA: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
        let inline = |extra: Value| {
            let mut i = json!({"issuer": "https://idp.example.com"});
            for (k, v) in extra.as_object().unwrap() {
                i[k] = v.clone();
            }
            json!({"type": "inline", "inline": i})
        };
        let ksa =
            |k: Value| json!({"type": "kubernetesServiceAccount", "kubernetesServiceAccount": k});
        // Rows: the config's spec; the block's caBundle, jwksAuthTokenPath and allowPrivateIp;
        // the volumes as (name, mount path).
        type Row = (
            Value,
            [Option<&'static str>; 2],
            Option<bool>,
            Vec<(&'static str, &'static str)>,
        );
        let rows: Vec<Row> = vec![
            (
                ksa(json!({})),
                [
                    Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
                    Some("/var/run/secrets/kubernetes.io/serviceaccount/token"),
                ],
                Some(true),
                vec![("oidc-service-account", SA)],
            ),
            (
                ksa(
                    json!({"useClusterAuth": true, "issuer": "https://oidc.example.com/cluster",
                           "jwksUrl": "https://oidc.example.com/cluster/keys"}),
                ),
                [
                    Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
                    Some("/var/run/secrets/kubernetes.io/serviceaccount/token"),
                ],
                Some(true),
                vec![("oidc-service-account", SA)],
            ),
            (
                ksa(json!({"useClusterAuth": false})),
                [None, None],
                None,
                vec![],
            ),
            (
                inline(
                    json!({"caBundleRef": {"configMapRef": {"name": "corp-ca", "key": "root.pem"}}}),
                ),
                [Some("/config/certs/corp-ca/root.pem"), None],
                None,
                vec![("oidc-ca-bundle-corp-ca", "/config/certs/corp-ca")],
            ),
            (
                inline(json!({"caBundleRef": {"configMapRef": {"name": "corp-ca", "key": ""}}})),
                [Some("/config/certs/corp-ca/ca.crt"), None],
                None,
                vec![("oidc-ca-bundle-corp-ca", "/config/certs/corp-ca")],
            ),
            (
                inline(json!({"jwksAuthTokenPath": "/var/run/secrets/tokens/idp"})),
                [None, Some("/var/run/secrets/tokens/idp")],
                None,
                vec![],
            ),
            (
                inline(
                    json!({"jwksAuthTokenPath": "/var/run/secrets/kubernetes.io/serviceaccount/token",
                              "caBundleRef": {"configMapRef": {"name": "corp-ca", "key": "ca.crt"}},
                              "jwksAllowPrivateIP": true}),
                ),
                [
                    Some("/config/certs/corp-ca/ca.crt"),
                    Some("/var/run/secrets/kubernetes.io/serviceaccount/token"),
                ],
                Some(true),
                vec![
                    ("oidc-ca-bundle-corp-ca", "/config/certs/corp-ca"),
                    ("oidc-service-account", SA),
                ],
            ),
        ];
        let s = server(json!({"oidcConfigRef": {"name": "idp", "audience": "fetch"}}));
        for (i, (spec, [ca, token], private, volumes)) in rows.into_iter().enumerate() {
            let config = oidc(spec);
            let found = Found {
                oidc: Some(&config),
                ..Found::default()
            };
            let r = resolve_server(&s, found);
            assert!(r.findings.iter().all(|f| f.ok), "row {i}: {:?}", r.findings);
            let resolved = r.outcome.expect("resolves");
            let block: AuthConfig = serde_json::from_value(resolved.block.clone().unwrap())
                .expect("the bridge reads it");
            let o = block.oidc.unwrap();
            assert_eq!(o.ca_bundle.as_deref(), ca, "row {i}");
            assert_eq!(o.jwks_auth_token_path.as_deref(), token, "row {i}");
            assert_eq!(o.allow_private_ip, private, "row {i}");
            let (pod_volumes, mounts) = volumes_and_mounts(&resolved);
            let got: Vec<(&str, &str)> = pod_volumes
                .iter()
                .zip(&mounts)
                .map(|(v, m)| {
                    assert_eq!(v["name"], m["name"], "row {i}");
                    assert_eq!(m["readOnly"], true, "row {i}");
                    (
                        v["name"].as_str().unwrap(),
                        m["mountPath"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got, volumes, "row {i}");
            for v in &pod_volumes {
                if v["name"] == SERVICE_ACCOUNT_VOLUME {
                    // A bounded token for the API server (no audience: the API server's own),
                    // and the cluster's CA.
                    assert_eq!(
                        v["projected"]["sources"],
                        json!([{"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                               {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]),
                        "row {i}"
                    );
                } else {
                    let key = ca.unwrap().rsplit('/').next().unwrap();
                    assert_eq!(
                        v["configMap"],
                        json!({"name": "corp-ca", "items": [{"key": key, "path": key}]}),
                        "row {i}"
                    );
                }
            }
        }
    }

    /// Outgoing credentials: the header and the tokens come from Secrets as env only, in
    /// the shape the bridge's `outgoing` and `headersFromEnv` read.
    #[test]
    fn outgoing_credentials_are_env_references() {
        let idp = oidc(
            json!({"type": "inline", "inline": {"issuer": "https://idp.example.com",
            "introspectionUrl": "https://idp.example.com/introspect", "clientId": "mcp",
            "clientSecretRef": {"name": "idp-client", "key": "secret"}}}),
        );
        let rows = [
            (
                external(json!({"type": "headerInjection", "headerInjection": {
                    "headerName": "X-Api-Key", "valueSecretRef": {"name": "api", "key": "key"}}})),
                json!(null),
                ("TOOLHIVE_HEADER_INJECTION_VALUE", "api", "key"),
            ),
            (
                external(json!({"type": "bearerToken", "bearerToken": {
                    "tokenSecretRef": {"name": "backend-token", "key": "token"}}})),
                json!({"bearerTokenEnv": "TOOLHIVE_SECRET_backend-token"}),
                ("TOOLHIVE_SECRET_backend-token", "backend-token", "token"),
            ),
            (
                external(json!({"type": "tokenExchange", "tokenExchange": {
                    "tokenUrl": "https://idp.example.com/token", "audience": "backend", "clientId": "mcp",
                    "clientSecretRef": {"name": "exchange", "key": "secret"}, "scopes": ["read"],
                    "subjectTokenType": "id_token", "externalTokenHeaderName": "X-Backend-Token"}})),
                json!({"tokenExchange": {"tokenUrl": "https://idp.example.com/token", "clientId": "mcp",
                    "clientSecretEnv": "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET", "audience": "backend",
                    "scopes": ["read"], "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
                    "externalTokenHeaderName": "X-Backend-Token"}}),
                (
                    "TOOLHIVE_TOKEN_EXCHANGE_CLIENT_SECRET",
                    "exchange",
                    "secret",
                ),
            ),
        ];
        let s = server(
            json!({"oidcConfigRef": {"name": "idp", "audience": "fetch"},
            "externalAuthConfigRef": {"name": "out"}}),
        );
        for (config, outgoing, (env, secret, key)) in rows {
            let found = Found {
                oidc: Some(&idp),
                external: Some(&config),
                ..Found::default()
            };
            let resolved = resolve_server(&s, found).outcome.expect("resolves");
            let block = resolved.block.clone().unwrap();
            assert_eq!(block["oidc"]["clientSecretEnv"], OIDC_CLIENT_SECRET_ENV);
            assert_eq!(block["outgoing"], outgoing, "{block}");
            let uses: Vec<_> = resolved
                .secret_env
                .iter()
                .map(|s| (s.env.as_str(), s.secret.as_str(), s.key.as_str()))
                .collect();
            assert_eq!(
                uses,
                [
                    (OIDC_CLIENT_SECRET_ENV, "idp-client", "secret"),
                    (env, secret, key)
                ]
            );
            let headers = resolved.headers_from_env.clone();
            if config.spec.type_ == "headerInjection" {
                assert_eq!(headers["X-Api-Key"], HEADER_INJECTION_ENV);
            } else {
                assert!(headers.is_empty());
            }
            for e in env_entries(&resolved) {
                assert!(e.get("value").is_none(), "only references: {e}");
                assert!(e.pointer("/valueFrom/secretKeyRef/key").is_some(), "{e}");
            }
            // The parts the bridge already reads are accepted by its own types.
            let mut known = block.clone();
            known.as_object_mut().unwrap().remove("outgoing");
            serde_json::from_value::<AuthConfig>(known).expect("the bridge reads it");
        }
    }

    /// `unauthenticated` adds nothing; the config's hash is still reported.
    #[test]
    fn unauthenticated_adds_nothing() {
        let none = external(json!({"type": "unauthenticated"}));
        let s = server(json!({"externalAuthConfigRef": {"name": "out"}, "transport": "stdio"}));
        let found = Found {
            external: Some(&none),
            ..Found::default()
        };
        let resolved = resolve_server(&s, found).outcome.unwrap();
        assert_eq!(resolved.block, None);
        assert!(resolved.secret_env.is_empty() && resolved.headers_from_env.is_empty());
        assert_eq!(resolved.external_hash, Some(frame::config_hash(&none.spec)));
    }
}
