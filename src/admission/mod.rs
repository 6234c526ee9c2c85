//! Pure admission: defaulting and validation of our kinds, with field errors.
//!
//! Three doors open onto these functions: the webhook handlers, `mcp-operator check`, and the
//! reconcilers' own re-check. None of them does I/O here.

pub mod auth;
pub mod cedar;
mod common;
pub mod field;
mod mcpregistry;
mod mcpserver;
mod others;
mod ports;
mod registry_list;
mod registry_views;
pub mod rules;
pub mod schema;
mod stored;
pub mod telemetry;
mod vmcp;
pub use vmcp::VMCP_OIDC_NOT_ENFORCED;

pub use field::{ErrorType, FieldError, FieldErrors, Path};

use crate::api::{self, v1alpha1, v1beta1};
use common::Findings;
use kube_cel::CompiledSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::LazyLock;

/// The admission operation, as in `AdmissionRequest.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// What admission concluded about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The object with every default filled in (at the object's own apiVersion).
    pub defaulted: Value,
    /// `Warning:` lines for the user; never a reason to refuse.
    pub warnings: Vec<String>,
    /// Why the object is refused; empty when allowed.
    pub errors: FieldErrors,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Why an object could not be admitted at all (before any field was looked at).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmitError {
    #[error("apiVersion {api_version:?} kind {kind:?} is not served by mcp-operator")]
    NotServed { api_version: String, kind: String },
    #[error("object has no apiVersion and kind")]
    NoTypeMeta,
}

/// The kind of object a spec points at, for cross-object checks that need a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefKind {
    Secret,
    ConfigMap,
    MCPToolConfig,
    MCPGroup,
    MCPOIDCConfig,
    MCPAuthzConfig,
    MCPExternalAuthConfig,
    MCPTelemetryConfig,
}

/// A same-namespace reference found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub kind: RefKind,
    pub name: String,
    /// The key inside a Secret or ConfigMap that must exist, when the spec names one.
    pub key: Option<String>,
    /// Where in the spec the reference stands, e.g. `spec.secrets[0]`.
    pub field: String,
}

/// The object with every schema default filled in (nulls pruned first, as the API server does),
/// without checking anything: what the mutating webhook answers with.
pub fn default(obj: &Value) -> Result<Value, AdmitError> {
    default_update(obj, None)
}

/// [`default`] for an UPDATE with the stored object `old`: also what an edit means where the
/// object alone cannot say it (a v1alpha1 edit of `port` alone carries `proxyPort` along).
pub fn default_update(obj: &Value, old: Option<&Value>) -> Result<Value, AdmitError> {
    let (version, kind) = type_of(obj)?;
    let rules = SCHEMAS
        .get(&(version, kind))
        .ok_or_else(|| not_served(obj))?;
    let mut out = defaulted(rules, obj);
    follow_edits(version, kind, &mut out, old);
    Ok(out)
}

/// What an edit means beyond the object's own fields: a v1alpha1 change of `port` alone carries
/// `proxyPort` along (UPDATE), and a v1beta1 object's stash follows its fields.
fn follow_edits(version: &str, kind: &str, new: &mut Value, old: Option<&Value>) {
    match (version, old) {
        ("v1alpha1", Some(old)) if matches!(kind, "MCPServer" | "MCPRemoteProxy") => {
            ports::follow_port_edit(new, old)
        }
        ("v1beta1", _) if stored::needed(version, new) => {
            if let Some(refreshed) = crate::conversion::refresh_stash(new) {
                *new = refreshed;
            }
        }
        _ => {}
    }
}

fn defaulted(rules: &KindRules, obj: &Value) -> Value {
    // Most objects have no nulls at all: then there is nothing to prune and no copy to make.
    if !has_null(obj) {
        return kube_cel::apply_defaults(&rules.schema, obj);
    }
    let mut pruned = obj.clone();
    schema::prune_nulls(&rules.schema, &mut pruned);
    kube_cel::apply_defaults(&rules.schema, &pruned)
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.values().any(has_null),
        Value::Array(a) => a.iter().any(has_null),
        _ => false,
    }
}

/// Why `obj` is refused at its own version, as a create would be; `None` when it is admitted
/// (or not of a kind we serve: nothing to explain). For the conversion webhook's failures.
pub fn why_invalid(obj: &Value) -> Option<String> {
    match admit(obj, None, Operation::Create) {
        Ok(v) if !v.allowed() => Some(v.errors.to_string()),
        _ => None,
    }
}

