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
    cedar_options(config, &spec.child("config"), f);
}

/// The options of upstream's Cedar authorizer, as an MCPAuthzConfig's `config` or an authz
/// document's `cedar` block holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CedarOptions {
    pub policies: Vec<String>,
    pub entities_json: Option<String>,
    pub group_claim_name: Option<String>,
    pub role_claim_name: Option<String>,
    pub group_entity_type: Option<String>,
}

/// Cedar options at `p`: what upstream's authorizer can load, with policies that parse and
/// validate. Problems go to `f`; what could be read comes back.
fn cedar_options(config: &Value, p: &Path, f: &mut Findings) -> CedarOptions {
    let mut out = CedarOptions::default();
    let Some(options) = config.as_object() else {
        f.error(FieldError::invalid(p, Value::Null, "must be an object").without_value());
        return out;
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
    out.policies = match options.get("policies") {
        None => {
            f.error(FieldError::required(
                p.child("policies"),
                "at least one Cedar policy",
            ));
            return out;
        }
        Some(Value::Array(items)) => {
            let mut policies = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => policies.push(s.to_string()),
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
            policies
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
            return out;
        }
    };
    if out.policies.is_empty() {
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
    out.entities_json = string_option("entities_json", f);
    out.group_entity_type = string_option("group_entity_type", f);
    out.group_claim_name = string_option("group_claim_name", f);
    out.role_claim_name = string_option("role_claim_name", f);
    string_option("primary_upstream_provider", f);
    if let Some(g) = out.group_entity_type.as_deref().filter(|g| !g.is_empty()) {
        if !is_identifier(g) {
            f.error(FieldError::invalid(
                p.child("group_entity_type"),
                g,
                "must be a Cedar identifier (letters, digits, _; not starting with a digit; no ::)",
            ));
            return out;
        }
    }
    check_policies(
        f,
        p,
        &out.policies,
        out.entities_json.as_deref(),
        ("policies", "entities_json"),
        out.group_entity_type.as_deref(),
    );
    out
}

/// The key of `authzConfig.configMap` when none is given (upstream's default).
pub const DEFAULT_AUTHZ_CONFIG_MAP_KEY: &str = "authz.json";

/// The largest authz document read from a ConfigMap (a ConfigMap holds at most 1 MiB in all).
const MAX_AUTHZ_DOCUMENT: usize = 1 << 20;

/// An authorization config document as upstream's `--authz-config` file and the ConfigMap of
/// `authzConfig.type: configMap` hold it, JSON or YAML:
/// `{version, type: cedarv1, cedar: {policies, entities_json, ...}}`. Its Cedar options, checked
/// as an MCPAuthzConfig's are, or every problem found (field paths inside the document, and
/// the line and column of a policy's or of the document's syntax error).
pub fn read_authz_document(text: &str) -> Result<CedarOptions, String> {
    if text.len() > MAX_AUTHZ_DOCUMENT {
        return Err(format!(
            "is {} bytes, more than the {MAX_AUTHZ_DOCUMENT} an authorization config may have",
            text.len()
        ));
    }
    if text.trim().is_empty() {
        return Err("is empty; it must hold {version, type: cedarv1, cedar: {policies: [...]}} as JSON or YAML".into());
    }
    let doc = parse_document(text)?;
    let Some(fields) = doc.as_object() else {
        return Err(
            "must be an object {version, type: cedarv1, cedar: {policies: [...]}} (JSON or YAML)"
                .into(),
        );
    };
    let mut f = Findings::default();
    let text_field = |name: &str, f: &mut Findings| match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        None | Some(Value::Null) => {
            f.error(FieldError::required(name, "required"));
            None
        }
        Some(other) => {
            f.error(
                FieldError::invalid(name, other.clone(), "must be a non-empty string")
                    .without_value(),
            );
            None
        }
    };
    text_field("version", &mut f);
    match text_field("type", &mut f).as_deref() {
        Some("cedarv1") | None => {}
        Some(other) => f.error(FieldError::not_supported("type", other, &["cedarv1"])),
    }
    let options = match fields.get("cedar") {
        Some(cedar) => cedar_options(cedar, &Path::root("cedar"), &mut f),
        None => {
            f.error(FieldError::required(
                "cedar",
                "the Cedar options (policies, entities_json, ...)",
            ));
            CedarOptions::default()
        }
    };
    if f.errors.0.is_empty() {
        Ok(options)
    } else {
        Err(f.errors.to_string())
    }
}

/// JSON when it looks like JSON (so its errors are JSON's), YAML otherwise; both name the line
/// and column of a syntax error.
fn parse_document(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("is not valid YAML: {e}"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An authz document from a ConfigMap, in upstream's format (JSON or YAML), is read or
    /// refused with every problem placed: the document's own syntax by line and column, a
    /// field by its path inside the document, a policy by its index and the line and column
    /// inside it.
    #[test]
    fn authz_documents_are_read_or_refused_with_their_position() {
        const ECHO: &str =
            r#"permit(principal, action == Action::\"call_tool\", resource == Tool::\"echo\");"#;
        // (document, Ok(policies) or Err(fragments the message must hold))
        let rows: Vec<(String, Result<usize, Vec<&str>>)> = vec![
            (
                format!(r#"{{"version": "1.0", "type": "cedarv1", "cedar": {{"policies": ["{ECHO}"], "entities_json": "[]"}}}}"#),
                Ok(1),
            ),
            (
                format!("version: '1.0'\ntype: cedarv1\ncedar:\n  policies:\n  - \"{ECHO}\"\n  - \"{ECHO}\"\n"),
                Ok(2),
            ),
            ("".into(), Err(vec!["is empty"])),
            ("{\"version\": \"1.0\",\n  \"type\": }".into(), Err(vec!["is not valid JSON", "line 2 column"])),
            ("version: '1.0'\ntype: [cedarv1\n".into(), Err(vec!["is not valid YAML", "line"])),
            ("- a\n- b\n".into(), Err(vec!["must be an object"])),
            (
                format!(r#"{{"type": "cedarv1", "cedar": {{"policies": ["{ECHO}"]}}}}"#),
                Err(vec!["version: Required value"]),
            ),
            (
                r#"{"version": "1.0", "type": "httpv1", "cedar": {"policies": []}}"#.into(),
                Err(vec![r#"type: Unsupported value: "httpv1""#]),
            ),
            (
                r#"{"version": "1.0", "type": "cedarv1"}"#.into(),
                Err(vec!["cedar: Required value"]),
            ),
            (
                r#"{"version": "1.0", "type": "cedarv1", "cedar": {"policies": []}}"#.into(),
                Err(vec!["cedar.policies: Required value"]),
            ),
            (
                format!(r#"{{"version": "1.0", "type": "cedarv1", "cedar": {{"policies": ["{ECHO}", "permit(principal,\n action, resource) when {{ resource.x > }};"]}}}}"#),
                Err(vec!["cedar.policies[1]: Invalid value: line 2, column"]),
            ),
            (
                format!(r#"{{"version": "1.0", "type": "cedarv1", "cedar": {{"policies": ["{ECHO}"], "entities_json": "not json"}}}}"#),
                Err(vec!["cedar.entities_json"]),
            ),
        ];
        for (i, (doc, expected)) in rows.into_iter().enumerate() {
            match (read_authz_document(&doc), expected) {
                (Ok(options), Ok(n)) => assert_eq!(options.policies.len(), n, "row {i}"),
                (Err(message), Err(fragments)) => {
                    for fragment in fragments {
                        assert!(message.contains(fragment), "row {i}: {message}");
                    }
                }
                (got, _) => panic!("row {i}: unexpected {got:?}"),
            }
        }
    }
}
