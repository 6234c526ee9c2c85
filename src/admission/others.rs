//! MCPRemoteProxy, MCPToolConfig and MCPGroup.

use super::common::*;
use super::field::{FieldError, Path};
use crate::address::Refused;
use crate::api::v1beta1::{HeaderForward, MCPToolConfigSpec};
use crate::api::{v1alpha1, v1beta1};
use std::collections::HashMap;
use std::net::IpAddr;

pub fn validate_remote_proxy_v1beta1(obj: &v1beta1::MCPRemoteProxy, f: &mut Findings) {
    let s = &obj.spec;
    let spec = Path::root("spec");
    check_remote_url(
        f,
        &spec.child("remoteUrl"),
        &s.remote_url,
        s.allow_private_endpoint.unwrap_or(false),
    );
    check_proxy_common(
        f,
        s.header_forward.as_ref(),
        s.resources.as_ref(),
        s.tool_config_ref.as_ref().map(|r| r.name.as_str()),
    );
    if let Some(g) = &s.group_ref {
        check_object_name(f, &spec.child("groupRef.name"), &g.name);
    }
    if let Some(pts) = &s.pod_template_spec {
        check_decodes::<k8s_openapi::api::core::v1::PodTemplateSpec>(
            f,
            &spec.child("podTemplateSpec"),
            pts,
            "PodTemplateSpec",
        );
    }
    super::mcpserver::warn_kept_alpha_fields(obj.metadata.annotations.as_ref(), false, f);
}

pub fn validate_remote_proxy_v1alpha1(obj: &v1alpha1::MCPRemoteProxy, f: &mut Findings) {
    let s = &obj.spec;
    let spec = Path::root("spec");
    // The field, or (objects read at v1alpha1 by older releases of ours) its stash annotation.
    let key = format!("{}allowPrivateEndpoint", crate::api::BETA_STASH_PREFIX);
    let stashed = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&key))
        .is_some_and(|v| v == "true");
    let allow_private = s.allow_private_endpoint.unwrap_or(false) || stashed;
    check_remote_url_spellings(f, &spec, &s.remote_url_old, &s.remote_url, allow_private);
    check_proxy_common(
        f,
        s.header_forward.as_ref(),
        s.resources.as_ref(),
        s.tool_config_ref.as_ref().map(|r| r.name.as_str()),
    );
    if let Some(g) = &s.group_ref {
        super::mcpserver::check_v1alpha1_group_ref(f, &spec, g);
    }
    if s.port.is_some() {
        f.warn(&spec.child("port"), "deprecated: use spec.proxyPort");
    }
    if s.oidc_config.is_some() {
        f.warn(&spec.child("oidcConfig"), super::mcpserver::OIDC_KEPT_ONLY);
    }
    if s.telemetry.is_some() {
        f.warn(
            &spec.child("telemetry"),
            super::mcpserver::TELEMETRY_KEPT_ONLY,
        );
    }
}

fn check_proxy_common(
    f: &mut Findings,
    headers: Option<&HeaderForward>,
    resources: Option<&crate::api::shared::ResourceRequirements>,
    tool_config: Option<&str>,
) {
    let spec = Path::root("spec");
    if let Some(r) = resources {
        check_resources(f, &spec.child("resources"), r);
    }
    if let Some(t) = tool_config {
        check_object_name(f, &spec.child("toolConfigRef.name"), t);
    }
    check_header_forward(f, headers);
}

/// `spec.headerForward` (MCPRemoteProxy, MCPServerEntry): header names and their Secrets.
pub fn check_header_forward(f: &mut Findings, headers: Option<&HeaderForward>) {
    let Some(h) = headers else { return };
    let p = Path::root("spec.headerForward");
    for k in h.add_plaintext_headers.iter().flatten().map(|(k, _)| k) {
        if !is_http_token(k) {
            f.error(FieldError::invalid(
                p.child("addPlaintextHeaders").key(k),
                k.as_str(),
                "not a valid HTTP header name",
            ));
        }
    }
    for (i, s) in h.add_headers_from_secret.iter().flatten().enumerate() {
        let ip = p.child("addHeadersFromSecret").index(i);
        if !is_http_token(&s.header_name) {
            f.error(FieldError::invalid(
                ip.child("headerName"),
                s.header_name.as_str(),
                "not a valid HTTP header name",
            ));
        }
        check_object_name(
            f,
            &ip.child("valueSecretRef.name"),
            &s.value_secret_ref.name,
        );
        f.rule(
            &ip.child("valueSecretRef.key"),
            &s.value_secret_ref.key,
            super::rules::config_map_key(&s.value_secret_ref.key),
        );
    }
}

fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Refuses URLs that point at the node, the cloud metadata service or the API server itself,
/// and private addresses unless the user opted in. No DNS lookups: names are judged as written.
/// v1alpha1's remote URL under either of its two spellings (`remoteURL` from older releases,
/// `remoteUrl` from newer ones): exactly one, and it passes the address guard.
pub fn check_remote_url_spellings(
    f: &mut Findings,
    spec: &Path,
    old: &Option<String>,
    new: &Option<String>,
    allow_private: bool,
) {
    match (old, new) {
        (Some(url), None) => check_remote_url(f, &spec.child("remoteURL"), url, allow_private),
        (None, Some(url)) => check_remote_url(f, &spec.child("remoteUrl"), url, allow_private),
        (Some(_), Some(_)) => f.error(FieldError::forbidden(
            spec.child("remoteUrl"),
            "remoteURL and remoteUrl are two spellings of one field (older and newer v1alpha1 releases); set only one",
        )),
        (None, None) => f.error(FieldError::required(
            spec.child("remoteURL"),
            "the remote MCP endpoint: set remoteURL (or remoteUrl)",
        )),
    }
}

