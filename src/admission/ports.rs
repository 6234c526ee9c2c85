//! `port` (deprecated) and `proxyPort` on a v1alpha1 MCPServer or MCPRemoteProxy.
//!
//! Conversion to v1beta1 keeps upstream's precedence: `proxyPort` wins unless it is unset or its
//! default 8080, then `port` does. On its own that silently ignores an edit of `port` on an object
//! whose `proxyPort` was set (at v1beta1, or before): the generation does not even change. So on
//! UPDATE the field the user changed wins: a change of `port` alone carries `proxyPort` along.
//! A create (or an update changing both) whose two fields disagree keeps the precedence, with a
//! warning that says which one is ignored.

use super::common::Findings;
use super::field::Path;
use serde_json::Value;

/// The schema default of `proxyPort`.
const DEFAULT_PROXY_PORT: i64 = 8080;

fn port_of(obj: &Value, field: &str) -> Option<i64> {
    obj.get("spec")?.get(field)?.as_i64()
}

/// Whether conversion would ignore `port` in favour of `proxyPort`.
fn port_ignored(port: Option<i64>, proxy_port: Option<i64>) -> bool {
    match (port, proxy_port) {
        (Some(p), Some(pp)) => pp != DEFAULT_PROXY_PORT && pp != p,
        _ => false,
    }
}

/// On UPDATE: when `port` changed and `proxyPort` did not, and the precedence would ignore the
/// new `port`, `proxyPort` follows it (what the mutating webhook writes).
pub fn follow_port_edit(new: &mut Value, old: &Value) {
    let port = port_of(new, "port");
    let proxy_port = port_of(new, "proxyPort");
    let port_changed = port.is_some() && port != port_of(old, "port");
    let proxy_port_kept = proxy_port == port_of(old, "proxyPort");
    if !(port_changed && proxy_port_kept && port_ignored(port, proxy_port)) {
        return;
    }
    if let (Some(p), Some(spec)) = (port, new.get_mut("spec").and_then(Value::as_object_mut)) {
        spec.insert("proxyPort".into(), Value::from(p));
    }
}

/// A `port` the precedence ignores is said, never silent.
pub fn warn_ignored_port(defaulted: &Value, f: &mut Findings) {
    let port = port_of(defaulted, "port");
    let proxy_port = port_of(defaulted, "proxyPort");
    if let (true, Some(pp)) = (port_ignored(port, proxy_port), proxy_port) {
        f.warn(
            &Path::root("spec.port"),
            format!("ignored: spec.proxyPort ({pp}) is set and takes precedence (port counts only while proxyPort is unset or 8080); remove port or set proxyPort instead"),
        );
    }
}
