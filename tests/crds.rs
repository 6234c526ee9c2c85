//! The CRDs in `crds/` are what the types generate, and every one is a structural schema the
//! API server will accept.

use mcp_operator::api::crd;
use serde_json::Value;
use std::path::Path;

#[test]
fn crds_folder_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let crds = crd::all();
    let mut stale = Vec::new();
    for c in &crds {
        let path = dir.join(crd::file_name(c));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != crd::document(c) {
            stale.push(path.display().to_string());
        }
    }
    let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        stale.is_empty() && files == crds.len(),
        "crds/ is stale ({stale:?}, {files} files for {} CRDs): run `cargo run -- crds --out-dir crds`",
        crds.len()
    );
}

#[test]
fn every_crd_serves_both_versions_and_stores_v1beta1() {
    for c in crd::all() {
        let names: Vec<(&str, bool, bool, bool)> = c
            .spec
            .versions
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    v.served,
                    v.storage,
                    v.deprecated.unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("v1beta1", true, true, false),
                ("v1alpha1", true, false, true)
            ],
            "{}",
            c.spec.names.kind
        );
        assert!(c
            .spec
            .names
            .categories
            .as_ref()
            .unwrap()
            .contains(&"toolhive".to_string()));
        assert!(c.spec.versions.iter().all(|v| v
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()));
        let old = &c.spec.versions[1];
        assert!(old
            .deprecation_warning
            .as_deref()
            .unwrap_or_default()
            .contains("v1beta1"));
    }
}

/// The rules of a structural schema (Kubernetes "Specifying a structural schema").
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else { return };
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !map.contains_key("type") && !preserve && !int_or_string {
        out.push(format!("{path}: no type"));
    }
    if let Some(f) = map.get("format").and_then(Value::as_str) {
        if f.starts_with("uint") {
            out.push(format!("{path}: format {f} is not a Kubernetes format"));
        }
    }
    if map.contains_key("nullable") && !map.contains_key("type") {
        out.push(format!("{path}: nullable without a type"));
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    for forbidden in [
        "$ref",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "definitions",
        "$schema",
    ] {
        if map.contains_key(forbidden) {
            out.push(format!(
                "{path}: {forbidden} is not allowed in a structural schema"
            ));
        }
    }
    if map.get("type").and_then(Value::as_str) == Some("array") && !map.contains_key("items") {
        out.push(format!("{path}: array without items"));
    }
    if map.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let keys = map
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let required = node
            .pointer("/items/required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for k in &keys {
            if !required.contains(k) {
                out.push(format!(
                    "{path}: list-map key {k} must be required in items"
                ));
            }
        }
    }
    for (k, v) in map {
        match k.as_str() {
            "properties" => {
                for (name, child) in v.as_object().into_iter().flatten() {
                    structural_violations(child, &format!("{path}.{name}"), out);
                }
            }
            "items" | "additionalProperties" => structural_violations(v, &format!("{path}[]"), out),
            _ => {}
        }
    }
}

#[test]
fn every_crd_schema_is_structural() {
    let mut violations = Vec::new();
    for c in crd::all() {
        for v in &c.spec.versions {
            let schema = serde_json::to_value(
                v.schema
                    .as_ref()
                    .unwrap()
                    .open_api_v3_schema
                    .as_ref()
                    .unwrap(),
            )
            .unwrap();
            structural_violations(
                &schema,
                &format!("{}/{}", c.spec.names.kind, v.name),
                &mut violations,
            );
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn printer_columns_match_upstream() {
    let server = crd::for_kind("MCPServer").unwrap();
    let cols: Vec<String> = server.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| format!("{}={}", c.name, c.json_path))
        .collect();
    assert_eq!(
        cols,
        [
            "Status=.status.phase",
            "Ready=.status.conditions[?(@.type=='Ready')].status",
            "Replicas=.status.readyReplicas",
            "URL=.status.url",
            "Age=.metadata.creationTimestamp"
        ]
    );
    // The reference's §1.3, with types: kubectl prints the two flags as booleans.
    let telemetry = crd::for_kind("MCPTelemetryConfig").unwrap();
    for version in &telemetry.spec.versions {
        let cols: Vec<String> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| format!("{}={}:{}", c.name, c.json_path, c.type_))
            .collect();
        assert_eq!(
            cols,
            [
                "Endpoint=.spec.openTelemetry.endpoint:string",
                "Valid=.status.conditions[?(@.type=='Valid')].status:string",
                "Tracing=.spec.openTelemetry.tracing.enabled:boolean",
                "Metrics=.spec.openTelemetry.metrics.enabled:boolean",
                "Age=.metadata.creationTimestamp:date"
            ],
            "{}",
            version.name
        );
    }
    let short: Vec<String> = crd::all()
        .iter()
        .flat_map(|c| c.spec.names.short_names.clone().unwrap_or_default())
        .collect();
    for s in ["mcpserver", "mcpreg", "rp", "mcpg", "tc", "mcpotel"] {
        assert!(short.contains(&s.to_string()), "short name {s}");
    }
}
