//! VirtualMCPServer and MCPServerEntry.
//!
//! Upstream checks a VirtualMCPServer at reconcile time (its admission webhooks never ran,
//! stacklok/toolhive#3360) and reports problems in status; here what the object alone can
//! decide is refused at apply time: a strategy whose settings are missing or contradictory,
//! tool names that two backends would both serve under `manual` or `priority`, durations that
//! do not parse. What needs the group's members (does `priorityOrder` name a member, do two
//! backends really offer one tool) is the reconciler's to report.

use super::auth::{check_workload, WorkloadAuth};
use super::common::*;
use super::field::{ErrorType, FieldError, FieldErrors, Path};
use super::rules::go_duration_secs;
use crate::api::auth::{AuthzConfig, OidcConfigRef};
use crate::api::shared::NameRef;
use crate::api::v1alpha1::{self, SNAKE_EXTERNAL_AUTH};
use crate::api::v1beta1::{
    Aggregation, FailureHandling, Operational, VmcpConfig, WORKLOAD_PLACEHOLDER,
};
use crate::api::{v1beta1, ALPHA_STASH_PREFIX};
use std::collections::{BTreeMap, HashMap};

/// Upstream's fields whose runtime mcp-operator does not build: absent from our schema, so the
/// API server and admission refuse them; admission says why. Paths as the schema check names
/// them.
const NOT_BUILT: &[(&str, &str)] = &[
    ("spec.config.compositeTools", "composite tools"),
    ("spec.config.compositeToolRefs", "composite tools"),
    ("spec.config.optimizer", "the tool optimizer"),
    ("spec.embeddingServerRef", "the tool optimizer"),
    ("spec.config.codeMode", "code mode"),
    ("spec.config.rateLimiting", "rate limiting"),
    ("spec.authServerConfig", "the embedded authorization server"),
    ("spec.config.telemetry", "telemetry on a VirtualMCPServer"),
    ("spec.telemetryConfigRef", "telemetry on a VirtualMCPServer"),
    ("spec.sessionStorage", "shared session storage"),
    ("spec.config.sessionStorage", "shared session storage"),
    ("spec.passthroughHeaders", "header passthrough"),
    ("spec.config.passthroughHeaders", "header passthrough"),
    (
        "spec.config.backends",
        "static backends (the backends are the group's members)",
    ),
    ("spec.config.audit", "audit on a VirtualMCPServer"),
    ("spec.config.metadata", "vMCP metadata"),
    ("spec.config.name", "a vMCP name other than the object's"),
    ("spec.config.operational.logLevel", "log levels"),
    ("spec.serviceAccount", "a service account of your own"),
];

/// Fields of upstream's `config` that the operator writes itself from the object's own.
const WRITTEN_BY_OPERATOR: &[(&str, &str)] = &[
    ("spec.config.incomingAuth", "spec.incomingAuth"),
    ("spec.config.outgoingAuth", "spec.outgoingAuth"),
];

/// Says why an unknown field of a VirtualMCPServer is refused, when it is one of upstream's.
pub fn explain_unknown_fields(errors: &mut FieldErrors) {
    for e in errors.0.iter_mut() {
        if e.kind != ErrorType::Forbidden || !e.detail.starts_with("unknown field") {
            continue;
        }
        if let Some((_, what)) = NOT_BUILT.iter().find(|(p, _)| *p == e.field) {
            e.detail = format!(
                "{}: upstream's field for {what}, which mcp-operator does not build yet; refused rather than accepted and ignored",
                e.detail
            );
        } else if let Some((_, own)) = WRITTEN_BY_OPERATOR.iter().find(|(p, _)| *p == e.field) {
            e.detail = format!(
                "{}: set {own} instead (upstream's operator overwrites this key from it)",
                e.detail
            );
        }
    }
}

/// What the inline `oidcConfig` of the old shape means here.
pub const VMCP_OIDC_NOT_ENFORCED: &str = "this inline form of authentication is not enforced by mcp-operator, so the VirtualMCPServer is not deployed while it is set; move it to an MCPOIDCConfig referenced by spec.incomingAuth.oidcConfigRef";

