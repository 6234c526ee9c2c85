//! Data-driven admission tests: every file under `tests/admission/` is one case.
//!
//! A case file holds two YAML documents: the expectation, then the object.
//!
//! ```yaml
//! expect: rejected            # or accepted
//! errors: [spec.transport]    # exact set of field paths (rejected cases)
//! messages: ["Unsupported value: \"grpc\""]   # substrings of the rendered errors
//! warnings: ["spec.mcpPort"]  # substrings, each must match some warning
//! defaults: {/spec/proxyPort: 8080}            # JSON pointers into the defaulted object
//! operation: UPDATE           # optional; then a third document is the old object
//! ```
//! Adding a regression case is dropping in one file.

use mcp_operator::admission::{admit, Operation};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    expect: String,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    messages: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    no_warnings: bool,
    #[serde(default)]
    defaults: BTreeMap<String, Value>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    operation: Option<String>,
}

fn case_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(case_files(&p));
        } else if p.extension().is_some_and(|e| e == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let [exp, obj, rest @ ..] = docs.as_slice() else {
        return Err("a case needs an expectation and an object".into());
    };
    let exp: Expectation =
        serde_json::from_value(exp.clone()).map_err(|e| format!("bad expectation: {e}"))?;
    let op = match exp.operation.as_deref() {
        None | Some("CREATE") => Operation::Create,
        Some("UPDATE") => Operation::Update,
        Some("DELETE") => Operation::Delete,
        Some(other) => return Err(format!("unknown operation {other}")),
    };
    let verdict = admit(obj, rest.first(), op).map_err(|e| format!("not admitted at all: {e}"))?;
    let rendered: Vec<String> = verdict.errors.iter().map(|e| e.to_string()).collect();
    let mut problems = Vec::new();
    match exp.expect.as_str() {
        "accepted" if !verdict.allowed() => {
            problems.push(format!("expected accepted, got errors {rendered:#?}"))
        }
        "rejected" if verdict.allowed() => {
            problems.push("expected rejected, was accepted".to_string())
        }
        "accepted" | "rejected" => {}
        other => problems.push(format!("expect must be accepted or rejected, not {other}")),
    }
    let got: BTreeSet<&str> = verdict.errors.iter().map(|e| e.field.as_str()).collect();
    let want: BTreeSet<&str> = exp.errors.iter().map(String::as_str).collect();
    if exp.expect == "rejected" && got != want {
        problems.push(format!(
            "error fields: want {want:?}, got {got:?} ({rendered:#?})"
        ));
    }
    for m in &exp.messages {
        if !rendered.iter().any(|r| r.contains(m.as_str())) {
            problems.push(format!("no error contains {m:?}: {rendered:#?}"));
        }
    }
    for w in &exp.warnings {
        if !verdict.warnings.iter().any(|x| x.contains(w.as_str())) {
            problems.push(format!(
                "no warning contains {w:?}: {:#?}",
                verdict.warnings
            ));
        }
    }
    if exp.no_warnings && !verdict.warnings.is_empty() {
        problems.push(format!("expected no warnings, got {:#?}", verdict.warnings));
    }
    for (pointer, value) in &exp.defaults {
        let actual = verdict.defaulted.pointer(pointer);
        if actual != Some(value) {
            problems.push(format!("defaulted {pointer}: want {value}, got {actual:?}"));
        }
    }
    for pointer in &exp.absent {
        if let Some(v) = verdict.defaulted.pointer(pointer) {
            problems.push(format!("defaulted {pointer}: want absent, got {v}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn admission_cases() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admission");
    let files = case_files(&dir);
    assert!(
        files.len() >= 60,
        "expected at least 60 cases, found {}",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| run_case(f).err().map(|e| format!("{}:\n{e}", f.display())))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// Every kind must be covered, and every kind must have accepted and rejected cases.
#[test]
fn cases_cover_every_kind() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admission");
    for kind in [
        "mcpserver",
        "mcpregistry",
        "mcpremoteproxy",
        "mcpgroup",
        "mcptoolconfig",
        "virtualmcpserver",
        "mcpserverentry",
    ] {
        let n = case_files(&dir.join(kind)).len();
        assert!(n >= 3, "{kind}: only {n} cases");
    }
}

/// The reserved names of MCPServer volumes are exactly what the operator adds: every volume and
/// every mount path of the Deployment it builds (for a server using every optional part) is
/// refused when a user puts it in `spec.volumes`.
#[test]
fn every_volume_the_operator_adds_is_reserved() {
    use mcp_operator::controller::children::{desired, Inputs};
    let spec = serde_json::json!({
        "image": "docker.io/mcp/fetch",
        "permissionProfile": {"type": "configmap", "name": "profiles", "key": "p.json"},
    });
    let server: mcp_operator::api::v1beta1::MCPServer = serde_json::from_value(serde_json::json!({
        "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
        "metadata": {"name": "s", "namespace": "ns"}, "spec": spec,
    }))
    .unwrap();
    let deployment = serde_json::to_value(desired(&server, &Inputs::default()).deployment).unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let names: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let containers = pod["containers"].as_array().unwrap().iter();
    let inits = pod["initContainers"].as_array().into_iter().flatten();
    let paths: BTreeSet<&str> = containers
        .chain(inits)
        .flat_map(|c| c["volumeMounts"].as_array().into_iter().flatten())
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert!(names.len() >= 3 && paths.len() >= 3, "{names:?} {paths:?}");
    let admit_volume = |name: &str, mount: &str| {
        let mut obj = serde_json::json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "s", "namespace": "ns"}, "spec": spec.clone(),
        });
        obj["spec"]["volumes"] =
            serde_json::json!([{"name": name, "hostPath": "/opt/x", "mountPath": mount}]);
        let verdict = admit(&obj, None, Operation::Create).unwrap();
        verdict
            .errors
            .iter()
            .map(|e| e.field.clone())
            .collect::<Vec<_>>()
    };
    for name in names {
        assert_eq!(
            admit_volume(name, "/data"),
            ["spec.volumes[0].name"],
            "volume {name}"
        );
    }
    for path in paths {
        assert_eq!(
            admit_volume("user", path),
            ["spec.volumes[0].mountPath"],
            "mount {path}"
        );
        let below = format!("{path}/below");
        assert_eq!(
            admit_volume("user", &below),
            ["spec.volumes[0].mountPath"],
            "mount {below}"
        );
    }
}