/// Defaults and validates one object of our group (any served version).
///
/// `old` is the stored object on UPDATE. DELETE and CONNECT are always allowed.
pub fn admit(obj: &Value, old: Option<&Value>, op: Operation) -> Result<Verdict, AdmitError> {
    let (version, kind) = type_of(obj)?;
    if matches!(op, Operation::Delete | Operation::Connect) {
        return Ok(Verdict {
            defaulted: obj.clone(),
            warnings: Vec::new(),
            errors: FieldErrors::default(),
        });
    }
    let rules = SCHEMAS
        .get(&(version, kind))
        .ok_or_else(|| not_served(obj))?;
    let mut defaulted = defaulted(rules, obj);
    follow_edits(
        version,
        kind,
        &mut defaulted,
        old.filter(|_| op == Operation::Update),
    );
    let mut errors = FieldErrors::default();
    check_name(&defaulted, &mut errors);
    check_structure(&rules.schema, &defaulted, &mut errors);
    if kind == "VirtualMCPServer" {
        vmcp::explain_unknown_fields(&mut errors);
    }
    check_cel(rules, &defaulted, old, &mut errors);
    // Semantic rules run whenever the object decodes, so one answer lists every problem; a
    // decode failure is only news when the schema found nothing.
    let mut findings = Findings::default();
    check_semantics(version, kind, obj, &defaulted, &mut findings);
    if !errors.is_empty() {
        findings
            .errors
            .0
            .retain(|e| !e.detail.starts_with(NOT_DECODABLE));
    }
    if stored::needed(version, obj) {
        let own_errors_empty = errors.is_empty() && findings.errors.is_empty();
        stored::check(
            version,
            kind,
            obj,
            &defaulted,
            old,
            own_errors_empty,
            &mut findings,
        );
    }
    if version == "v1alpha1" && matches!(kind, "MCPServer" | "MCPRemoteProxy") {
        ports::warn_ignored_port(&defaulted, &mut findings);
    }
    errors.extend(findings.errors);
    if version == "v1alpha1" {
        findings.warnings.insert(
            0,
            format!(
                "{}/{version} {kind} is deprecated; use {}/v1beta1 {kind}",
                api::GROUP,
                api::GROUP
            ),
        );
    }
    Ok(Verdict {
        defaulted,
        warnings: findings.warnings,
        errors,
    })
}

/// What a manifest's inline `oidcConfig`/`telemetry` blocks (in the spec at v1alpha1, in the
/// conversion stash at v1beta1) mean for the object: the warnings admission gives about them,
/// for `convert` to print, so a rewritten manifest does not hide them. Likewise an MCPRegistry's
/// `databaseConfig`, whose pgpass Secret the user now creates.
pub fn inline_block_warnings(obj: &Value) -> Vec<String> {
    let Ok((version, kind)) = type_of(obj) else {
        return Vec::new();
    };
    if kind == "MCPRegistry" {
        return registry_list::conversion_notes(obj, version);
    }
    if kind == "VirtualMCPServer" {
        return vmcp::inline_oidc_warnings(obj, version);
    }
    let server = kind == "MCPServer";
    let mut f = Findings::default();
    if version == "v1beta1" && (server || kind == "MCPRemoteProxy") {
        let annotations = obj
            .pointer("/metadata/annotations")
            .and_then(|a| serde_json::from_value(a.clone()).ok());
        mcpserver::warn_kept_alpha_fields(annotations.as_ref(), server, &mut f);
    } else if version == "v1alpha1" {
        let spec = Path::root("spec");
        if obj.pointer("/spec/oidcConfig").is_some() {
            let what = if server {
                mcpserver::SERVER_OIDC_HELD
            } else {
                mcpserver::OIDC_KEPT_ONLY
            };
            f.warn(&spec.child("oidcConfig"), what);
        }
        if obj.pointer("/spec/telemetry").is_some() {
            f.warn(&spec.child("telemetry"), mcpserver::TELEMETRY_KEPT_ONLY);
        }
    }
    f.warnings
}

