//! Keeping what a version cannot express in annotations, and taking it back.

use serde_json::{Map, Value};

pub use crate::api::{is_stash_key, ABSENT, ALPHA_STASH_PREFIX, BETA_STASH_PREFIX};
/// Status fields are kept under `<prefix>status.<field>`.
const STATUS: &str = "status.";

/// The prefix of the stash an object at `version` legitimately carries: the other version's
/// fields, which converting it takes back.
pub fn kept_prefix(version: super::Version) -> &'static str {
    match version {
        super::Version::V1alpha1 => BETA_STASH_PREFIX,
        super::Version::V1beta1 => ALPHA_STASH_PREFIX,
    }
}

/// The prefix of its own version's fields, which an object never carries legitimately.
pub fn own_prefix(version: super::Version) -> &'static str {
    match version {
        super::Version::V1alpha1 => ALPHA_STASH_PREFIX,
        super::Version::V1beta1 => BETA_STASH_PREFIX,
    }
}

/// Every kept value under `prefix` must be JSON (or the absent marker): one that is not was
/// written by hand, and taking it back would hand out an object no schema allows.
pub fn check_json(obj: &Map<String, Value>, prefix: &str) -> Result<(), String> {
    let annotations = obj
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    for (k, v) in annotations.into_iter().flatten() {
        if !k.starts_with(prefix) || !is_stash_key(k) {
            continue;
        }
        if let Err(why) = check_kept_value(v) {
            return Err(format!("metadata.annotations[{k}]: {why}"));
        }
    }
    Ok(())
}

/// Why a kept annotation value cannot be taken back, if it cannot.
pub fn check_kept_value(v: &Value) -> Result<(), String> {
    let Some(text) = v.as_str() else {
        return Err("an annotation value must be a string".into());
    };
    if text == ABSENT {
        return Ok(());
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| {
            format!("not valid JSON ({e}); the conversion stash holds JSON the operator wrote")
        })
}

/// Annotations to add, keyed by full annotation name, values JSON text.
pub type Annotations = Map<String, Value>;

pub fn key(prefix: &str, field: &str) -> String {
    format!("{prefix}{field}")
}

/// Keeps `value` (or "absent" for `None`) under `prefix + field`.
pub fn keep(annotations: &mut Annotations, prefix: &str, field: &str, value: Option<&Value>) {
    debug_assert!(
        is_stash_key(&key(prefix, field)),
        "{field} is not in api::STASH_FIELDS"
    );
    let text = value.map_or_else(|| ABSENT.to_string(), crate::canonical::to_string);
    annotations.insert(key(prefix, field), Value::String(text));
}

/// Moves `fields` out of `spec` into annotations.
pub fn move_fields(
    spec: &mut Map<String, Value>,
    annotations: &mut Annotations,
    prefix: &str,
    fields: &[&str],
) {
    for f in fields {
        if let Some(v) = spec.remove(*f) {
            keep(annotations, prefix, f, Some(&v));
        }
    }
}

/// Puts kept `fields` back into `spec` (`kept` maps field → value, `None` = was absent).
pub fn restore_fields(
    spec: &mut Map<String, Value>,
    kept: &mut Map<String, Value>,
    fields: &[&str],
) {
    for f in fields {
        if let Some(v) = kept.remove(*f) {
            if let Some(v) = decode(&v) {
                spec.insert(f.to_string(), v);
            }
        }
    }
}

/// Decodes a kept value: `None` means "was absent".
pub fn decode(text: &Value) -> Option<Value> {
    let s = text.as_str()?;
    if s == ABSENT {
        return None;
    }
    // `convert` refuses a stash that does not parse before taking anything back.
    serde_json::from_str(s).ok()
}

/// Removes and returns every annotation with `prefix` (field → raw annotation text).
pub fn take_all(obj: &mut Map<String, Value>, prefix: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(annotations) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    else {
        return out;
    };
    let keys: Vec<String> = annotations
        .keys()
        .filter(|k| k.starts_with(prefix) && is_stash_key(k))
        .cloned()
        .collect();
    for k in keys {
        if let Some(v) = annotations.remove(&k) {
            out.insert(k[prefix.len()..].to_string(), v);
        }
    }
    out
}

/// Adds annotations to the object's metadata, creating the map when needed.
pub fn merge_annotations(obj: &mut Map<String, Value>, annotations: Annotations) {
    if annotations.is_empty() {
        return;
    }
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let target = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(target) = target.as_object_mut() {
        target.extend(annotations);
    }
}

/// An annotations map emptied by taking our keys out is removed, as if never there.
pub fn drop_empty_annotations(obj: &mut Map<String, Value>) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            meta.remove("annotations");
        }
    }
}

/// A status field only the old shape has, moved into an annotation.
pub fn move_status_out(obj: &mut Map<String, Value>, prefix: &str, field: &str) {
    let v = obj
        .get_mut("status")
        .and_then(Value::as_object_mut)
        .and_then(|s| s.remove(field));
    if let Some(v) = v {
        let mut a = Annotations::new();
        keep(&mut a, prefix, &format!("{STATUS}{field}"), Some(&v));
        merge_annotations(obj, a);
    }
}

/// The reverse of [`move_status_out`].
pub fn move_status_in(obj: &mut Map<String, Value>, prefix: &str, field: &str) {
    move_statuses_in(obj, prefix, &[field]);
}

/// [`move_status_in`] for several status fields kept by one object.
pub fn move_statuses_in(obj: &mut Map<String, Value>, prefix: &str, fields: &[&str]) {
    let mut kept = take_all(obj, &format!("{prefix}{STATUS}"));
    for field in fields {
        if let Some(v) = kept.remove(*field).as_ref().and_then(decode) {
            let status = obj
                .entry("status")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(s) = status.as_object_mut() {
                s.insert(field.to_string(), v);
            }
        }
    }
}