/// What the inline `oidcConfig` of an object means (in the spec at v1alpha1, in the stash at
/// v1beta1), for `convert` to print beside a rewritten manifest.
pub fn inline_oidc_warnings(obj: &serde_json::Value, version: &str) -> Vec<String> {
    let mut f = Findings::default();
    let key = format!("{ALPHA_STASH_PREFIX}incomingAuth.oidcConfig");
    let stashed = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(&key))
        .is_some();
    if version == "v1beta1" && stashed {
        f.warn(
            &Path::root("metadata.annotations").key(&key),
            format!(
                "the inline incomingAuth.oidcConfig of the v1alpha1 form: {VMCP_OIDC_NOT_ENFORCED}"
            ),
        );
    } else if version == "v1alpha1" && obj.pointer("/spec/incomingAuth/oidcConfig").is_some() {
        f.warn(
            &Path::root("spec.incomingAuth.oidcConfig"),
            VMCP_OIDC_NOT_ENFORCED,
        );
    }
    f.warnings
}

/// The parts of a VirtualMCPServer that both versions share, as read from either.
struct View<'a> {
    incoming_type: &'a str,
    oidc_config_ref: Option<&'a OidcConfigRef>,
    /// The old inline `oidcConfig`: in the spec at v1alpha1, in the stash at v1beta1.
    inline_oidc: bool,
    authz_config: Option<&'a AuthzConfig>,
    authz_config_ref: Option<&'a NameRef>,
    /// `default` and each of `backends`.
    backend_auth: Vec<BackendEntry<'a>>,
    config: Option<&'a VmcpConfig>,
    pod_template_spec: Option<&'a serde_json::Value>,
}

pub fn validate_vmcp_v1beta1(obj: &v1beta1::VirtualMCPServer, f: &mut Findings) {
    let s = &obj.spec;
    let spec = Path::root("spec");
    check_object_name(f, &spec.child("groupRef.name"), &s.group_ref.name);
    let stash_key = format!("{ALPHA_STASH_PREFIX}incomingAuth.oidcConfig");
    let stashed_oidc = obj
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(&stash_key));
    let out = s.outgoing_auth.as_ref();
    let backend_auth = backend_entries(
        out.and_then(|o| o.default.as_ref()),
        out.and_then(|o| o.backends.as_ref()),
        |b| (b.type_.as_str(), b.external_auth_config_ref.as_ref()),
    );
    let i = &s.incoming_auth;
    let view = View {
        incoming_type: &i.type_,
        oidc_config_ref: i.oidc_config_ref.as_ref(),
        inline_oidc: stashed_oidc,
        authz_config: i.authz_config.as_ref(),
        authz_config_ref: i.authz_config_ref.as_ref(),
        backend_auth,
        config: s.config.as_ref(),
        pod_template_spec: s.pod_template_spec.as_ref(),
    };
    if stashed_oidc {
        f.warn(
            &Path::root("metadata.annotations").key(&stash_key),
            format!(
                "the inline incomingAuth.oidcConfig of the v1alpha1 form: {VMCP_OIDC_NOT_ENFORCED}"
            ),
        );
    }
    check_group_in_config(f, &s.group_ref.name, s.config.as_ref());
    validate(&view, f);
}

pub fn validate_vmcp_v1alpha1(obj: &v1alpha1::VirtualMCPServer, f: &mut Findings) {
    let s = &obj.spec;
    let spec = Path::root("spec");
    let in_config = s.config.as_ref().and_then(|c| c.group_ref.as_deref());
    match (&s.group_ref, in_config) {
        (Some(g), _) => {
            check_object_name(f, &spec.child("groupRef.name"), &g.name);
            check_group_in_config(f, &g.name, s.config.as_ref());
        }
        (None, Some(name)) => check_object_name(f, &spec.child("config.groupRef"), name),
        (None, None) => f.error(FieldError::required(
            spec.child("groupRef"),
            "the MCPGroup whose members are the backends: groupRef: {name: <group>} (or, in the old shape, config.groupRef: <group>)",
        )),
    }
    let i = &s.incoming_auth;
    let ip = spec.child("incomingAuth");
    if i.oidc_config.is_some() {
        f.warn(&ip.child("oidcConfig"), VMCP_OIDC_NOT_ENFORCED);
        if i.oidc_config_ref.is_some() {
            // ToolHive v0.15 – v0.20 served both at v1alpha1 and refused the two together.
            f.error(FieldError::forbidden(
                ip.child("oidcConfigRef"),
                "oidcConfig and oidcConfigRef are mutually exclusive; keep oidcConfigRef and move the rest of oidcConfig into the MCPOIDCConfig it names",
            ));
        }
    }
    let out = s.outgoing_auth.as_ref();
    let backend_auth = backend_entries(
        out.and_then(|o| o.default.as_ref()),
        out.and_then(|o| o.backends.as_ref()),
        |b| (b.type_.as_str(), b.external_auth_config_ref.as_ref()),
    );
    for e in &backend_auth {
        if e.type_ == SNAKE_EXTERNAL_AUTH {
            f.warn(
                &e.path.child("type"),
                "deprecated spelling (ToolHive ≤ v0.19): use externalAuthConfigRef",
            );
        }
    }
    let view = View {
        incoming_type: &i.type_,
        oidc_config_ref: i.oidc_config_ref.as_ref(),
        inline_oidc: i.oidc_config.is_some(),
        authz_config: i.authz_config.as_ref(),
        authz_config_ref: i.authz_config_ref.as_ref(),
        backend_auth,
        config: s.config.as_ref(),
        pod_template_spec: s.pod_template_spec.as_ref(),
    };
    validate(&view, f);
}

