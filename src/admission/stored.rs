//! Judging an object as it will be stored, not only as it was written.
//!
//! A v1alpha1 object is stored at v1beta1: what conversion makes of it — including the fields it
//! takes back from the conversion stash (`toolhive.stacklok.dev/v1beta1-<field>` annotations) —
//! must pass the v1beta1 rules, or hand-written annotations would be a way around admission. A
//! v1beta1 object carrying a stash (`toolhive.stacklok.dev/v1alpha1-<field>`) is handed back at
//! v1alpha1 with those fields: what they become must pass the v1alpha1 rules. Stash content is
//! never trusted more than the field it stands for.

use super::common::Findings;
use super::field::{FieldError, FieldErrors, Path};
use super::{check_cel, check_semantics, check_structure, defaulted, SCHEMAS};
use crate::api::{ALPHA_STASH_PREFIX, BETA_STASH_PREFIX};
use crate::conversion;
use serde_json::Value;

/// The other version an object's stash speaks for, with the prefix of the stash it carries.
fn other_side(version: &str) -> (&'static str, &'static str) {
    if version == "v1alpha1" {
        ("v1beta1", BETA_STASH_PREFIX)
    } else {
        ("v1alpha1", ALPHA_STASH_PREFIX)
    }
}

/// Annotations of either stash prefix, as (key, value).
fn stash_annotations(obj: &Value) -> Vec<(&str, &Value)> {
    let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    annotations
        .iter()
        .filter(|(k, _)| crate::api::is_stash_key(k))
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

/// True when the object needs judging in its other form: always at v1alpha1 (it is stored at
/// v1beta1), at v1beta1 only when it carries a stash. Ordinary v1beta1 objects pay nothing.
pub fn needed(version: &str, obj: &Value) -> bool {
    version == "v1alpha1" || has_stash(obj)
}

/// [`stash_annotations`] without collecting them: the question every review asks.
fn has_stash(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.keys().any(|k| crate::api::is_stash_key(k)))
}

/// Checks the stash annotations and the object's other form; `own_errors_empty` says whether the
/// object passed at its own version (then every problem of the stored form is news).
pub fn check(
    version: &str,
    kind: &str,
    obj: &Value,
    defaulted_obj: &Value,
    old: Option<&Value>,
    own_errors_empty: bool,
    f: &mut Findings,
) {
    let (other, kept_prefix) = other_side(version);
    let mut origins: Vec<(String, &str)> = Vec::new();
    let mut unreadable = false;
    for (key, value) in stash_annotations(obj) {
        let path = Path::root("metadata.annotations").key(key);
        if !key.starts_with(kept_prefix) {
            f.warn(
                &path,
                format!("ignored: an object at {version} keeps fields of its {other} form under {kept_prefix}<field>; this annotation is dropped on conversion"),
            );
            continue;
        }
        if let Err(why) = conversion::check_kept_value(value) {
            f.error(FieldError::invalid(path, value.clone(), why));
            unreadable = true;
            continue;
        }
        let field = &key[kept_prefix.len()..];
        let at = if field.starts_with("status.") {
            field.to_string()
        } else {
            format!("spec.{field}")
        };
        origins.push((at, key));
    }
    if unreadable {
        return; // conversion would refuse the object; the errors above say why
    }
    if version == "v1beta1" && origins.is_empty() {
        return; // nothing of the stash is taken back
    }
    let Some(rules) = SCHEMAS.get(&(other, kind)) else {
        return;
    };
    let converted = match conversion::convert(defaulted_obj, other) {
        Ok(c) => c,
        Err(e) => {
            if own_errors_empty {
                f.error(
                    FieldError::invalid(
                        "<object>",
                        Value::Null,
                        format!("cannot be converted to {other}: {e}"),
                    )
                    .without_value(),
                );
            }
            return;
        }
    };
    if version == "v1alpha1" {
        check_stored_annotation_size(&converted, f);
    }
    let there = defaulted(rules, &converted);
    let old_there = old
        .and_then(|o| conversion::convert(o, other).ok())
        .map(|o| defaulted(rules, &o));
    let mut errors = FieldErrors::default();
    check_structure(&rules.schema, &there, &mut errors);
    check_cel(rules, &there, old_there.as_ref(), &mut errors);
    let mut semantic = Findings::default();
    check_semantics(other, kind, &converted, &there, &mut semantic);
    if !errors.is_empty() {
        semantic.errors.0.retain(|e| {
            !e.field.starts_with("<object>") && !e.detail.starts_with(super::NOT_DECODABLE)
        });
    }
    errors.extend(semantic.errors);
    for mut e in errors.0 {
        let origin = origins.iter().find(|(at, _)| within(&e.field, at));
        match origin {
            Some((_, key)) => {
                e.detail = append(&e.detail, &format!("(from annotation {key})"));
                f.error(e);
            }
            // The v1alpha1 view of a v1beta1 object only matters where the stash feeds it.
            None if version == "v1alpha1" && own_errors_empty => {
                e.detail = append(&e.detail, &format!("(in the object as stored at {other})"));
                f.error(e);
            }
            None => {}
        }
    }
}

