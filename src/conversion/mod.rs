//! Pure conversions between `v1alpha1` (upstream's older shape) and `v1beta1` (storage).
//!
//! Conversion is total and lossless: what one version cannot express is kept in annotations on
//! the other side (`toolhive.stacklok.dev/v1alpha1-<field>` on a v1beta1 object,
//! `toolhive.stacklok.dev/v1beta1-<field>` on a v1alpha1 one) and taken back on the way home.
//! A kept value that no longer agrees with the object (it was edited at the other version) is
//! dropped rather than resurrected. Objects are handled as JSON, so nothing we do not model is
//! lost either.

mod mcpregistry;
mod ports;
pub mod registry_list;
pub mod registry_views;
pub mod review;
mod stash;
mod vmcp;

use crate::api::GROUP;
use serde_json::{Map, Value};

pub use stash::{check_kept_value, ABSENT, ALPHA_STASH_PREFIX, BETA_STASH_PREFIX};

/// Why an object could not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversionError {
    #[error("object has no apiVersion or kind")]
    NoTypeMeta,
    #[error("{0:?} is not a version of {GROUP} this operator serves")]
    UnknownVersion(String),
    #[error("kind {0:?} is not served by this operator")]
    UnknownKind(String),
    #[error("{0}")]
    Invalid(String),
}

/// The two versions, in the order conversions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1alpha1,
    V1beta1,
}

impl Version {
    /// Accepts `v1beta1` or `toolhive.stacklok.dev/v1beta1`.
    pub fn parse(s: &str) -> Result<Self, ConversionError> {
        let v = match s.split_once('/') {
            Some((group, v)) if group == GROUP => v,
            Some(_) => return Err(ConversionError::UnknownVersion(s.to_string())),
            None => s,
        };
        match v {
            "v1alpha1" => Ok(Version::V1alpha1),
            "v1beta1" => Ok(Version::V1beta1),
            _ => Err(ConversionError::UnknownVersion(s.to_string())),
        }
    }

    pub fn api_version(self) -> String {
        format!("{GROUP}/{}", self.name())
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::V1alpha1 => "v1alpha1",
            Version::V1beta1 => "v1beta1",
        }
    }
}

/// Converts one object of our group to `to` (`v1beta1`, `toolhive.stacklok.dev/v1alpha1`, ...).
pub fn convert(obj: &Value, to: &str) -> Result<Value, ConversionError> {
    let to = Version::parse(to)?;
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ConversionError::NoTypeMeta)
        .and_then(Version::parse)?;
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ConversionError::NoTypeMeta)?;
    let Value::Object(map) = obj else {
        return Err(ConversionError::NoTypeMeta);
    };
    let mut out = map.clone();
    out.insert("apiVersion".into(), Value::String(to.api_version()));
    if from == to {
        return Ok(Value::Object(out));
    }
    stash::check_json(&out, stash::kept_prefix(from)).map_err(ConversionError::Invalid)?;
    // A stash of the object's own version was not written by us (we only ever keep the other
    // version's fields): it is never taken for a field.
    stash::take_all(&mut out, stash::own_prefix(from));
    match (kind, to) {
        ("MCPServer", Version::V1beta1) => mcpserver_up(&mut out),
        ("MCPServer", Version::V1alpha1) => mcpserver_down(&mut out),
        ("MCPRemoteProxy", Version::V1beta1) => remote_proxy_up(&mut out),
        ("MCPRemoteProxy", Version::V1alpha1) => remote_proxy_down(&mut out),
        ("MCPRegistry", Version::V1beta1) => mcpregistry::up(&mut out)?,
        ("MCPRegistry", Version::V1alpha1) => mcpregistry::down(&mut out),
        ("MCPToolConfig", Version::V1beta1) => {
            stash::move_status_out(&mut out, ALPHA_STASH_PREFIX, "referencingServers")
        }
        ("MCPToolConfig", Version::V1alpha1) => {
            stash::move_status_in(&mut out, ALPHA_STASH_PREFIX, "referencingServers")
        }
        ("MCPOIDCConfig" | "MCPExternalAuthConfig" | "MCPTelemetryConfig", Version::V1beta1) => {
            for field in users_fields(kind) {
                stash::move_status_out(&mut out, ALPHA_STASH_PREFIX, field);
            }
        }
        ("MCPOIDCConfig" | "MCPExternalAuthConfig" | "MCPTelemetryConfig", Version::V1alpha1) => {
            stash::move_statuses_in(&mut out, ALPHA_STASH_PREFIX, users_fields(kind))
        }
        ("VirtualMCPServer", Version::V1beta1) => vmcp::vmcp_up(&mut out),
        ("VirtualMCPServer", Version::V1alpha1) => vmcp::vmcp_down(&mut out),
        ("MCPServerEntry", Version::V1beta1) => vmcp::entry_up(&mut out),
        ("MCPServerEntry", Version::V1alpha1) => vmcp::entry_down(&mut out),
        ("MCPGroup" | "MCPAuthzConfig", _) => {}
        (other, _) => return Err(ConversionError::UnknownKind(other.to_string())),
    }
    stash::drop_empty_annotations(&mut out);
    Ok(Value::Object(out))
}