/// An MCPServer's inline `spec.tools` read with the MCPToolConfig its `toolConfigRef` names, for
/// a caller that has both (`check`, among its inputs; the webhook sees one object at a time):
/// entries naming a tool by its name before an override, and two allow-lists with nothing in
/// common.
pub fn tools_against_config(server: &Value, tool_config: &Value) -> Vec<String> {
    let tools: Vec<String> = server
        .pointer("/spec/tools")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    let Some(spec) = tool_config
        .get("spec")
        .and_then(|s| serde_json::from_value::<v1beta1::MCPToolConfigSpec>(s.clone()).ok())
    else {
        return Vec::new();
    };
    if tools.is_empty() {
        return Vec::new();
    }
    let name = tool_config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut f = Findings::default();
    let path = Path::root("spec.tools");
    let overrides = spec.tools_override.unwrap_or_default();
    others::warn_pre_override_names(
        &mut f,
        &path,
        &tools,
        &overrides,
        &format!("MCPToolConfig {name:?}'s spec.toolsOverride"),
    );
    let filter = spec.tools_filter.unwrap_or_default();
    if !filter.is_empty() && !tools.iter().any(|t| filter.contains(t)) {
        f.warn(
            &path,
            format!("no tool is in both spec.tools and the toolsFilter of MCPToolConfig {name:?}: a tool must be allowed by both, so none can be served"),
        );
    }
    f.warnings
}

/// The same-namespace objects a spec points at (Secrets, ConfigMaps, MCPToolConfig, MCPGroup,
/// and the auth and telemetry config kinds).
pub fn references(obj: &Value) -> Vec<Reference> {
    references::of(obj)
}

mod references;

/// The generated schema of every served (version, kind), with its CEL rules compiled once.
struct KindRules {
    schema: Value,
    /// `None` when the schema has no `x-kubernetes-validations`: evaluating nothing still walks
    /// the whole object, and that walk was a third of a review's CPU.
    cel: Option<CompiledSchema>,
}

static SCHEMAS: LazyLock<HashMap<(&'static str, &'static str), KindRules>> = LazyLock::new(|| {
    let crds = api::crd::all();
    let mut out = HashMap::new();
    for served in api::SERVED {
        let Some(crd) = crds.iter().find(|c| c.spec.names.kind == served.kind) else {
            continue;
        };
        for version in served.versions {
            let schema = crd
                .spec
                .versions
                .iter()
                .find(|v| v.name == *version)
                .and_then(|v| v.schema.as_ref()?.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            if let Some(schema) = schema {
                let has_rules = schema.to_string().contains("\"x-kubernetes-validations\"");
                let cel = has_rules.then(|| kube_cel::compile_schema(&schema));
                out.insert((*version, served.kind), KindRules { schema, cel });
            }
        }
    }
    out
});

thread_local! {
    /// Registering every Kubernetes CEL function is not free: once per thread, not per object.
    static CEL: kube_cel::Validator = kube_cel::Validator::new();
}

/// The (version, kind) of an object of our group.
fn type_of(obj: &Value) -> Result<(&'static str, &'static str), AdmitError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let kind = obj.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(AdmitError::NoTypeMeta);
    };
    let found = api_version.split_once('/').and_then(|(group, version)| {
        if group != api::GROUP {
            return None;
        }
        let served = api::SERVED.iter().find(|s| s.kind == kind)?;
        let v = served.versions.iter().find(|v| **v == version)?;
        Some((*v, served.kind))
    });
    found.ok_or_else(|| not_served(obj))
}

fn not_served(obj: &Value) -> AdmitError {
    let field = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    AdmitError::NotServed {
        api_version: field("apiVersion"),
        kind: field("kind"),
    }
}

/// Names of our objects become parts of child names and DNS labels.
fn check_name(obj: &Value, errors: &mut FieldErrors) {
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() && generate.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if !name.is_empty() {
        for why in rules::dns1123_subdomain(name) {
            errors.push(FieldError::invalid("metadata.name", name, why));
        }
    }
    if let Some(ns) = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        for why in rules::dns1123_label(ns) {
            errors.push(FieldError::invalid("metadata.namespace", ns, why));
        }
    }
}

/// The structural schema, field by field, below the root (`spec`, `status`).
fn check_structure(schema: &Value, obj: &Value, errors: &mut FieldErrors) {
    let props = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if obj.get(name).is_none_or(Value::is_null) {
                errors.push(FieldError::required(name, ""));
            }
        }
    }
    for (name, child_schema) in props.into_iter().flatten() {
        if let Some(value) = obj.get(name) {
            schema::validate(child_schema, value, &Path::root(name), errors);
        }
    }
    for key in obj.as_object().into_iter().flat_map(|m| m.keys()) {
        let known = matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
            || props.is_some_and(|p| p.contains_key(key));
        if !known {
            errors.push(FieldError::forbidden(
                key.as_str(),
                format!("unknown field {key:?}"),
            ));
        }
    }
}

