//! `port`/`targetPort` (v1alpha1) and `proxyPort`/`mcpPort` (v1beta1), with upstream's
//! precedence while both existed, and a way back that survives edits at v1beta1.

use super::stash::{self, Annotations, ALPHA_STASH_PREFIX};
use serde_json::{Map, Value};

/// The schema default of `proxyPort`: a `port` next to it means the user set `port`.
const DEFAULT_PROXY_PORT: i64 = 8080;

/// The effective proxy port: `port` wins over an absent or default `proxyPort`.
fn effective_proxy_port(port: Option<i64>, proxy_port: Option<i64>) -> Option<i64> {
    match (port, proxy_port) {
        (Some(p), None) => Some(p),
        (Some(p), Some(DEFAULT_PROXY_PORT)) => Some(p),
        (_, Some(pp)) => Some(pp),
        (None, None) => None,
    }
}

/// `mcpPort` wins; `targetPort` fills in when it is absent.
fn effective_mcp_port(target_port: Option<i64>, mcp_port: Option<i64>) -> Option<i64> {
    mcp_port.or(target_port)
}

pub fn proxy_port_up(spec: &mut Map<String, Value>, annotations: &mut Annotations) {
    fold_up(spec, annotations, "port", "proxyPort", effective_proxy_port);
}

pub fn mcp_port_up(spec: &mut Map<String, Value>, annotations: &mut Annotations) {
    fold_up(
        spec,
        annotations,
        "targetPort",
        "mcpPort",
        effective_mcp_port,
    );
}

pub fn proxy_port_down(spec: &mut Map<String, Value>, kept: &mut Map<String, Value>) {
    unfold_down(spec, kept, "port", "proxyPort", effective_proxy_port);
}

pub fn mcp_port_down(spec: &mut Map<String, Value>, kept: &mut Map<String, Value>) {
    unfold_down(spec, kept, "targetPort", "mcpPort", effective_mcp_port);
}

type Rule = fn(Option<i64>, Option<i64>) -> Option<i64>;

/// Folds the old field into the new one and keeps what is needed to unfold it again.
fn fold_up(
    spec: &mut Map<String, Value>,
    annotations: &mut Annotations,
    old: &str,
    new: &str,
    rule: Rule,
) {
    let Some(old_value) = spec.remove(old) else {
        return;
    };
    let new_before = spec.get(new).cloned();
    let effective = rule(
        old_value.as_i64(),
        new_before.as_ref().and_then(Value::as_i64),
    );
    stash::keep(annotations, ALPHA_STASH_PREFIX, old, Some(&old_value));
    if let Some(e) = effective {
        if new_before.as_ref().and_then(Value::as_i64) != Some(e) {
            stash::keep(annotations, ALPHA_STASH_PREFIX, new, new_before.as_ref());
            spec.insert(new.to_string(), Value::from(e));
        }
    }
}

/// Restores the old field when the kept values still explain the current new one.
fn unfold_down(
    spec: &mut Map<String, Value>,
    kept: &mut Map<String, Value>,
    old: &str,
    new: &str,
    rule: Rule,
) {
    let Some(old_value) = kept.remove(old).as_ref().and_then(stash::decode) else {
        kept.remove(new);
        return;
    };
    let current = spec.get(new).cloned();
    let candidate = match kept.remove(new) {
        Some(text) => stash::decode(&text),
        None => current.clone(),
    };
    let explains = rule(
        old_value.as_i64(),
        candidate.as_ref().and_then(Value::as_i64),
    ) == current.as_ref().and_then(Value::as_i64);
    if !explains {
        return; // edited at v1beta1 since: the new field alone is the truth
    }
    spec.insert(old.to_string(), old_value);
    match candidate {
        Some(c) => spec.insert(new.to_string(), c),
        None => spec.remove(new),
    };
}
