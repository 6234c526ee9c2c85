//! Upstream's own example manifests (`tests/upstream/<tag>/`, see its README): every object of
//! a kind we serve is accepted by `check`, except exactly the ones the tag's `refused.txt`
//! lists; objects of kinds we do not serve are skipped.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn refusals(tag: &str) -> (BTreeSet<String>, usize) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/upstream")
        .join(tag);
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["check", "--output", "json", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    let results: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let refused = results
        .iter()
        .filter(|r| r["allowed"] == false)
        .map(|r| {
            format!(
                "{}/{} ({}): {}",
                r["kind"].as_str().unwrap_or_default().to_lowercase(),
                r["name"].as_str().unwrap_or_default(),
                r["namespace"].as_str().unwrap_or_default(),
                r["errors"][0]["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    (refused, results.len())
}

fn listed(tag: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/upstream")
        .join(tag)
        .join("refused.txt");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn check_tag(tag: &str, at_least: usize) {
    let (refused, total) = refusals(tag);
    assert!(total >= at_least, "{tag}: only {total} objects read");
    let expected = listed(tag);
    let newly_refused: Vec<_> = refused.difference(&expected).collect();
    let now_accepted: Vec<_> = expected.difference(&refused).collect();
    assert!(
        newly_refused.is_empty() && now_accepted.is_empty(),
        "{tag}: refused but not listed in refused.txt: {newly_refused:#?}\nlisted but accepted now (take them off): {now_accepted:#?}"
    );
}

#[test]
fn v0_14_0_examples_are_accepted() {
    check_tag("v0.14.0", 80);
}

#[test]
fn v0_17_0_examples_are_accepted() {
    check_tag("v0.17.0", 85);
}

#[test]
fn v0_21_0_examples_are_accepted() {
    check_tag("v0.21.0", 70);
}