/// `x-kubernetes-validations` of the schema, evaluated as the API server would.
fn check_cel(rules: &KindRules, obj: &Value, old: Option<&Value>, errors: &mut FieldErrors) {
    let Some(compiled) = &rules.cel else { return };
    let outcome = CEL.with(|validator| validator.validate_compiled(compiled, obj, old));
    if let Err(failures) = outcome {
        for f in failures.iter() {
            let field = if f.field_path.is_empty() {
                "<root>".to_string()
            } else {
                f.field_path.clone()
            };
            errors.push(FieldError::invalid(field, Value::Null, f.message.clone()).without_value());
        }
    }
}

/// What a typed-decode failure of the whole object says; such an error is only news when the
/// schema found nothing (it then names a field the schema leaves untyped, like v1alpha1's
/// `groupRef`).
pub(crate) const NOT_DECODABLE: &str = "not a valid object";

/// Decodes into the typed object, reporting a failure at the field's own path.
fn decode<T: DeserializeOwned>(obj: &Value, f: &mut Findings) -> Option<T> {
    let mut found = Findings::default();
    let decoded = common::check_decodes::<T>(&mut found, &Path::root("<object>"), obj, "object");
    for mut e in found.errors.0 {
        if let Some(inner) = e.field.strip_prefix("<object>.") {
            e.field = inner.to_string();
        }
        f.error(e);
    }
    decoded
}