/// The v1alpha1 status fields listing a config's users, which v1beta1 dropped.
fn users_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "MCPExternalAuthConfig" => &["referencingWorkloads", "referencingServers"],
        _ => &["referencingWorkloads"],
    }
}

/// The stash of a v1beta1 object made to follow edits made at v1beta1: a kept value that no
/// longer explains its field (say `port` after `proxyPort` was patched) is dropped, so it cannot
/// come back to life later. The stash becomes what a round trip through v1alpha1 keeps; nothing
/// but those annotations changes. `None` when there is nothing to change.
pub fn refresh_stash(obj: &Value) -> Option<Value> {
    if obj.get("apiVersion")?.as_str()? != Version::V1beta1.api_version() {
        return None;
    }
    let kept = |o: &Value| -> Map<String, Value> {
        o.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| k.starts_with(ALPHA_STASH_PREFIX) && stash::is_stash_key(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let now = kept(obj);
    if now.is_empty() {
        return None;
    }
    let alpha = convert(obj, Version::V1alpha1.name()).ok()?;
    let then = kept(&convert(&alpha, Version::V1beta1.name()).ok()?);
    if now == then {
        return None;
    }
    let mut out = obj.clone();
    let Value::Object(map) = &mut out else {
        return None;
    };
    stash::take_all(map, ALPHA_STASH_PREFIX);
    stash::merge_annotations(map, then);
    stash::drop_empty_annotations(map);
    Some(out)
}

/// Fields only the old shape has, kept verbatim while the object lives at v1beta1.
const SERVER_ALPHA_ONLY: &[&str] = &["oidcConfig", "telemetry"];
/// Fields only v1beta1 has on MCPRemoteProxy.
const PROXY_BETA_ONLY: &[&str] = &["podTemplateSpec", "replicas"];
/// What older releases of ours kept in the stash on the way down, still taken back on the way
/// up (`allowPrivateEndpoint` is a v1alpha1 field now).
const PROXY_BETA_KEPT: &[&str] = &["allowPrivateEndpoint", "podTemplateSpec", "replicas"];

fn spec_mut(obj: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    obj.get_mut("spec").and_then(Value::as_object_mut)
}

fn mcpserver_up(obj: &mut Map<String, Value>) {
    let mut annotations = Map::new();
    if let Some(spec) = spec_mut(obj) {
        group_ref_up(spec, &mut annotations);
        ports::proxy_port_up(spec, &mut annotations);
        ports::mcp_port_up(spec, &mut annotations);
        stash::move_fields(
            spec,
            &mut annotations,
            ALPHA_STASH_PREFIX,
            SERVER_ALPHA_ONLY,
        );
    }
    stash::merge_annotations(obj, annotations);
    rename_phase(obj, "Running", "Ready");
}

fn mcpserver_down(obj: &mut Map<String, Value>) {
    let mut kept = stash::take_all(obj, ALPHA_STASH_PREFIX);
    if let Some(spec) = spec_mut(obj) {
        group_ref_down(spec, &mut kept);
        ports::proxy_port_down(spec, &mut kept);
        ports::mcp_port_down(spec, &mut kept);
        stash::restore_fields(spec, &mut kept, SERVER_ALPHA_ONLY);
    }
    rename_phase(obj, "Ready", "Running");
}

fn remote_proxy_up(obj: &mut Map<String, Value>) {
    let mut annotations = Map::new();
    let mut kept = stash::take_all(obj, BETA_STASH_PREFIX);
    if let Some(spec) = spec_mut(obj) {
        remote_url_up(spec, &mut annotations);
        group_ref_up(spec, &mut annotations);
        ports::proxy_port_up(spec, &mut annotations);
        stash::move_fields(
            spec,
            &mut annotations,
            ALPHA_STASH_PREFIX,
            SERVER_ALPHA_ONLY,
        );
        stash::restore_fields(spec, &mut kept, PROXY_BETA_KEPT);
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        rename(status, "externalURL", "externalUrl");
    }
    stash::merge_annotations(obj, annotations);
}

fn remote_proxy_down(obj: &mut Map<String, Value>) {
    let mut annotations = Map::new();
    let mut kept = stash::take_all(obj, ALPHA_STASH_PREFIX);
    if let Some(spec) = spec_mut(obj) {
        remote_url_down(spec, &mut kept);
        group_ref_down(spec, &mut kept);
        ports::proxy_port_down(spec, &mut kept);
        stash::restore_fields(spec, &mut kept, SERVER_ALPHA_ONLY);
        stash::move_fields(spec, &mut annotations, BETA_STASH_PREFIX, PROXY_BETA_ONLY);
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        rename(status, "externalUrl", "externalURL");
    }
    stash::merge_annotations(obj, annotations);
}

/// `remoteURL` (≤ v0.14) and `remoteUrl` (later v1alpha1 releases) are both v1alpha1; the
/// stash remembers the newer spelling so the way down gives back what was written.
fn remote_url_up(spec: &mut Map<String, Value>, annotations: &mut stash::Annotations) {
    if let Some(url) = spec.get("remoteUrl").cloned() {
        stash::keep(annotations, ALPHA_STASH_PREFIX, "remoteUrl", Some(&url));
    } else {
        rename(spec, "remoteURL", "remoteUrl");
    }
}

fn remote_url_down(spec: &mut Map<String, Value>, kept: &mut Map<String, Value>) {
    if kept.remove("remoteUrl").is_none() {
        rename(spec, "remoteUrl", "remoteURL");
    }
}

fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = map.remove(from) {
        map.insert(to.to_string(), v);
    }
}

/// `groupRef: team` (v1alpha1) ⇄ `groupRef: {name: team}` (v1beta1).
/// Both shapes are v1alpha1 (the object one from later releases): an object is kept as it is,
/// and the stash remembers that shape so the way down gives it back.
fn group_ref_up(spec: &mut Map<String, Value>, annotations: &mut stash::Annotations) {
    match spec.get("groupRef").cloned() {
        Some(Value::String(name)) => {
            spec.insert("groupRef".into(), serde_json::json!({ "name": name }));
        }
        Some(object @ Value::Object(_)) => {
            stash::keep(annotations, ALPHA_STASH_PREFIX, "groupRef", Some(&object));
        }
        _ => {}
    }
}

/// The bare name, unless the object was written at v1alpha1 in the object shape.
fn group_ref_down(spec: &mut Map<String, Value>, kept: &mut Map<String, Value>) {
    let object_shape = kept
        .remove("groupRef")
        .as_ref()
        .and_then(stash::decode)
        .is_some_and(|v| v.is_object());
    let name = spec.get("groupRef").and_then(|g| g.get("name")).cloned();
    if let (Some(name), false) = (name, object_shape) {
        spec.insert("groupRef".into(), name);
    }
}

fn rename_phase(obj: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(phase) = obj.get_mut("status").and_then(|s| s.get_mut("phase")) {
        if phase == from {
            *phase = Value::String(to.to_string());
        }
    }
}