pub fn check_remote_url(f: &mut Findings, path: &Path, url: &str, allow_private: bool) {
    let Some(host) = url_host(url) else {
        f.error(FieldError::invalid(
            path.clone(),
            url,
            "must be an http:// or https:// URL with a host",
        ));
        return;
    };
    let host_l = host.to_ascii_lowercase();
    let always_blocked_names = [
        "localhost",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "metadata.google.internal",
    ];
    let blocked_name = always_blocked_names
        .iter()
        .any(|n| host_l == *n || host_l.ends_with(&format!(".{n}")) && *n != "kubernetes.default");
    if blocked_name || host_l.ends_with(".localhost") {
        f.error(FieldError::forbidden(
            path.clone(),
            format!("host {host:?} is not allowed: it points at the cluster or node itself"),
        ));
        return;
    }
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        match crate::address::classify(ip) {
            Some(Refused::Private) if !allow_private => f.error(FieldError::forbidden(
                path.clone(),
                format!("address {ip} is private; set spec.allowPrivateEndpoint to allow it"),
            )),
            Some(Refused::Private) | None => {}
            Some(class) => f.error(FieldError::forbidden(
                path.clone(),
                format!(
                    "address {ip} is {}: it points at the node or its metadata service",
                    class.what()
                ),
            )),
        }
        return;
    }
    if host_l.ends_with(".cluster.local") && !allow_private {
        f.error(FieldError::forbidden(
            path.clone(),
            "in-cluster hosts need spec.allowPrivateEndpoint",
        ));
    }
}

fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.split_once(']').map(|(h, _)| format!("{h}]"))?
    } else {
        host_port.split(':').next()?.to_string()
    };
    (!host.is_empty() && host != "[]").then_some(host)
}

pub fn validate_tool_config(spec: &MCPToolConfigSpec, f: &mut Findings) {
    let path = Path::root("spec");
    if let Some(tools) = &spec.tools_filter {
        check_tools(f, &path.child("toolsFilter"), tools);
        let overrides = spec.tools_override.clone().unwrap_or_default();
        warn_pre_override_names(
            f,
            &path.child("toolsFilter"),
            tools,
            &overrides,
            "spec.toolsOverride",
        );
    }
    let mut exposed: HashMap<&str, &str> = HashMap::new();
    for (name, o) in spec.tools_override.iter().flatten() {
        let p = path.child("toolsOverride").key(name);
        if name.trim().is_empty() {
            f.error(FieldError::required(
                p.clone(),
                "tool names must not be empty",
            ));
        }
        // An empty name or description keeps the server's, as upstream and the operator read
        // it: accepted (historic manifests carry it) with a warning, the same for both fields.
        // Blank but not empty would be served as blank: refused, the same for both fields.
        for (field, value) in [("name", &o.name), ("description", &o.description)] {
            match value.as_deref() {
                Some("") => f.warn(
                    &p.child(field),
                    format!("empty: the tool keeps its {field} from the server; leave the field out to say so"),
                ),
                Some(v) if v.trim().is_empty() => f.error(FieldError::invalid(
                    p.child(field),
                    v,
                    format!("must not be blank; leave it out to keep the tool's {field}"),
                )),
                _ => {}
            }
        }
        let new = o.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(name);
        if let Some(other) = exposed.insert(new, name) {
            f.error(FieldError::invalid(
                p.child("name"),
                new,
                format!("two tools would be served as {new:?} (also {other:?})"),
            ));
        }
    }
}

/// An allow-list matches the names clients see, after overrides: an entry naming a renamed tool
/// by its name on the server hides that tool (the shipped example once did). `renamed_by` says
/// where the overrides stand, e.g. `spec.toolsOverride` or `MCPToolConfig x's spec.toolsOverride`.
pub fn warn_pre_override_names(
    f: &mut Findings,
    path: &Path,
    allow: &[String],
    overrides: &std::collections::BTreeMap<String, crate::api::v1beta1::ToolOverride>,
    renamed_by: &str,
) {
    let new_name = |backend: &str| {
        overrides
            .get(backend)
            .and_then(|o| o.name.as_deref())
            .filter(|n| !n.trim().is_empty() && *n != backend)
    };
    // A name some tool is renamed to is a name clients see, whatever it was on the server.
    let is_someones_new_name = |t: &str| overrides.iter().any(|(b, _)| new_name(b) == Some(t));
    for (i, t) in allow.iter().enumerate() {
        let Some(new) = new_name(t) else { continue };
        if is_someones_new_name(t) {
            continue;
        }
        let what = if allow.iter().any(|a| a == new) {
            "this entry has no effect".to_string()
        } else {
            format!("the tool is hidden; list {new:?} instead")
        };
        f.warn(
            &path.index(i),
            format!("{t:?} is renamed to {new:?} by {renamed_by}[{t}], and the allow-list matches the names clients see: {what}"),
        );
    }
}
