//! What the API server checks from a CRD's structural schema, done offline: types, required
//! fields, enums, bounds, lengths, patterns, list-map keys, unknown fields, and defaults.
//!
//! The schema is generated from our Rust types, so this is the same rulebook the API server
//! applies; running it here lets `check` and the webhook say everything in one answer.

use super::field::{FieldError, FieldErrors, Path};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, RwLock};

/// Checks `value` against `schema`; `path` names `value` in error messages.
pub fn validate(schema: &Value, value: &Value, path: &Path, errs: &mut FieldErrors) {
    validate_at(schema, value, &At::Root(path), errs);
}

/// Where a value stands, kept on the stack while walking and spelled out as a [`Path`] only
/// when an error needs it: errors are rare, and formatting every field's path up front was
/// a string allocation per field of every review.
#[derive(Clone, Copy)]
enum At<'a> {
    Root(&'a Path),
    Child(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
    Key(&'a At<'a>, &'a str),
}

impl At<'_> {
    fn path(&self) -> Path {
        match self {
            At::Root(p) => (*p).clone(),
            At::Child(parent, name) => parent.path().child(name),
            At::Index(parent, i) => parent.path().index(*i),
            At::Key(parent, key) => parent.path().key(key),
        }
    }
}

fn validate_at(schema: &Value, value: &Value, at: &At, errs: &mut FieldErrors) {
    if value.is_null() {
        // Nulls are pruned by the API server before validation (no field is nullable).
        return;
    }
    if !check_type(schema, value, at, errs) {
        return;
    }
    check_enum(schema, value, at, errs);
    match value {
        Value::Object(map) => check_object(schema, map, at, errs),
        Value::Array(items) => check_array(schema, items, at, errs),
        Value::String(s) => check_string(schema, s, at, errs),
        Value::Number(_) => check_number(schema, value, at, errs),
        _ => {}
    }
}

fn schema_type(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

/// Returns false when the type is wrong (nothing below it is worth checking then).
fn check_type(schema: &Value, value: &Value, at: &At, errs: &mut FieldErrors) -> bool {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return value.is_string() || value.is_i64() || value.is_u64();
    }
    let Some(expected) = schema_type(schema) else {
        return true;
    };
    let ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    };
    if !ok {
        errs.push(FieldError::invalid(
            at.path(),
            type_name(value),
            format!("must be of type {expected}"),
        ));
    }
    ok
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_enum(schema: &Value, value: &Value, at: &At, errs: &mut FieldErrors) {
    let Some(Value::Array(allowed)) = schema.get("enum") else {
        return;
    };
    if !allowed.contains(value) {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| a.to_string())
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(at.path(), value.clone(), &names));
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, at: &At, errs: &mut FieldErrors) {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if map.get(name).is_none_or(Value::is_null) {
                errs.push(FieldError::required(at.path().child(name), ""));
            }
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if let Some(child_schema) = props.and_then(|p| p.get(key)) {
            validate_at(child_schema, child, &At::Child(at, key), errs);
        } else if let Some(item_schema) = additional {
            validate_at(item_schema, child, &At::Key(at, key), errs);
        } else if props.is_some() && !preserves_unknown(schema) {
            errs.push(FieldError::forbidden(
                at.path().child(key),
                format!("unknown field {key:?}"),
            ));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], at: &At, errs: &mut FieldErrors) {
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        if items.len() as u64 > max {
            errs.push(FieldError::too_many(at.path(), items.len(), max as usize));
        }
    }
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            errs.push(FieldError::invalid(
                at.path(),
                Value::from(items.len()),
                format!("must have at least {min} items"),
            ));
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_at(item_schema, item, &At::Index(at, i), errs);
        }
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => check_list_map_keys(schema, items, at, errs),
        Some("set") => check_list_set(items, at, errs),
        _ => {}
    }
}

/// A list-map may not hold two items with the same keys (the API server refuses it).
fn check_list_map_keys(schema: &Value, items: &[Value], at: &At, errs: &mut FieldErrors) {
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let key: Vec<Value> = keys
            .iter()
            .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
            .collect();
        if !seen.insert(key.clone()) {
            let shown = if key.len() == 1 {
                key[0].clone()
            } else {
                Value::from(key)
            };
            errs.push(FieldError::duplicate(at.path().index(i), shown));
        }
    }
}

fn check_list_set(items: &[Value], at: &At, errs: &mut FieldErrors) {
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(item.to_string()) {
            errs.push(FieldError::duplicate(at.path().index(i), item.clone()));
        }
    }
}

fn check_string(schema: &Value, s: &str, at: &At, errs: &mut FieldErrors) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            errs.push(FieldError::too_long(at.path(), max as usize));
        }
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
        if len < min {
            errs.push(FieldError::invalid(
                at.path(),
                s,
                format!("should be at least {min} chars long"),
            ));
        }
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        if let Some(re) = compiled(pattern) {
            if !re.is_match(s) {
                errs.push(FieldError::invalid(
                    at.path(),
                    s,
                    format!("should match '{pattern}'"),
                ));
            }
        }
    }
}

fn check_number(schema: &Value, value: &Value, at: &At, errs: &mut FieldErrors) {
    let Some(n) = value.as_f64() else { return };
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    let below = min.is_some_and(|m| n < m);
    let above = max.is_some_and(|m| n > m);
    if !(below || above) {
        return;
    }
    let detail = match (min, max) {
        (Some(lo), Some(hi)) => format!("must be between {lo} and {hi}, inclusive"),
        (Some(lo), None) => format!("must be greater than or equal to {lo}"),
        (None, Some(hi)) => format!("must be less than or equal to {hi}"),
        (None, None) => unreachable!("a bound was crossed"),
    };
    errs.push(FieldError::invalid(at.path(), value.clone(), detail));
}

/// Patterns come only from our own schemas, so the cache stays small and its entries can live
/// for the whole process: a lookup then takes a shared lock and allocates nothing.
fn compiled(pattern: &str) -> Option<&'static Regex> {
    static CACHE: LazyLock<RwLock<HashMap<String, Option<&'static Regex>>>> =
        LazyLock::new(Default::default);
    if let Some(found) = CACHE.read().unwrap_or_else(|e| e.into_inner()).get(pattern) {
        return *found;
    }
    let mut cache = CACHE.write().unwrap_or_else(|e| e.into_inner());
    *cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok().map(|re| &*Box::leak(Box::new(re))))
}

/// Removes `null` fields the schema knows, as the API server does before defaulting (none of
/// our fields is nullable); nulls inside free-form objects are the user's data and stay.
pub fn prune_nulls(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|k, v| {
                !(v.is_null() && (props.is_some_and(|p| p.contains_key(k)) || additional.is_some()))
            });
            for (k, v) in map.iter_mut() {
                if let Some(child) = props.and_then(|p| p.get(k)).or(additional) {
                    prune_nulls(child, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                items.iter_mut().for_each(|i| prune_nulls(item_schema, i));
            }
        }
        _ => {}
    }
}