fn check_semantics(version: &str, kind: &str, raw: &Value, defaulted: &Value, f: &mut Findings) {
    let name = defaulted
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (version, kind) {
        ("v1beta1", "MCPServer") => {
            if let Some(o) = decode::<v1beta1::MCPServer>(defaulted, f) {
                mcpserver::validate_v1beta1(name, &o, raw, f);
                let s = &o.spec;
                auth::check_workload(&auth::workload_of!("MCPServer", s), f);
                telemetry::check_workload_ref(s.telemetry_config_ref.as_ref(), f);
            }
        }
        ("v1alpha1", "MCPServer") => {
            if let Some(o) = decode::<v1alpha1::MCPServer>(defaulted, f) {
                mcpserver::validate_v1alpha1(name, &o, raw, f);
                let s = &o.spec;
                auth::check_workload(&auth::workload_of!("MCPServer", s), f);
                inline_oidc_xor_ref(s.oidc_config.is_some(), s.oidc_config_ref.is_some(), f);
                telemetry::check_workload_ref(s.telemetry_config_ref.as_ref(), f);
                let reference = s.telemetry_config_ref.is_some();
                telemetry::inline_xor_ref(s.telemetry.is_some(), reference, f);
            }
        }
        ("v1beta1", "MCPRegistry") => {
            if let Some(o) = decode::<v1beta1::MCPRegistry>(defaulted, f) {
                mcpregistry::validate_v1beta1(&o, f);
            }
        }
        ("v1alpha1", "MCPRegistry") => {
            if let Some(o) = decode::<v1alpha1::MCPRegistry>(defaulted, f) {
                mcpregistry::validate_v1alpha1(&o, f);
            }
        }
        ("v1beta1", "MCPRemoteProxy") => {
            if let Some(o) = decode::<v1beta1::MCPRemoteProxy>(defaulted, f) {
                others::validate_remote_proxy_v1beta1(&o, f);
                let s = &o.spec;
                auth::check_workload(&auth::workload_of!("MCPRemoteProxy", s), f);
                telemetry::check_workload_ref(s.telemetry_config_ref.as_ref(), f);
            }
        }
        ("v1alpha1", "MCPRemoteProxy") => {
            if let Some(o) = decode::<v1alpha1::MCPRemoteProxy>(defaulted, f) {
                others::validate_remote_proxy_v1alpha1(&o, f);
                let s = &o.spec;
                auth::check_workload(&auth::workload_of!("MCPRemoteProxy", s), f);
                inline_oidc_xor_ref(s.oidc_config.is_some(), s.oidc_config_ref.is_some(), f);
                telemetry::check_workload_ref(s.telemetry_config_ref.as_ref(), f);
                let reference = s.telemetry_config_ref.is_some();
                telemetry::inline_xor_ref(s.telemetry.is_some(), reference, f);
            }
        }
        ("v1beta1", "MCPToolConfig") => {
            if let Some(o) = decode::<v1beta1::MCPToolConfig>(defaulted, f) {
                others::validate_tool_config(&o.spec, f);
            }
        }
        ("v1alpha1", "MCPToolConfig") => {
            if let Some(o) = decode::<v1alpha1::MCPToolConfig>(defaulted, f) {
                let spec = v1beta1::MCPToolConfigSpec {
                    tools_filter: o.spec.tools_filter,
                    tools_override: o.spec.tools_override,
                };
                others::validate_tool_config(&spec, f);
            }
        }
        ("v1beta1", "MCPOIDCConfig") => {
            if let Some(o) = decode::<v1beta1::MCPOIDCConfig>(defaulted, f) {
                let s = &o.spec;
                let (ksa, inline) = (s.kubernetes_service_account.as_ref(), s.inline.as_ref());
                auth::check_oidc_config(&s.type_, ksa, inline, f);
            }
        }
        ("v1alpha1", "MCPOIDCConfig") => {
            if let Some(o) = decode::<v1alpha1::MCPOIDCConfig>(defaulted, f) {
                let s = &o.spec;
                let (ksa, inline) = (s.kubernetes_service_account.as_ref(), s.inline.as_ref());
                auth::check_oidc_config(&s.type_, ksa, inline, f);
            }
        }
        ("v1beta1", "MCPAuthzConfig") => {
            if let Some(o) = decode::<v1beta1::MCPAuthzConfig>(defaulted, f) {
                auth::check_authz_config(&o.spec.type_, &o.spec.config, f);
            }
        }
        ("v1alpha1", "MCPAuthzConfig") => {
            if let Some(o) = decode::<v1alpha1::MCPAuthzConfig>(defaulted, f) {
                auth::check_authz_config(&o.spec.type_, &o.spec.config, f);
            }
        }
        ("v1beta1", "MCPExternalAuthConfig") => {
            if let Some(o) = decode::<v1beta1::MCPExternalAuthConfig>(defaulted, f) {
                auth::check_external_auth(&o.spec.type_, &o.spec.blocks, f);
            }
        }
        ("v1alpha1", "MCPExternalAuthConfig") => {
            if let Some(o) = decode::<v1alpha1::MCPExternalAuthConfig>(defaulted, f) {
                auth::check_external_auth(&o.spec.type_, &o.spec.blocks, f);
            }
        }
        ("v1beta1", "MCPTelemetryConfig") => {
            if let Some(o) = decode::<v1beta1::MCPTelemetryConfig>(defaulted, f) {
                telemetry::check_config(o.spec.open_telemetry.as_ref(), f);
            }
        }
        ("v1alpha1", "MCPTelemetryConfig") => {
            if let Some(o) = decode::<v1alpha1::MCPTelemetryConfig>(defaulted, f) {
                telemetry::check_config(o.spec.open_telemetry.as_ref(), f);
            }
        }
        ("v1beta1", "VirtualMCPServer") => {
            if let Some(o) = decode::<v1beta1::VirtualMCPServer>(defaulted, f) {
                vmcp::validate_vmcp_v1beta1(&o, f);
            }
        }
        ("v1alpha1", "VirtualMCPServer") => {
            if let Some(o) = decode::<v1alpha1::VirtualMCPServer>(defaulted, f) {
                vmcp::validate_vmcp_v1alpha1(&o, f);
            }
        }
        ("v1beta1", "MCPServerEntry") => {
            if let Some(o) = decode::<v1beta1::MCPServerEntry>(defaulted, f) {
                vmcp::validate_entry_v1beta1(&o, f);
            }
        }
        ("v1alpha1", "MCPServerEntry") => {
            if let Some(o) = decode::<v1alpha1::MCPServerEntry>(defaulted, f) {
                vmcp::validate_entry_v1alpha1(&o, f);
            }
        }
        _ => {} // MCPGroup: the schema says it all
    }
}

/// ToolHive v0.15 – v0.20 served both the inline `oidcConfig` and `oidcConfigRef` at
/// v1alpha1, and refused the two together.
fn inline_oidc_xor_ref(inline: bool, reference: bool, f: &mut Findings) {
    if inline && reference {
        f.error(FieldError::forbidden(
            "spec.oidcConfigRef",
            "oidcConfig and oidcConfigRef are mutually exclusive; keep oidcConfigRef and move the rest of oidcConfig into the MCPOIDCConfig it names",
        ));
    }
}
