//! What the apiserver does with a custom resource's body against its version's
//! `openAPIV3Schema`: drop nulls of non-nullable fields, prune unknown fields, apply defaults,
//! then validate types/required/enum/bounds/patterns and `x-kubernetes-validations` (CEL).

use crate::error::FieldCause;
use serde_json::{Map, Value};

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Prune fields the schema does not know (recursively), keeping the object envelope. Returns the
/// paths of the unknown fields that were dropped (`spec.junk`), for `fieldValidation`.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut dropped = vec![];
    prune_node(schema, obj, true, "", &mut dropped);
    dropped
}

fn prune_node(schema: &Value, v: &mut Value, root: bool, path: &str, dropped: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = root
                || schema
                    .get("x-kubernetes-embedded-resource")
                    .and_then(Value::as_bool)
                    == Some(true);
            let keep_unknown = preserves(schema)
                || schema.get("additionalProperties").and_then(Value::as_bool) == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(cs) => {
                        let nullable = cs.get("nullable").and_then(Value::as_bool) == Some(true);
                        if m.get(&k).is_some_and(Value::is_null) && !nullable {
                            m.remove(&k);
                        } else if let Some(child) = m.get_mut(&k) {
                            prune_node(cs, child, false, &join(path, &k), dropped);
                        }
                    }
                    None if keep_unknown => {}
                    None => {
                        m.remove(&k);
                        dropped.push(join(path, &k));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (n, i) in items.iter_mut().enumerate() {
                    prune_node(is, i, false, &format!("{path}[{n}]"), dropped);
                }
            }
        }
        _ => {}
    }
}

/// Prune a value against a (non-root) schema node: what the apiserver does to a `default`.
pub fn prune_value(schema: &Value, v: &mut Value) {
    prune_node(schema, v, false, "", &mut vec![]);
}

/// Validate a value against a schema node, with paths relative to it.
pub fn validate_value(schema: &Value, v: &Value) -> Vec<FieldCause> {
    let mut errs = vec![];
    validate_node(schema, v, "<value>", &mut errs);
    errs
}

/// Apply `default`s from the schema (the same walk kube-cel uses before CEL).
pub fn default(schema: &Value, obj: &Value) -> Value {
    kube::core::cel::apply_defaults(schema, obj)
}

/// Structural validation; returns every field error.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldCause> {
    let mut errs = vec![];
    if let Value::Object(m) = obj {
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(s) = props.and_then(|p| p.get(k)) {
                validate_node(s, v, k, &mut errs);
            }
        }
        required(schema, m, "", &mut errs);
    }
    errs
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

