//! Authentication and authorization: MCPOIDCConfig, MCPAuthzConfig, MCPExternalAuthConfig, and
//! the fields of MCPServer and MCPRemoteProxy that use them. The rules upstream writes as CEL
//! (one sub-object per `type`, `authzConfig` xor `authzConfigRef`) are here with the field
//! they are about; Cedar policies are parsed and validated (see [`super::cedar`]).

use super::cedar;
use super::common::*;
use super::field::{FieldError, Path};
use crate::api::auth::*;
use crate::api::shared::NameRef;
use serde_json::Value;

/// Which auth fields a workload sets, borrowed from either version of MCPServer or
/// MCPRemoteProxy.
pub struct WorkloadAuth<'a> {
    /// `MCPServer`, `MCPRemoteProxy` or `VirtualMCPServer`, for messages.
    pub kind: &'static str,
    /// Where the fields stand: `spec`, or `spec.incomingAuth` on a VirtualMCPServer.
    pub at: &'static str,
    pub oidc_config_ref: Option<&'a OidcConfigRef>,
    pub authz_config: Option<&'a AuthzConfig>,
    pub authz_config_ref: Option<&'a NameRef>,
    pub external_auth_config_ref: Option<&'a NameRef>,
    pub audit: Option<&'a Audit>,
}

impl WorkloadAuth<'_> {
    /// The fields set that ask for authorization the data path does not enforce: while any is
    /// set, the workload is held (no Deployment, no Service). Everything else the operator
    /// resolves and the bridge enforces; what a referenced config asks for is judged when it
    /// is resolved.
    pub fn held_by(&self) -> Vec<&'static str> {
        let from_config_map = self.authz_config.is_some_and(|a| a.type_ != "inline");
        if from_config_map {
            vec!["authzConfig"]
        } else {
            Vec::new()
        }
    }
}

/// The auth fields of an MCPServer or MCPRemoteProxy spec (either version: the field names
/// are the same).
macro_rules! workload_of {
    ($kind:literal, $s:expr) => {
        $crate::admission::auth::WorkloadAuth {
            kind: $kind,
            at: "spec",
            oidc_config_ref: $s.oidc_config_ref.as_ref(),
            authz_config: $s.authz_config.as_ref(),
            authz_config_ref: $s.authz_config_ref.as_ref(),
            external_auth_config_ref: $s.external_auth_config_ref.as_ref(),
            audit: $s.audit.as_ref(),
        }
    };
}
pub(crate) use workload_of;

/// Why a workload whose authorization comes from a ConfigMap is held, for the admission
/// warning and `render`.
pub fn held_message(kind: &str, fields: &[&str]) -> String {
    held_message_at(kind, "spec", fields)
}