/// One of `outgoingAuth.default` and `outgoingAuth.backends`, from either version.
struct BackendEntry<'a> {
    path: Path,
    /// The backend's name, for the `backends` entries.
    backend: Option<&'a str>,
    type_: &'a str,
    reference: Option<&'a NameRef>,
}

/// `default` and every `backends` entry, with their paths.
fn backend_entries<'a, B>(
    default: Option<&'a B>,
    backends: Option<&'a BTreeMap<String, B>>,
    fields: impl Fn(&'a B) -> (&'a str, Option<&'a NameRef>),
) -> Vec<BackendEntry<'a>> {
    let out = Path::root("spec.outgoingAuth");
    let mut entries = Vec::new();
    if let Some(d) = default {
        let (type_, reference) = fields(d);
        let path = out.child("default");
        entries.push(BackendEntry {
            path,
            backend: None,
            type_,
            reference,
        });
    }
    for (name, b) in backends.into_iter().flatten() {
        let (type_, reference) = fields(b);
        let path = out.child("backends").key(name);
        entries.push(BackendEntry {
            path,
            backend: Some(name),
            type_,
            reference,
        });
    }
    entries
}

/// Upstream's operator writes `config.groupRef` from `spec.groupRef`: a different name there is
/// ignored, which is worth saying.
fn check_group_in_config(f: &mut Findings, group: &str, config: Option<&VmcpConfig>) {
    if let Some(other) = config.and_then(|c| c.group_ref.as_deref()) {
        if other != group {
            f.warn(
                &Path::root("spec.config.groupRef"),
                format!("ignored: the group is spec.groupRef ({group:?}), not {other:?}"),
            );
        }
    }
}

fn validate(v: &View<'_>, f: &mut Findings) {
    check_incoming(v, f);
    for e in &v.backend_auth {
        check_backend_auth(f, e);
    }
    if let Some(config) = v.config {
        if let Some(a) = &config.aggregation {
            check_aggregation(f, a);
        }
        if let Some(o) = &config.operational {
            check_operational(f, o);
        }
    }
    if let Some(pts) = v.pod_template_spec {
        check_decodes::<k8s_openapi::api::core::v1::PodTemplateSpec>(
            f,
            &Path::root("spec.podTemplateSpec"),
            pts,
            "PodTemplateSpec",
        );
    }
}

fn check_incoming(v: &View<'_>, f: &mut Findings) {
    let p = Path::root("spec.incomingAuth");
    match v.incoming_type {
        // Upstream's CEL rule, here rather than in the schema: an object stored from the old
        // shape has its inline block in the stash, which a CEL rule cannot see.
        "oidc" if v.oidc_config_ref.is_none() && !v.inline_oidc => f.error(FieldError::required(
            p.child("oidcConfigRef"),
            "oidcConfigRef is required when type is oidc: the MCPOIDCConfig that validates the callers' tokens",
        )),
        "anonymous" if v.oidc_config_ref.is_some() => f.warn(
            &p.child("oidcConfigRef"),
            "ignored: incomingAuth.type is anonymous, so no token is checked; set type: oidc to use it",
        ),
        _ => {}
    }
    let auth = WorkloadAuth {
        kind: "VirtualMCPServer",
        at: "spec.incomingAuth",
        oidc_config_ref: v.oidc_config_ref,
        authz_config: v.authz_config,
        authz_config_ref: v.authz_config_ref,
        external_auth_config_ref: None,
        audit: None,
    };
    check_workload(&auth, f);
}