/// What Kubernetes allows for all of an object's annotations together (keys and values).
pub const TOTAL_ANNOTATION_LIMIT: usize = 256 * 1024;

/// The fields v1beta1 cannot hold are kept in annotations of the stored object; if they make the
/// annotations larger than Kubernetes allows, every later write of the object would fail, so the
/// object is refused now, naming the fields that take the room.
fn check_stored_annotation_size(stored: &Value, f: &mut Findings) {
    let Some(annotations) = stored
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return;
    };
    let size_of = |(k, v): (&String, &Value)| k.len() + v.as_str().map_or(0, str::len);
    let total: usize = annotations.iter().map(size_of).sum();
    if total <= TOTAL_ANNOTATION_LIMIT {
        return;
    }
    let mut kept: Vec<(usize, &str)> = annotations
        .iter()
        .filter(|(k, _)| k.starts_with(ALPHA_STASH_PREFIX) && crate::api::is_stash_key(k))
        .map(|(k, v)| (size_of((k, v)), &k[ALPHA_STASH_PREFIX.len()..]))
        .collect();
    kept.sort_by(|a, b| b.cmp(a));
    let largest: Vec<String> = kept
        .iter()
        .take(3)
        .map(|(n, field)| format!("spec.{field} ({n} bytes)"))
        .collect();
    f.error(
        FieldError::invalid(
            "metadata.annotations",
            Value::Null,
            format!(
                "stored at v1beta1 this object needs {total} bytes of annotations, more than the {TOTAL_ANNOTATION_LIMIT} Kubernetes allows: \
                 the v1alpha1 fields v1beta1 has no place for are kept there, the largest being {}; make them smaller or move to v1beta1",
                largest.join(", ")
            ),
        )
        .without_value(),
    );
}

/// `spec.replicas` is within `spec.replicas`; so are `spec.volumes[0].name` and `spec.a.b`.
fn within(field: &str, at: &str) -> bool {
    field
        .strip_prefix(at)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

fn append(detail: &str, note: &str) -> String {
    if detail.is_empty() {
        note.to_string()
    } else {
        format!("{detail} {note}")
    }
}

#[cfg(test)]
mod tests {
    use crate::admission::{admit, Operation};
    use serde_json::json;

    /// A v1alpha1 inline block too large to keep in the stored object's annotations is refused
    /// at admission, naming the field; one that fits is accepted.
    #[test]
    fn an_unstashable_v1alpha1_field_is_refused() {
        let with_headers = |bytes: usize| {
            json!({"apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPServer",
                "metadata": {"name": "big", "namespace": "default"},
                "spec": {"image": "docker.io/mcp/fetch", "telemetry": {"openTelemetry": {
                    "enabled": true, "endpoint": "otel:4317", "headers": [format!("k={}", "x".repeat(bytes))]}}}})
        };
        let verdict = admit(&with_headers(300 * 1024), None, Operation::Create).unwrap();
        assert!(!verdict.allowed());
        let text = verdict.errors.to_string();
        assert!(text.contains("metadata.annotations"), "{text}");
        assert!(text.contains("spec.telemetry"), "{text}");
        let verdict = admit(&with_headers(100 * 1024), None, Operation::Create).unwrap();
        assert!(verdict.allowed(), "{}", verdict.errors);
    }
}