fn held_message_at(kind: &str, at: &str, fields: &[&str]) -> String {
    let named = fields
        .iter()
        .map(|f| format!("{at}.{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{named} reads its Cedar policies from a ConfigMap, which mcp-operator does not support yet: the {kind} is held \
         (no Deployment, no Service; Ready=False, reason AuthzConfigMapNotSupported) so that it never serves without \
         the authorization asked for; put the policies in {at}.authzConfig.inline or in an MCPAuthzConfig ({at}.authzConfigRef)"
    )
}

/// The checks of a workload's auth fields (both versions, both kinds).
pub fn check_workload(w: &WorkloadAuth<'_>, f: &mut Findings) {
    let spec = Path::root(w.at);
    if w.authz_config.is_some() && w.authz_config_ref.is_some() {
        f.error(FieldError::forbidden(
            spec.child("authzConfigRef"),
            "authzConfig and authzConfigRef are mutually exclusive; use authzConfigRef to reference a shared MCPAuthzConfig",
        ));
    }
    if let Some(r) = w.oidc_config_ref {
        let p = spec.child("oidcConfigRef");
        check_object_name(f, &p.child("name"), &r.name);
        if let Some(url) = &r.resource_url {
            check_url(f, &p.child("resourceUrl"), url, true);
        }
    }
    if let Some(r) = w.authz_config_ref {
        check_object_name(f, &spec.child("authzConfigRef.name"), &r.name);
    }
    if let Some(r) = w.external_auth_config_ref {
        check_object_name(f, &spec.child("externalAuthConfigRef.name"), &r.name);
    }
    if let Some(a) = w.authz_config {
        check_inline_authz(a, &spec.child("authzConfig"), f);
    }
    let held = w.held_by();
    if let Some(first) = held.first() {
        f.warn(&spec.child(first), held_message_at(w.kind, w.at, &held));
    }
}

/// `authzConfig` on a workload: the sub-object its type selects, and its Cedar policies.
fn check_inline_authz(a: &AuthzConfig, p: &Path, f: &mut Findings) {
    one_of_by_type(
        f,
        p,
        &a.type_,
        &[
            ("configMap", a.config_map.is_some()),
            ("inline", a.inline.is_some()),
        ],
    );
    if let Some(cm) = &a.config_map {
        check_object_name(f, &p.child("configMap.name"), &cm.name);
    }
    if let Some(inline) = &a.inline {
        let group = a.group_entity_type.as_deref();
        check_policies(
            f,
            &p.child("inline"),
            &inline.policies,
            inline.entities_json.as_deref(),
            ("policies", "entitiesJson"),
            group,
        );
        if inline.primary_upstream_provider.is_some() {
            f.warn(
                &p.child("inline.primaryUpstreamProvider"),
                "deprecated, and without effect on MCPServer and MCPRemoteProxy",
            );
        }
    }
}

/// Cedar policies and entities under `p` (field names differ: `policies`/`entitiesJson`
/// inline, `policies`/`entities_json` in an MCPAuthzConfig's `config`).
fn check_policies(
    f: &mut Findings,
    p: &Path,
    policies: &[String],
    entities: Option<&str>,
    (policies_field, entities_field): (&str, &str),
    group_entity_type: Option<&str>,
) {
    for problem in cedar::check(policies, entities, group_entity_type) {
        let path = match problem.index {
            Some(i) => p.child(policies_field).index(i),
            None => p.child(entities_field),
        };
        f.error(FieldError::invalid(path, Value::Null, problem.detail()).without_value());
    }
}

/// Upstream's CEL: the sub-object named by `type` is set, and no other.
fn one_of_by_type(f: &mut Findings, p: &Path, type_: &str, blocks: &[(&str, bool)]) {
    for (name, set) in blocks {
        if *name == type_ && !set {
            f.error(FieldError::required(
                p.child(name),
                format!("{name} must be set when type is {type_:?}"),
            ));
        } else if *name != type_ && *set {
            f.error(FieldError::forbidden(
                p.child(name),
                format!("must not be set when type is {type_:?}"),
            ));
        }
    }
}

/// An absolute http(s) URL with a host; plain `http://` only where `insecure` allows it.
fn check_url(f: &mut Findings, p: &Path, url: &str, insecure_allowed: bool) {
    let rest = url
        .strip_prefix("https://")
        .map(|r| (r, false))
        .or_else(|| url.strip_prefix("http://").map(|r| (r, true)));
    let Some((rest, plain)) = rest else {
        f.error(FieldError::invalid(
            p,
            url,
            "must be an https:// URL (http:// only with insecureAllowHTTP)",
        ));
        return;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        f.error(FieldError::invalid(p, url, "must be a URL with a host"));
    } else if plain && !insecure_allowed {
        f.error(FieldError::forbidden(
            p,
            format!("{url:?} is plain http: tokens and keys would travel unprotected; use https://, or set insecureAllowHTTP: true (development only)"),
        ));
    }
}

/// An MCPOIDCConfig spec (both versions).
pub fn check_oidc_config(
    type_: &str,
    ksa: Option<&KubernetesServiceAccountOidc>,
    inline: Option<&InlineOidcShared>,
    f: &mut Findings,
) {
    let spec = Path::root("spec");
    one_of_by_type(
        f,
        &spec,
        type_,
        &[
            ("kubernetesServiceAccount", ksa.is_some()),
            ("inline", inline.is_some()),
        ],
    );
    if let Some(i) = inline {
        let p = spec.child("inline");
        let insecure = i.insecure_allow_http.unwrap_or(false);
        check_url(f, &p.child("issuer"), &i.issuer, insecure);
        for (field, url) in [
            ("jwksUrl", &i.jwks_url),
            ("introspectionUrl", &i.introspection_url),
        ] {
            if let Some(url) = url.as_deref().filter(|u| !u.is_empty()) {
                check_url(f, &p.child(field), url, insecure);
            }
        }
        if let Some(s) = &i.client_secret_ref {
            check_object_name(f, &p.child("clientSecretRef.name"), &s.name);
        }
        if let Some(cm) = i.ca_bundle_ref.as_ref() {
            check_ca_bundle_ref(f, &p.child("caBundleRef"), cm, "oidc-ca-bundle-");
        }
        if insecure {
            f.warn(
                &p.child("insecureAllowHTTP"),
                "plain-http issuers are for development only",
            );
        }
    }
    if let Some(k) = ksa {
        let p = spec.child("kubernetesServiceAccount");
        if let Some(issuer) = k.issuer.as_deref() {
            check_url(f, &p.child("issuer"), issuer, false);
        }
        for (field, url) in [
            ("jwksUrl", &k.jwks_url),
            ("introspectionUrl", &k.introspection_url),
        ] {
            if let Some(url) = url.as_deref().filter(|u| !u.is_empty()) {
                check_url(f, &p.child(field), url, false);
            }
        }
    }
}

/// The keys upstream's Cedar authorizer reads from its options.
const CEDAR_OPTIONS: &[&str] = &[
    "policies",
    "entities_json",
    "primary_upstream_provider",
    "group_claim_name",
    "role_claim_name",
    "group_entity_type",
    "multi_valued_claims",
];

/// An MCPAuthzConfig spec (both versions): a backend upstream registers, and for `cedarv1`
/// options upstream's authorizer can load, with policies that parse and validate.
pub fn check_authz_config(type_: &str, config: &Value, f: &mut Findings) {
    let spec = Path::root("spec");
    let p = spec.child("config");
    match type_ {
        "cedarv1" => {}
        "httpv1" => {
            f.warn(
                &spec.child("type"),
                "httpv1 (an external decision point) is accepted, but mcp-operator will run only cedarv1: a workload using this config is held",
            );
            return;
        }
        other => {
            f.error(FieldError::not_supported(
                spec.child("type"),
                other,
                AUTHZ_BACKENDS,
            ));
            return;
        }
    }
    let Some(options) = config.as_object() else {
        f.error(FieldError::invalid(p, Value::Null, "must be an object").without_value());
        return;
    };
    for key in options.keys() {
        if !CEDAR_OPTIONS.contains(&key.as_str()) {
            f.warn(
                &p.child(key),
                format!(
                    "not read by the Cedar authorizer (it reads {})",
                    CEDAR_OPTIONS.join(", ")
                ),
            );
        }
    }
    let policies: Vec<String> = match options.get("policies") {
        None => {
            f.error(FieldError::required(
                p.child("policies"),
                "at least one Cedar policy",
            ));
            return;
        }
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None => f.error(
                        FieldError::invalid(
                            p.child("policies").index(i),
                            item.clone(),
                            "must be a string (one Cedar policy)",
                        )
                        .without_value(),
                    ),
                }
            }
            out
        }
        Some(other) => {
            f.error(
                FieldError::invalid(
                    p.child("policies"),
                    other.clone(),
                    "must be a list of Cedar policies",
                )
                .without_value(),
            );
            return;
        }
    };
    if policies.is_empty() {
        f.error(FieldError::required(
            p.child("policies"),
            "at least one Cedar policy",
        ));
    }
    let string_option = |key: &str, f: &mut Findings| -> Option<String> {
        match options.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                f.error(
                    FieldError::invalid(p.child(key), other.clone(), "must be a string")
                        .without_value(),
                );
                None
            }
        }
    };
    let entities = string_option("entities_json", f);
    let group = string_option("group_entity_type", f);
    for key in [
        "group_claim_name",
        "role_claim_name",
        "primary_upstream_provider",
    ] {
        string_option(key, f);
    }
    if let Some(g) = group.as_deref().filter(|g| !g.is_empty()) {
        if !is_identifier(g) {
            f.error(FieldError::invalid(
                p.child("group_entity_type"),
                g,
                "must be a Cedar identifier (letters, digits, _; not starting with a digit; no ::)",
            ));
            return;
        }
    }
    check_policies(
        f,
        &p,
        &policies,
        entities.as_deref(),
        ("policies", "entities_json"),
        group.as_deref(),
    );
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An MCPExternalAuthConfig spec (both versions): the sub-object of its type and no other,
/// Secret references, and what types are not implemented.
pub fn check_external_auth(type_: &str, b: &ExternalAuthBlocks, f: &mut Findings) {
    let spec = Path::root("spec");
    let present = b.present();
    if type_ == "unauthenticated" {
        for name in &present {
            f.error(FieldError::forbidden(
                spec.child(name),
                "no configuration must be set when type is \"unauthenticated\"",
            ));
        }
    } else {
        let blocks: Vec<(&str, bool)> = EXTERNAL_AUTH_TYPES
            .iter()
            .filter(|t| **t != "unauthenticated")
            .map(|t| (*t, present.contains(t)))
            .collect();
        one_of_by_type(f, &spec, type_, &blocks);
    }
    if let Some(t) = &b.token_exchange {
        let p = spec.child("tokenExchange");
        check_url(f, &p.child("tokenUrl"), &t.token_url, true);
        if let Some(s) = &t.client_secret_ref {
            check_object_name(f, &p.child("clientSecretRef.name"), &s.name);
        }
        if let Some(h) = &t.external_token_header_name {
            check_header_name(f, &p.child("externalTokenHeaderName"), h);
        }
    }
    if let Some(h) = &b.header_injection {
        let p = spec.child("headerInjection");
        check_header_name(f, &p.child("headerName"), &h.header_name);
        check_object_name(f, &p.child("valueSecretRef.name"), &h.value_secret_ref.name);
    }
    if let Some(t) = &b.bearer_token {
        check_object_name(
            f,
            &spec.child("bearerToken.tokenSecretRef.name"),
            &t.token_secret_ref.name,
        );
    }
    if let Some(a) = &b.aws_sts {
        let p = spec.child("awsSts");
        if a.fallback_role_arn.is_none()
            && a.role_mappings.as_deref().unwrap_or_default().is_empty()
        {
            f.error(FieldError::required(
                p.child("fallbackRoleArn"),
                "fallbackRoleArn or roleMappings is required",
            ));
        }
        for (i, m) in a.role_mappings.iter().flatten().enumerate() {
            if m.claim.is_some() == m.matcher.is_some() {
                f.error(
                    FieldError::invalid(
                        p.child("roleMappings").index(i),
                        Value::Null,
                        "exactly one of claim and matcher must be set",
                    )
                    .without_value(),
                );
            }
        }
    }
    if !EXTERNAL_AUTH_IMPLEMENTED.contains(&type_) && EXTERNAL_AUTH_TYPES.contains(&type_) {
        f.warn(
            &spec.child("type"),
            format!(
                "{type_:?} is accepted, but mcp-operator will implement only {}: a workload using this config is held and says so",
                EXTERNAL_AUTH_IMPLEMENTED.join(", ")
            ),
        );
    }
}

pub(super) fn check_header_name(f: &mut Findings, p: &Path, name: &str) {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if !token {
        f.error(FieldError::invalid(p, name, "not a valid HTTP header name"));
    }
}