/// Upstream's Go validation: `externalAuthConfigRef` needs its reference; ours also refuses a
/// reference that `discovered` would ignore.
fn check_backend_auth(f: &mut Findings, e: &BackendEntry<'_>) {
    if let Some(name) = e.backend {
        check_object_name(f, &e.path, name);
    }
    let rp = e.path.child("externalAuthConfigRef");
    match (e.type_, e.reference) {
        ("externalAuthConfigRef" | SNAKE_EXTERNAL_AUTH, None) => f.error(FieldError::required(
            rp,
            "the MCPExternalAuthConfig to use when type is externalAuthConfigRef",
        )),
        ("externalAuthConfigRef" | SNAKE_EXTERNAL_AUTH, Some(r)) => {
            check_object_name(f, &rp.child("name"), &r.name)
        }
        ("discovered", Some(_)) => f.error(FieldError::forbidden(
            rp,
            "must not be set when type is discovered (the backend's own externalAuthConfigRef is used); set type: externalAuthConfigRef to use this one",
        )),
        _ => {}
    }
}

fn check_aggregation(f: &mut Findings, a: &Aggregation) {
    let p = Path::root("spec.config.aggregation");
    let strategy = a.conflict_resolution.as_deref().unwrap_or("prefix");
    let crc = a.conflict_resolution_config.as_ref();
    let cp = p.child("conflictResolutionConfig");
    let priority_order = crc.and_then(|c| c.priority_order.as_deref());
    if let Some(order) = priority_order {
        check_priority_order(f, &cp.child("priorityOrder"), order);
    }
    if strategy == "priority" && priority_order.is_none_or(<[String]>::is_empty) {
        f.error(FieldError::required(
            cp.child("priorityOrder"),
            "conflictResolution priority needs the backends' names, highest priority first",
        ));
    }
    if let Some(format) = crc.and_then(|c| c.prefix_format.as_deref()) {
        check_prefix_format(f, &cp.child("prefixFormat"), format);
    }
    let ignored = |f: &mut Findings, field: &str, set: bool, used_by: &str| {
        if set && strategy != used_by {
            f.warn(
                &cp.child(field),
                format!("ignored: only conflictResolution {used_by} uses it, and this one is {strategy}"),
            );
        }
    };
    ignored(f, "priorityOrder", priority_order.is_some(), "priority");
    ignored(
        f,
        "prefixFormat",
        crc.is_some_and(|c| c.prefix_format.is_some()),
        "prefix",
    );
    ignored(
        f,
        "prefixOnlyConflicts",
        crc.is_some_and(|c| c.prefix_only_conflicts.is_some()),
        "prefix",
    );
    let tools = a.tools.as_deref().unwrap_or_default();
    let mut workloads: HashMap<&str, usize> = HashMap::new();
    for (i, t) in tools.iter().enumerate() {
        let tp = p.child("tools").index(i);
        check_object_name(f, &tp.child("workload"), &t.workload);
        if let Some(first) = workloads.insert(&t.workload, i) {
            f.error(FieldError::invalid(
                tp.child("workload"),
                t.workload.as_str(),
                format!("tools[{first}] is already about this backend; one entry per backend"),
            ));
        }
        if let Some(r) = &t.tool_config_ref {
            check_object_name(f, &tp.child("toolConfigRef.name"), &r.name);
        }
        if let Some(filter) = &t.filter {
            check_tools(f, &tp.child("filter"), filter);
            let overrides = t.overrides.clone().unwrap_or_default();
            super::others::warn_pre_override_names(
                f,
                &tp.child("filter"),
                filter,
                &overrides,
                &format!("tools[{i}].overrides"),
            );
            if t.exclude_all == Some(true) {
                f.warn(
                    &tp.child("filter"),
                    "ignored: excludeAll hides every tool of this backend",
                );
            }
        }
        if let Some(overrides) = &t.overrides {
            // The rules of an MCPToolConfig's toolsOverride: no blank names, no two tools of
            // one backend served under one name.
            let spec = v1beta1::MCPToolConfigSpec {
                tools_filter: None,
                tools_override: Some(overrides.clone()),
            };
            let mut inner = Findings::default();
            super::others::validate_tool_config(&spec, &mut inner);
            let from = Path::root("spec.toolsOverride");
            let to = tp.child("overrides");
            for mut e in inner.errors.0 {
                e.field = e.field.replacen(from.as_str(), to.as_str(), 1);
                f.error(e);
            }
            for w in inner.warnings {
                f.warnings.push(w.replacen(from.as_str(), to.as_str(), 1));
            }
        }
    }
    if matches!(strategy, "manual" | "priority") {
        check_one_name_one_backend(f, &p, strategy, tools, priority_order.unwrap_or_default());
    }
}

