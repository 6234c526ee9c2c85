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

/// An object reduced to `meta.k8s.io/v1` `PartialObjectMetadata`.
pub fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
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
    if res.crd.is_none() {
        if let Some(t) = builtin_table(res, objs, &list_meta, include_object) {
            return t;
        }
    }
    let cols = columns(res, version);
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols
                .iter()
                .map(|(def, path)| match path {
                    None => json!(meta_str(o, "name")),
                    Some(p) => cell(
                        json_path(o, p).into_iter().next(),
                        def["type"].as_str().unwrap_or("string"),
                    ),
                })
                .collect();
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => partial_metadata(o),
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

type Cell = fn(&Value) -> Value;

fn int_at(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn count_at(o: &Value, p: &str) -> Value {
    json!(o
        .pointer(p)
        .and_then(Value::as_object)
        .map(|m| m.len())
        .unwrap_or(0))
}

fn age_of(o: &Value) -> Value {
    json!(age(meta_str(o, "creationTimestamp")))
}

/// The columns kube-apiserver prints for the common built-in kinds (its Go table convertors).
fn builtin_columns(res: &ResourceInfo) -> Option<Vec<(&'static str, Cell)>> {
    let cols: Vec<(&'static str, Cell)> = match (res.group.as_str(), res.plural.as_str()) {
        ("apps", "deployments") => vec![
            ("Ready", |o| {
                json!(format!(
                    "{}/{}",
                    int_at(o, "/status/readyReplicas"),
                    int_at(o, "/spec/replicas")
                ))
            }),
            ("Up-to-date", |o| {
                json!(int_at(o, "/status/updatedReplicas"))
            }),
            ("Available", |o| {
                json!(int_at(o, "/status/availableReplicas"))
            }),
        ],
        ("apps", "statefulsets") => {
            vec![("Ready", |o| {
                json!(format!(
                    "{}/{}",
                    int_at(o, "/status/readyReplicas"),
                    int_at(o, "/spec/replicas")
                ))
            })]
        }
        ("", "pods") => vec![
            ("Ready", |o| {
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map(Vec::len)
                    .unwrap_or(0);
                let ready = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                            .count()
                    })
                    .unwrap_or(0);
                json!(format!("{ready}/{total}"))
            }),
            ("Status", |o| {
                json!(o
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("Pending"))
            }),
            ("Restarts", |o| {
                json!(o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map(|a| a
                        .iter()
                        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                        .sum::<i64>())
                    .unwrap_or(0))
            }),
        ],
        ("", "services") => vec![
            ("Type", |o| {
                json!(o
                    .pointer("/spec/type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP"))
            }),
            ("Cluster-IP", |o| {
                json!(o
                    .pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>"))
            }),
            ("External-IP", |_| json!("<none>")),
            ("Port(s)", |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{}/{}",
                            p.get("port").map(|v| v.to_string()).unwrap_or_default(),
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                        )
                    })
                    .collect();
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                })
            }),
        ],
        ("", "configmaps") => vec![("Data", |o| {
            json!(
                count_at(o, "/data").as_u64().unwrap_or(0)
                    + count_at(o, "/binaryData").as_u64().unwrap_or(0)
            )
        })],
        ("", "secrets") => vec![
            ("Type", |o| {
                json!(o.get("type").and_then(Value::as_str).unwrap_or("Opaque"))
            }),
            ("Data", |o| count_at(o, "/data")),
        ],
        ("", "namespaces") => vec![("Status", |o| {
            json!(o
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active"))
        })],
        _ => return None,
    };
    Some(cols)
}

fn builtin_table(
    res: &ResourceInfo,
    objs: &[Value],
    list_meta: &Value,
    include_object: &str,
) -> Option<Value> {
    let cols = builtin_columns(res)?;
    let mut defs = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}),
    ];
    defs.extend(cols.iter().map(|(n, _)| json!({"name": n, "type": "string", "format": "", "description": "", "priority": 0})));
    defs.push(
        json!({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}),
    );
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let mut cells = vec![json!(meta_str(o, "name"))];
            cells.extend(cols.iter().map(|(_, f)| f(o)));
            cells.push(age_of(o));
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => partial_metadata(o),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    Some(
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": defs, "rows": rows}),
    )
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
