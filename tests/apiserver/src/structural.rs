//! The checks kube-apiserver makes on a CRD's `openAPIV3Schema` before accepting it: a structural
//! schema (every node typed, arrays with items, no forbidden keywords, `metadata` restricted to
//! name/generateName, object at the root), defaults that validate, CEL rules that compile.

use crate::error::FieldCause;
use serde_json::Value;

const FORBIDDEN: &[&str] = &[
    "$ref",
    "$schema",
    "id",
    "definitions",
    "dependencies",
    "patternProperties",
    "additionalItems",
];

/// Every violation in the schema of `spec.versions[i]`.
pub fn check(schema: &Value, base: &str) -> Vec<FieldCause> {
    let mut out = vec![];
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        let t = schema
            .get("type")
            .cloned()
            .unwrap_or(Value::String(String::new()));
        out.push(FieldCause::invalid(
            &format!("{base}.type"),
            &t,
            "must be object at the root",
        ));
    }
    if let Some(md) = schema.pointer("/properties/metadata") {
        let allowed = |k: &str| matches!(k, "type" | "properties");
        let extra = md
            .as_object()
            .is_some_and(|m| m.keys().any(|k| !allowed(k)));
        let props_ok = md
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|p| p.keys().all(|k| k == "name" || k == "generateName"));
        if extra || !props_ok || md.get("type").and_then(Value::as_str) != Some("object") {
            out.push(FieldCause::forbidden(
                &format!("{base}.properties[metadata]"),
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            ));
        }
    }
    node(schema, base, &mut out, true);
    out
}

fn node(s: &Value, path: &str, out: &mut Vec<FieldCause>, root: bool) {
    let Some(m) = s.as_object() else {
        out.push(FieldCause::invalid(path, s, "must be a schema object"));
        return;
    };
    for k in FORBIDDEN {
        if m.contains_key(*k) {
            out.push(FieldCause::forbidden(
                &format!("{path}.{k}"),
                format!("{k} is not supported"),
            ));
        }
    }
    if m.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        out.push(FieldCause::forbidden(
            &format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let int_or_string = m.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    let preserve = m
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    if int_or_string && !ty.is_empty() {
        out.push(FieldCause::invalid(
            &format!("{path}.type"),
            &Value::String(ty.into()),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    if ty.is_empty() && !int_or_string && !preserve {
        out.push(
            FieldCause::required(&format!("{path}.type"))
                .with_detail("must not be empty for specified object fields"),
        );
    }
    if !ty.is_empty()
        && !matches!(
            ty,
            "object" | "array" | "string" | "integer" | "number" | "boolean"
        )
    {
        out.push(FieldCause::not_supported(
            &format!("{path}.type"),
            &Value::String(ty.into()),
            &["array", "boolean", "integer", "number", "object", "string"]
                .map(|t| Value::String(t.into())),
        ));
    }
    if ty == "array" && !m.contains_key("items") {
        out.push(FieldCause::required(&format!("{path}.items")).with_detail("must be specified"));
    }
    if m.contains_key("properties") && m.get("additionalProperties").is_some_and(|a| a.is_object())
    {
        out.push(FieldCause::forbidden(
            &format!("{path}.additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            if root && k == "metadata" {
                continue;
            }
            node(child, &format!("{path}.properties[{k}]"), out, false);
        }
    }
    if let Some(items) = m.get("items") {
        node(items, &format!("{path}.items"), out, false);
    }
    if let Some(ap) = m.get("additionalProperties").filter(|a| a.is_object()) {
        node(ap, &format!("{path}.additionalProperties"), out, false);
    }
    if let Some(d) = m.get("default") {
        let mut pruned = d.clone();
        crate::schema::prune_value(s, &mut pruned);
        if &pruned != d {
            out.push(FieldCause::invalid(
                &format!("{path}.default"),
                d,
                "must not have unknown fields",
            ));
        }
        for c in crate::schema::validate_value(s, d) {
            out.push(FieldCause::invalid(
                &format!("{path}.default"),
                d,
                c.message_with_value(),
            ));
        }
    }
    if m.get("x-kubernetes-validations").is_some() {
        let compiled = kube::core::cel::compile_schema(s);
        for (i, e) in compiled.compilation_errors().into_iter().enumerate() {
            out.push(FieldCause::invalid(
                &format!("{path}.x-kubernetes-validations[{i}].rule"),
                &Value::String(String::new()),
                format!("compilation failed: {e}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_non_structural_schemas() {
        let good = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "n": {"type": "integer", "default": 3}, "list": {"type": "array", "items": {"type": "string"}},
            "any": {"x-kubernetes-int-or-string": true}, "free": {"x-kubernetes-preserve-unknown-fields": true}}}}});
        assert!(check(&good, "s").is_empty(), "{:?}", check(&good, "s"));
        let bad = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "spec": {"properties": {"l": {"type": "array"}, "u": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                                    "d": {"type": "integer", "default": "x"},
                                    "c": {"type": "object", "x-kubernetes-validations": [{"rule": "self.(("}]}}}}});
        let msgs: Vec<String> = check(&bad, "s").iter().map(FieldCause::text).collect();
        let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
        assert!(has("s.properties[spec].type: Required value: must not be empty for specified object fields"), "{msgs:?}");
        assert!(
            has("s.properties[spec].properties[l].items: Required value"),
            "{msgs:?}"
        );
        assert!(has("uniqueItems cannot be set to true"), "{msgs:?}");
        assert!(has("s.properties[metadata]: Forbidden"), "{msgs:?}");
        assert!(has("s.properties[spec].properties[d].default"), "{msgs:?}");
        assert!(has("x-kubernetes-validations[0].rule"), "{msgs:?}");
    }
}