/// Backend names, each once, none empty.
fn check_priority_order(f: &mut Findings, p: &Path, order: &[String]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in order.iter().enumerate() {
        let ip = p.index(i);
        if name.is_empty() {
            f.error(FieldError::required(ip, "a backend's name"));
            continue;
        }
        check_object_name(f, &ip, name);
        if seen.insert(name, i).is_some() {
            f.error(FieldError::duplicate(ip, name.as_str()));
        }
    }
}

/// A prefix that does not name the backend gives every backend the same prefix, so the names
/// it was meant to tell apart still collide.
fn check_prefix_format(f: &mut Findings, p: &Path, format: &str) {
    if !format.contains(WORKLOAD_PLACEHOLDER) {
        f.error(FieldError::invalid(
            p,
            format,
            format!("must contain {WORKLOAD_PLACEHOLDER}, the backend's name: without it every backend gets the same prefix and colliding names still collide"),
        ));
        return;
    }
    let literal = format
        .replace(WORKLOAD_PLACEHOLDER, "")
        .replace("{namespace}", "");
    if literal.contains(['{', '}']) {
        f.error(FieldError::invalid(
            p,
            format,
            "the placeholders are {workload} and {namespace}",
        ));
    } else if !literal
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        f.warn(
            p,
            "tool names made with this prefix contain characters outside A-Z, a-z, 0-9, _, - and . (the MCP specification's tool-name alphabet); some clients refuse them",
        );
    }
}

/// With `manual` (and with `priority` between backends absent from `priorityOrder`), a name two
/// backends serve is not resolved by the strategy: the names each backend is set to serve
/// (its `filter`, and its `overrides`' new names) must not meet.
fn check_one_name_one_backend(
    f: &mut Findings,
    p: &Path,
    strategy: &str,
    tools: &[v1beta1::WorkloadTools],
    priority_order: &[String],
) {
    let mut served: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (i, t) in tools.iter().enumerate() {
        if t.exclude_all == Some(true) {
            continue;
        }
        let tp = p.child("tools").index(i);
        let mut names: Vec<(String, Path)> = Vec::new();
        for (k, name) in t.filter.iter().flatten().enumerate() {
            names.push((name.clone(), tp.child("filter").index(k)));
        }
        for (tool, o) in t.overrides.iter().flatten() {
            if let Some(new) = o.name.as_deref().filter(|n| !n.trim().is_empty()) {
                names.push((
                    new.to_string(),
                    tp.child("overrides").key(tool).child("name"),
                ));
            }
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        for (name, at) in names {
            let Some((other, other_at)) = served.get(&name).cloned() else {
                served.insert(name, (t.workload.clone(), at.as_str().to_string()));
                continue;
            };
            let ranked = |w: &str| priority_order.iter().any(|x| x == w);
            if strategy == "priority" && (ranked(&other) || ranked(&t.workload)) {
                continue;
            }
            let fix = if strategy == "manual" {
                "with conflictResolution manual every served name must be unique: rename one of them in overrides".to_string()
            } else {
                format!("neither {other:?} nor {:?} is in priorityOrder, so the priority strategy cannot choose: list one of them, or rename one in overrides", t.workload)
            };
            f.error(FieldError::invalid(
                at,
                name.as_str(),
                format!("backend {:?} would serve a tool named {name:?}, and so would backend {other:?} ({other_at}); {fix}", t.workload),
            ));
        }
    }
}

fn check_operational(f: &mut Findings, o: &Operational) {
    let p = Path::root("spec.config.operational");
    if let Some(t) = &o.timeouts {
        let tp = p.child("timeouts");
        if let Some(d) = &t.default {
            check_duration(f, &tp.child("default"), d, 0.0);
        }
        for (w, d) in t.per_workload.iter().flatten() {
            let wp = tp.child("perWorkload").key(w);
            check_object_name(f, &wp, w);
            check_duration(f, &wp, d, 0.0);
        }
    }
    if let Some(h) = &o.failure_handling {
        check_failure_handling(f, &p.child("failureHandling"), h);
    }
}

fn check_failure_handling(f: &mut Findings, p: &Path, h: &FailureHandling) {
    let interval = h
        .health_check_interval
        .as_ref()
        .and_then(|d| check_duration(f, &p.child("healthCheckInterval"), d, 0.0));
    let timeout = h
        .health_check_timeout
        .as_ref()
        .and_then(|d| check_duration(f, &p.child("healthCheckTimeout"), d, 0.0));
    if let Some(d) = &h.status_reporting_interval {
        check_duration(f, &p.child("statusReportingInterval"), d, 0.0);
    }
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t > i {
            f.warn(
                &p.child("healthCheckTimeout"),
                "longer than healthCheckInterval: checks of a slow backend overlap",
            );
        }
    }
    if let Some(cb) = &h.circuit_breaker {
        if let Some(d) = &cb.timeout {
            // Upstream's CEL: empty or at least one second.
            check_duration(f, &p.child("circuitBreaker.timeout"), d, 1.0);
        }
    }
}

