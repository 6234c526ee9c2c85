//! VirtualMCPServer and MCPServerEntry between v1alpha1 and v1beta1.
//!
//! VirtualMCPServer's v1alpha1 is every shape upstream served under that name, and v1beta1 can
//! hold all of it but three things, each kept in the stash while the object lives at v1beta1:
//! - the group named in `config.groupRef` alone (ToolHive ≤ v0.19): it becomes
//!   `groupRef: {name}`, and the stash remembers that it was written in `config`;
//! - the inline `incomingAuth.oidcConfig` (≤ v0.20), which v1beta1 cannot express (it became
//!   an MCPOIDCConfig named by `oidcConfigRef`): kept verbatim;
//! - the backend auth type spelled `external_auth_config_ref` (≤ v0.19): it becomes
//!   `externalAuthConfigRef`, and the stash lists the entries that used the old spelling.
//!
//! The way down gives v0.20's shape (`groupRef: {name}`, `externalAuthConfigRef`) unless the
//! stash says otherwise: that shape is v1alpha1 too, so an object born at v1beta1 reads the same
//! at both versions.

use super::stash::{self, Annotations};
use super::{spec_mut, ALPHA_STASH_PREFIX};
use crate::api::v1alpha1::SNAKE_EXTERNAL_AUTH;
use serde_json::{json, Map, Value};

/// Stash field: the group was named by `config.groupRef` alone (the value is the name).
const CONFIG_GROUP_REF: &str = "config.groupRef";
/// Stash field: the inline OIDC block of the old shape, verbatim.
const INLINE_OIDC: &str = "incomingAuth.oidcConfig";
/// Stash field: the outgoing-auth entries (`default`, `backends/<name>`) whose type was
/// spelled `external_auth_config_ref`.
const SNAKE_TYPES: &str = "outgoingAuth.snakeCaseTypes";
const CAMEL_EXTERNAL_AUTH: &str = "externalAuthConfigRef";

pub fn vmcp_up(obj: &mut Map<String, Value>) {
    let mut annotations = Annotations::new();
    if let Some(spec) = spec_mut(obj) {
        group_up(spec, &mut annotations);
        if let Some(incoming) = spec.get_mut("incomingAuth").and_then(Value::as_object_mut) {
            if let Some(oidc) = incoming.remove("oidcConfig") {
                stash::keep(
                    &mut annotations,
                    ALPHA_STASH_PREFIX,
                    INLINE_OIDC,
                    Some(&oidc),
                );
            }
        }
        let renamed = rename_backend_types(spec, SNAKE_EXTERNAL_AUTH, CAMEL_EXTERNAL_AUTH, None);
        if !renamed.is_empty() {
            let list = Value::from(renamed);
            stash::keep(
                &mut annotations,
                ALPHA_STASH_PREFIX,
                SNAKE_TYPES,
                Some(&list),
            );
        }
    }
    stash::merge_annotations(obj, annotations);
}

pub fn vmcp_down(obj: &mut Map<String, Value>) {
    let mut kept = stash::take_all(obj, ALPHA_STASH_PREFIX);
    if let Some(spec) = spec_mut(obj) {
        group_down(spec, &mut kept);
        if let Some(oidc) = kept.remove(INLINE_OIDC).as_ref().and_then(stash::decode) {
            if let Some(incoming) = spec.get_mut("incomingAuth").and_then(Value::as_object_mut) {
                incoming.insert("oidcConfig".into(), oidc);
            }
        }
        let snake: Vec<String> = kept
            .remove(SNAKE_TYPES)
            .as_ref()
            .and_then(stash::decode)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if !snake.is_empty() {
            rename_backend_types(spec, CAMEL_EXTERNAL_AUTH, SNAKE_EXTERNAL_AUTH, Some(&snake));
        }
    }
}

/// `config.groupRef` alone becomes `groupRef: {name}`; with both set (v0.20) nothing moves,
/// as v1beta1 still has `config.groupRef`.
fn group_up(spec: &mut Map<String, Value>, annotations: &mut Annotations) {
    if spec.contains_key("groupRef") {
        return;
    }
    let config = spec.get_mut("config").and_then(Value::as_object_mut);
    let Some(name) = config.and_then(|c| c.remove("groupRef")) else {
        return;
    };
    stash::keep(
        annotations,
        ALPHA_STASH_PREFIX,
        CONFIG_GROUP_REF,
        Some(&name),
    );
    spec.insert("groupRef".into(), json!({ "name": name }));
}

/// Back into `config.groupRef`, with the group's current name (the kept one may be stale), when
/// the object was written that way.
fn group_down(spec: &mut Map<String, Value>, kept: &mut Map<String, Value>) {
    if kept.remove(CONFIG_GROUP_REF).is_none() {
        return;
    }
    let has_config_group = spec.get("config").and_then(|c| c.get("groupRef")).is_some();
    let name = spec.get("groupRef").and_then(|g| g.get("name")).cloned();
    let (Some(name), false) = (name, has_config_group) else {
        return;
    };
    let config = spec
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(config) = config.as_object_mut() {
        config.insert("groupRef".into(), name);
        spec.remove("groupRef");
    }
}

/// Renames the backend auth type `from` to `to` in `outgoingAuth.default` and every
/// `outgoingAuth.backends` entry (only the entries listed in `only`, when given); returns the
/// entries renamed.
fn rename_backend_types(
    spec: &mut Map<String, Value>,
    from: &str,
    to: &str,
    only: Option<&[String]>,
) -> Vec<String> {
    let mut renamed = Vec::new();
    let Some(outgoing) = spec.get_mut("outgoingAuth").and_then(Value::as_object_mut) else {
        return renamed;
    };
    let mut rename = |entry: &str, auth: &mut Value| {
        let listed = only.is_none_or(|l| l.iter().any(|e| e == entry));
        if let Some(t) = auth.get_mut("type").filter(|t| *t == from) {
            if listed {
                *t = Value::String(to.to_string());
                renamed.push(entry.to_string());
            }
        }
    };
    if let Some(default) = outgoing.get_mut("default") {
        rename("default", default);
    }
    if let Some(backends) = outgoing.get_mut("backends").and_then(Value::as_object_mut) {
        for (name, auth) in backends.iter_mut() {
            rename(&format!("backends/{name}"), auth);
        }
    }
    renamed
}

/// MCPServerEntry: the same renames as MCPRemoteProxy's (`remoteURL`, a bare `groupRef`).
pub fn entry_up(obj: &mut Map<String, Value>) {
    let mut annotations = Annotations::new();
    if let Some(spec) = spec_mut(obj) {
        super::remote_url_up(spec, &mut annotations);
        super::group_ref_up(spec, &mut annotations);
    }
    stash::merge_annotations(obj, annotations);
}

pub fn entry_down(obj: &mut Map<String, Value>) {
    let mut kept = stash::take_all(obj, ALPHA_STASH_PREFIX);
    if let Some(spec) = spec_mut(obj) {
        super::remote_url_down(spec, &mut kept);
        super::group_ref_down(spec, &mut kept);
    }
}