fn required(schema: &Value, m: &Map<String, Value>, path: &str, errs: &mut Vec<FieldCause>) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !m.contains_key(r) {
            errs.push(FieldCause::required(&join(path, r)));
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate_node(schema: &Value, v: &Value, path: &str, errs: &mut Vec<FieldCause>) {
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            errs.push(FieldCause::invalid(
                path,
                &Value::String("null".into()),
                format!(
                    "{path} in body must be of type {}: \"null\"",
                    schema
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let actual = type_name(v);
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !matches!(actual, "integer" | "string") {
            errs.push(FieldCause::invalid(
                path,
                &Value::String(actual.into()),
                format!("{path} in body must be of type integer,string: \"{actual}\""),
            ));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = t == actual
            || (t == "number" && actual == "integer")
            || (t == "integer" && v.as_f64().is_some_and(|f| f.fract() == 0.0));
        if !ok {
            errs.push(FieldCause::invalid(
                path,
                &Value::String(actual.into()),
                format!("{path} in body must be of type {t}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errs.push(FieldCause::not_supported(path, v, allowed));
        }
    }
    if let Some(n) = v.as_f64() {
        let num = |k: &str| schema.get(k).and_then(Value::as_f64);
        let excl = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
        let show = |f: f64| {
            if f.fract() == 0.0 {
                format!("{}", f as i64)
            } else {
                f.to_string()
            }
        };
        if let Some(max) = num("maximum") {
            if n > max || (excl("exclusiveMaximum") && n >= max) {
                let rel = if excl("exclusiveMaximum") {
                    "less than"
                } else {
                    "less than or equal to"
                };
                errs.push(FieldCause::invalid(
                    path,
                    v,
                    format!("{path} in body should be {rel} {}", show(max)),
                ));
            }
        }
        if let Some(min) = num("minimum") {
            if n < min || (excl("exclusiveMinimum") && n <= min) {
                let rel = if excl("exclusiveMinimum") {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                errs.push(FieldCause::invalid(
                    path,
                    v,
                    format!("{path} in body should be {rel} {}", show(min)),
                ));
            }
        }
        if let Some(mul) = num("multipleOf") {
            if mul != 0.0 && (n / mul).fract() != 0.0 {
                errs.push(FieldCause::invalid(
                    path,
                    v,
                    format!("{path} in body should be a multiple of {}", show(mul)),
                ));
            }
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                errs.push(FieldCause {
                    reason: "FieldValueTooLong".into(),
                    field: path.into(),
                    value: None,
                    detail: format!("may not be more than {max} bytes"),
                });
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                errs.push(FieldCause::invalid(
                    path,
                    v,
                    format!("{path} in body should be at least {min} chars long"),
                ));
            }
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
            match regex::Regex::new(p) {
                Ok(re) if !re.is_match(s) => errs.push(FieldCause::invalid(
                    path,
                    v,
                    format!("{path} in body should match '{p}'"),
                )),
                _ => {}
            }
        }
    }
    match v {
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if n > max {
                    errs.push(FieldCause {
                        reason: "FieldValueTooMany".into(),
                        field: path.into(),
                        value: None,
                        detail: format!("must have at most {max} items"),
                    });
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if n < min {
                    errs.push(FieldCause::invalid(
                        path,
                        v,
                        format!("{path} in body should have at least {min} items"),
                    ));
                }
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_node(is, item, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    validate_node(cs, child, &join(path, k), errs);
                }
            }
            required(schema, m, path, errs);
            let n = m.len() as u64;
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
                if n > max {
                    errs.push(FieldCause {
                        reason: "FieldValueTooMany".into(),
                        field: path.into(),
                        value: None,
                        detail: format!("must have at most {max} items"),
                    });
                }
            }
        }
        _ => {}
    }
}

/// `x-kubernetes-validations` rules, evaluated with kube's CEL support (transition rules get
/// `oldSelf` on updates).
pub fn validate_cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    if !schema.to_string().contains("x-kubernetes-validations") {
        return vec![];
    }
    let validator = kube::core::cel::Validator::new();
    match validator.validate(schema, obj, old) {
        Ok(()) => vec![],
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| {
                let field = e.field_path.trim_start_matches('.').to_string();
                let value = if field.is_empty() {
                    obj.clone()
                } else {
                    lookup(obj, &field).cloned().unwrap_or(Value::Null)
                };
                let mut c = FieldCause::invalid(
                    if field.is_empty() { "<nil>" } else { &field },
                    &value,
                    e.message.clone(),
                );
                if let Some(r) = e.reason {
                    c.reason = r;
                }
                c
            })
            .collect(),
    }
}

fn lookup<'a>(obj: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in dotted.split('.') {
        let (name, idx) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["port"],
        "x-kubernetes-validations": [{"rule": "self.port != 22", "message": "port 22 is reserved"}],
        "properties": {
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}})
    }

    #[test]
    fn prune_default_validate() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"port": 70000, "junk": 1, "name": "A", "free": {"any": 1}}, "extra": true});
        prune(&schema(), &mut o);
        assert!(o.get("extra").is_none() && o["spec"].get("junk").is_none());
        assert_eq!(o["spec"]["free"]["any"], 1);
        let o = default(&schema(), &o);
        assert_eq!(o["spec"]["mode"], "a");
        let errs: Vec<String> = validate(&schema(), &o)
            .iter()
            .map(FieldCause::text)
            .collect();
        assert!(errs.iter().any(|e| e == "spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535"), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.name: Invalid value: \"A\"")),
            "{errs:?}"
        );
        let cel = validate_cel(&schema(), &json!({"spec": {"port": 22}}), None);
        assert_eq!(cel.len(), 1);
        assert!(
            cel[0].text().contains("port 22 is reserved"),
            "{}",
            cel[0].text()
        );
    }
}
