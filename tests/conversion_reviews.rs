//! ConversionReview fixtures: every `tests/conversion/<case>.request.json` is sent through the
//! conversion webhook's handler and must answer exactly `<case>.response.json`.
//!
//! Adding a case is dropping in the two files. With `UPDATE_FIXTURES=1` the responses are
//! (re)written from the current code, for review in the diff.

use kube::core::conversion::ConversionReview;
use mcp_operator::conversion::review;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The webhook's own wiring: conversion, with the admission core explaining invalid objects.
fn handle(r: ConversionReview) -> ConversionReview {
    review::handle(r, mcp_operator::admission::why_invalid)
}

fn requests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conversion");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".request.json"))
        .collect();
    out.sort();
    out
}

#[test]
fn conversion_review_fixtures() {
    let cases = requests();
    assert!(cases.len() >= 15, "only {} fixtures", cases.len());
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut failures = Vec::new();
    for req_path in cases {
        let resp_path = PathBuf::from(
            req_path
                .to_string_lossy()
                .replace(".request.json", ".response.json"),
        );
        let request: ConversionReview =
            serde_json::from_str(&std::fs::read_to_string(&req_path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", req_path.display()));
        let got = serde_json::to_value(handle(request)).unwrap();
        if update {
            std::fs::write(
                &resp_path,
                serde_json::to_string_pretty(&got).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let want: Value = match std::fs::read_to_string(&resp_path) {
            Ok(t) => serde_json::from_str(&t).unwrap(),
            Err(_) => {
                failures.push(format!("{}: no response file", req_path.display()));
                continue;
            }
        };
        if got != want {
            failures.push(format!(
                "{}:\nwant {}\n got {}",
                req_path.display(),
                serde_json::to_string_pretty(&want).unwrap(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every successful fixture's converted objects are valid at the version they were converted to,
/// and the uid is echoed.
#[test]
fn fixtures_convert_to_valid_objects() {
    for req_path in requests() {
        let request: ConversionReview =
            serde_json::from_str(&std::fs::read_to_string(&req_path).unwrap()).unwrap();
        let uid = request.request.as_ref().unwrap().uid.clone();
        let resp = handle(request).response.unwrap();
        assert_eq!(resp.uid, uid);
        if resp.result.status != Some(kube::core::response::StatusSummary::Success) {
            continue;
        }
        for obj in &resp.converted_objects {
            let v = mcp_operator::admission::admit(
                obj,
                None,
                mcp_operator::admission::Operation::Create,
            )
            .unwrap();
            assert!(
                v.allowed(),
                "{}: {} invalid after conversion: {}",
                req_path.display(),
                obj["metadata"]["name"],
                v.errors
            );
        }
    }
}

/// A 500-object review (the API server batches lists) is answered whole.
#[test]
fn five_hundred_objects_in_one_review() {
    let objects: Vec<Value> = (0..500)
        .map(|i| {
            serde_json::json!({
                "apiVersion": "toolhive.stacklok.dev/v1alpha1", "kind": "MCPServer",
                "metadata": {"name": format!("s{i}"), "namespace": "default"},
                "spec": {"image": "docker.io/mcp/fetch", "port": 9000 + i, "groupRef": "g"}
            })
        })
        .collect();
    let review: ConversionReview = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "batch", "desiredAPIVersion": "toolhive.stacklok.dev/v1beta1", "objects": objects}
    }))
    .unwrap();
    let resp = handle(review).response.unwrap();
    assert_eq!(
        resp.result.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    assert_eq!(resp.converted_objects.len(), 500);
    assert_eq!(resp.converted_objects[499]["spec"]["proxyPort"], 9499);
    assert_eq!(resp.converted_objects[7]["spec"]["groupRef"]["name"], "g");
}
