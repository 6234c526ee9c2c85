//! Tool overrides (MCPToolConfig `toolsOverride`, the bridge's `toolOverrides`) seen by the
//! official Python MCP client through the bridge, in front of real servers on every backend:
//! renamed tools are listed under their new names with the new description and annotations,
//! are callable by the new name (the server gets its own), and the allow-list matches the new
//! names. The cases are data: `tests/bridge/overrides.json`.

#[path = "bridge/common.rs"]
mod common;

use common::*;
use serde_json::Value;

/// Starts the bridge for a case's `server` with its `config` as the config file.
fn start(server: &str, config_path: &str) -> Bridge {
    let flags = ["--config", config_path];
    match server {
        "everything" => Bridge::start(&flags, &everything()),
        "paged" => Bridge::start(&flags, &paged_server()),
        http => {
            let mode = http.strip_prefix("everything-").expect("a known server");
            let port = free_port();
            let (transport, path) = match mode {
                "sse" => ("sse", "/sse"),
                _ => ("streamable-http", "/mcp"),
            };
            let target = format!("http://127.0.0.1:{port}{path}");
            let mut all = flags.to_vec();
            all.extend(["--transport", transport, "--target", &target]);
            Bridge::start_env(&all, &everything_http(mode), &[("PORT", port.to_string())])
        }
    }
}

/// Every way `out` differs from what `case` expects, as sentences.
fn mismatches(case: &Value, out: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(tools) = case.get("tools") {
        if &out["tools"] != tools {
            found.push(format!("tools: want {tools}, got {}", out["tools"]));
        }
    }
    for absent in case["absent"].as_array().into_iter().flatten() {
        if out["catalog"].get(absent.as_str().unwrap()).is_some() {
            found.push(format!("{absent} should not be listed"));
        }
    }
    for (tool, want) in case["catalog"].as_object().into_iter().flatten() {
        let got = &out["catalog"][tool];
        if got.is_null() {
            found.push(format!("{tool} is not listed"));
            continue;
        }
        for (field, value) in want.as_object().unwrap() {
            if &got[field] != value {
                found.push(format!("{tool}.{field}: want {value}, got {}", got[field]));
            }
        }
    }
    let calls = case["calls"].as_array().unwrap();
    for (i, call) in calls.iter().enumerate() {
        let (name, want) = (&call[0], &call[2]);
        let got = &out["calls"][i];
        let ok = match want.get("text") {
            Some(text) => got["ok"] == true && &got["text"] == text,
            None => {
                got["ok"] == false
                    && got["code"] == want["code"]
                    && got["message"] == want["message"]
            }
        };
        if !ok {
            found.push(format!("call {name}: want {want}, got {got}"));
        }
    }
    found
}

#[test]
fn renamed_tools_are_listed_and_called_by_their_new_names() {
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/bridge/overrides.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let path = dir.path().join(format!("bridge-{n}.json"));
        std::fs::write(&path, case["config"].to_string()).unwrap();
        let bridge = start(case["server"].as_str().unwrap(), path.to_str().unwrap());
        let args: Vec<String> = case["calls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| [c[0].as_str().unwrap().to_owned(), c[1].to_string()])
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for transport in case["transports"].as_array().unwrap() {
            let transport = transport.as_str().unwrap();
            let url = bridge.url(if transport == "sse" { "/sse" } else { "/mcp" });
            if let Some(pages) = case.get("pages") {
                let out = python_client(transport, &url, "pages", &[]);
                if &out["pages"] != pages {
                    failures.push(format!(
                        "{name} ({transport}): pages: want {pages}, got {}",
                        out["pages"]
                    ));
                }
            }
            let out = python_client(transport, &url, "catalog", &args);
            for m in mismatches(case, &out) {
                failures.push(format!("{name} ({transport}): {m}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
