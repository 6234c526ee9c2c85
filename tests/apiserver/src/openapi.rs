//! `/openapi/v3`: enough of the OpenAPI v3 documents for kubectl. kubectl looks for the
//! `fieldValidation` query parameter on each kind's PATCH operation to decide that the server
//! validates (`--validate=strict` then sends `fieldValidation=Strict`), and reads a kind's schema
//! (`x-kubernetes-group-version-kind`) for `kubectl explain`. Custom resources carry their CRD
//! schema; built-ins carry no schema (kubectl then falls back to its compiled-in types).

use crate::resources::ResourceInfo;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(v: &Value) -> String {
    // FNV-1a over the document: a stable content hash for kubectl's cache keys.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The per-group-version document, if anything is served there.
pub fn gv_document(all: &[Arc<ResourceInfo>], group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for r in all.iter().filter(|r| r.group == group) {
        let Some(v) = r.served_version(version) else {
            continue;
        };
        let gvk = json!({"group": r.group, "version": version, "kind": r.kind});
        let schema_name = format!("{}.{}.{}", reverse_group(&r.group), version, r.kind);
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", r.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}},
            })
        };
        let gvp = gv_path(&r.group, version);
        let base = if r.namespaced {
            format!("/{gvp}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{gvp}/{}", r.plural)
        };
        paths.insert(base.clone(), json!({"post": op("post"), "get": op("list")}));
        paths.insert(format!("{base}/{{name}}"), json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        if v.status {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({"get": op("get"), "put": op("put"), "patch": op("patch")}),
            );
        }
        let mut schema = v.schema.as_deref().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name, schema);
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "test-apiserver"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn reverse_group(group: &str) -> String {
    if group.is_empty() {
        return "io.k8s.api.core".into();
    }
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

/// The `/openapi/v3` root: one entry per served group-version, with a content hash.
pub fn root(all: &[Arc<ResourceInfo>]) -> Value {
    let mut gvs: Vec<(String, String)> = vec![];
    for r in all {
        for v in r.versions.iter().filter(|v| v.served) {
            let gv = (r.group.clone(), v.name.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    let mut paths = Map::new();
    for (g, v) in gvs {
        if let Some(doc) = gv_document(all, &g, &v) {
            let p = gv_path(&g, &v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}
