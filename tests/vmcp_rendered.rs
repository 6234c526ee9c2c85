//! The whole path without a cluster: `mcp-operator render` turns the shipped example
//! (examples/virtualmcpserver.yaml: an MCPGroup, two stdio MCPServers, an MCPServerEntry and
//! the VirtualMCPServer) into the ConfigMap `platform-vmcp-config`; its `vmcp.json` is what
//! the runtime runs with. The only change the test makes is the one the cluster's DNS would:
//! each backend's address becomes the loopback port where a real server of that member
//! listens (server-everything and mcp-server-time behind `mcp-operator bridge`,
//! server-everything's own streamable-HTTP server for the entry). A real MCP client (the
//! Python SDK) then lists the merged tools under the strategies the example and its variants
//! choose, and calls a tool of each backend.

#[path = "bridge/common.rs"]
mod common;
#[path = "vmcp/common.rs"]
mod vmcp_common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};
use vmcp_common::*;

/// The example with its VirtualMCPServer's `aggregation` replaced (none: as shipped).
fn example(aggregation: Option<&Value>) -> String {
    let text = std::fs::read_to_string(repo().join("examples/virtualmcpserver.yaml")).unwrap();
    let Some(aggregation) = aggregation else {
        return text;
    };
    let docs = mcp_operator::manifest::parse_documents("example", &text).unwrap();
    docs.into_iter()
        .map(|d| {
            let mut v = d.value;
            if v["kind"] == "VirtualMCPServer" {
                v["spec"]["config"]["aggregation"] = aggregation.clone();
            }
            mcp_operator::yaml::to_string(&v)
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// What `mcp-operator render` makes of `manifests`: the rendered `vmcp.json`.
fn rendered_config(manifests: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.yaml");
    std::fs::write(&path, manifests).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-operator"))
        .args(["render", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "render: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = mcp_operator::manifest::parse_documents("render", &stdout).unwrap();
    let cm = docs
        .iter()
        .map(|d| &d.value)
        .find(|v| v["kind"] == "ConfigMap" && v["metadata"]["name"] == "platform-vmcp-config")
        .unwrap_or_else(|| panic!("ConfigMap platform-vmcp-config in:\n{stdout}"));
    serde_json::from_str(cm["data"]["vmcp.json"].as_str().unwrap()).unwrap()
}

/// The members' real servers, by member name.
struct Servers {
    _docs: Proc,
    docs_port: u16,
    everything: Bridge,
    time: Bridge,
}

impl Servers {
    fn start() -> Servers {
        let docs_port = free_port();
        let cmd = everything_http("streamableHttp");
        let docs = Proc(
            Command::new(&cmd[0])
                .args(&cmd[1..])
                .env("PORT", docs_port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start server-everything streamableHttp"),
        );
        wait_port(docs_port);
        Servers {
            _docs: docs,
            docs_port,
            everything: Bridge::start(&[], &everything()),
            time: Bridge::start(&[], &time_server()),
        }
    }

    /// What the cluster's DNS does: the member's Service (or the entry's host) is reached at
    /// the port where its server listens here. The path stays the rendered one.
    fn point_at_loopback(&self, config: &mut Value) {
        for backend in config["backends"].as_array_mut().unwrap() {
            let port = match backend["name"].as_str().unwrap() {
                "docs" => self.docs_port,
                "everything" => self.everything.port,
                "time" => self.time.port,
                other => panic!("unexpected member {other}"),
            };
            let url = backend["url"].as_str().unwrap();
            let path = &url[url.find("://").unwrap() + 3..];
            let path = &path[path.find('/').unwrap_or(path.len())..];
            backend["url"] = json!(format!("http://127.0.0.1:{port}{path}"));
        }
    }
}

#[test]
fn the_example_rendered_by_the_operator_serves_every_backend() {
    let servers = Servers::start();
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/vmcp/rendered.json")).unwrap(),
    )
    .unwrap();
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut config = rendered_config(&example(case.get("aggregation")));
        assert_eq!(config["name"], "platform", "{name}: {config}");
        let members: Vec<&str> = config["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(members, ["docs", "everything", "time"], "{name}");
        servers.point_at_loopback(&mut config);
        let (server, _dir) = vmcp(&config, false);
        let out = vmcp_client(&server.url("/mcp"), &case["calls"]);
        assert_eq!(out["tools"], case["tools"], "{name}: {out}");
        for (i, want) in case["calls"].as_array().unwrap().iter().enumerate() {
            let got = &out["calls"][i];
            assert_eq!(got["ok"], true, "{name}: call {i} {}: {got}", want["tool"]);
            let needle = want["contains"].as_str().unwrap();
            assert!(
                got["text"].as_str().unwrap_or_default().contains(needle),
                "{name}: call {i}: {needle:?} not in {got}"
            );
        }
    }
}
