//! `kubectl get` output: the server-side `Table` (`Accept: ...;as=Table;g=meta.k8s.io`) with a
//! CRD's `additionalPrinterColumns`, and the small JSONPath subset those columns use.

use crate::resources::ResourceInfo;
use crate::store::meta_str;
use serde_json::{json, Value};

/// Evaluate a printer-column JSONPath (`.spec.x`, `.a[0].b`, `.a[*].b`,
/// `.status.conditions[?(@.type=="Ready")].status`). Returns every match.
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let p = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut cur = vec![obj.clone()];
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur
                .into_iter()
                .filter_map(|v| v.get(key).cloned())
                .collect();
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else {
                return vec![];
            };
            let inner = &r[..end];
            rest = &r[end + 1..];
            if inner == "*" {
                cur = cur
                    .into_iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .collect();
            } else if let Ok(i) = inner.parse::<usize>() {
                cur = cur.into_iter().filter_map(|v| v.get(i).cloned()).collect();
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                let Some((field, want)) = f.split_once("==") else {
                    return vec![];
                };
                let want = want.trim().trim_matches(['"', '\'']);
                let field = field.trim();
                cur = cur
                    .into_iter()
                    .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                    .filter(|item| {
                        json_path(item, &format!(".{field}"))
                            .first()
                            .is_some_and(|x| {
                                x.as_str()
                                    .map(String::from)
                                    .unwrap_or_else(|| x.to_string())
                                    == want
                            })
                    })
                    .collect();
            } else {
                return vec![];
            }
        } else {
            return vec![];
        }
    }
    cur
}

fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn cell(v: Option<Value>, ty: &str) -> Value {
    match (v, ty) {
        (None, _) => Value::Null,
        (Some(Value::String(s)), "date") => json!(age(&s)),
        (Some(v @ (Value::Object(_) | Value::Array(_))), _) => json!(v.to_string()),
        (Some(v), _) => v,
    }
}

/// Column definitions for a resource at a version.
fn columns(res: &ResourceInfo, version: &str) -> Vec<(Value, Option<String>)> {
    let mut cols = vec![(
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
        None,
    )];
    let printer = res
        .version(version)
        .map(|v| v.printer_columns.clone())
        .unwrap_or_default();
    if printer.is_empty() {
        cols.push((json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp", "priority": 0}), Some(".metadata.creationTimestamp".into())));
    }
    for c in printer {
        let def = json!({
            "name": c.get("name").cloned().unwrap_or(json!("")),
            "type": c.get("type").cloned().unwrap_or(json!("string")),
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        });
        cols.push((
            def,
            c.get("jsonPath").and_then(Value::as_str).map(String::from),
        ));
    }
    cols
}

/// Render objects (already at `version`) as a `meta.k8s.io/v1` Table.
pub fn table(
    res: &ResourceInfo,
    version: &str,
    objs: &[Value],
    list_meta: Value,
    include_object: &str,
) -> Value {
    let cols = columns(res, version);
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols
                .iter()
                .map(|(def, path)| match path {
                    None => json!(meta_str(o, "name")),
                    Some(p) => cell(json_path(o, p).into_iter().next(), def["type"].as_str().unwrap_or("string")),
                })
                .collect();
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": cols.into_iter().map(|(d, _)| d).collect::<Vec<_>>(),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"ports": [{"port": 80}, {"port": 81}]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(json_path(&o, ".spec.ports[1].port"), vec![json!(81)]);
        assert_eq!(json_path(&o, ".spec.ports[*].port").len(), 2);
        assert!(json_path(&o, ".spec.missing").is_empty());
    }
}