/// A Go duration above zero and at least `min_secs`; its length in seconds when it is one.
fn check_duration(f: &mut Findings, p: &Path, d: &str, min_secs: f64) -> Option<f64> {
    match go_duration_secs(d) {
        Err(why) => {
            f.error(FieldError::invalid(p, d, why));
            None
        }
        Ok(secs) if secs <= 0.0 => {
            f.error(FieldError::invalid(p, d, "must be longer than zero"));
            None
        }
        Ok(secs) if secs < min_secs => {
            f.error(FieldError::invalid(
                p,
                d,
                format!("must be at least {min_secs}s"),
            ));
            None
        }
        Ok(secs) => Some(secs),
    }
}

pub fn validate_entry_v1beta1(obj: &v1beta1::MCPServerEntry, f: &mut Findings) {
    let s = &obj.spec;
    let spec = Path::root("spec");
    super::others::check_remote_url(
        f,
        &spec.child("remoteUrl"),
        &s.remote_url,
        s.allow_private_endpoint.unwrap_or(false),
    );
    check_object_name(f, &spec.child("groupRef.name"), &s.group_ref.name);
    check_entry_common(
        f,
        s.header_forward.as_ref(),
        s.external_auth_config_ref.as_ref(),
        s.ca_bundle_ref.as_ref(),
    );
}

pub fn validate_entry_v1alpha1(obj: &v1alpha1::MCPServerEntry, f: &mut Findings) {
    let s = &obj.spec;
    let spec = Path::root("spec");
    let allow_private = s.allow_private_endpoint.unwrap_or(false);
    super::others::check_remote_url_spellings(
        f,
        &spec,
        &s.remote_url_old,
        &s.remote_url,
        allow_private,
    );
    super::mcpserver::check_v1alpha1_group_ref(f, &spec, &s.group_ref);
    check_entry_common(
        f,
        s.header_forward.as_ref(),
        s.external_auth_config_ref.as_ref(),
        s.ca_bundle_ref.as_ref(),
    );
}

fn check_entry_common(
    f: &mut Findings,
    headers: Option<&v1beta1::HeaderForward>,
    external_auth: Option<&NameRef>,
    ca_bundle: Option<&crate::api::auth::CaBundleSource>,
) {
    let spec = Path::root("spec");
    super::others::check_header_forward(f, headers);
    if let Some(r) = external_auth {
        check_object_name(f, &spec.child("externalAuthConfigRef.name"), &r.name);
    }
    if let Some(ca) = ca_bundle {
        // How the VirtualMCPServer's pod will mount it is not decided yet: only the reference
        // itself is checked (no volume-name prefix to leave room for).
        check_ca_bundle_ref(f, &spec.child("caBundleRef"), ca, "");
    }
}
