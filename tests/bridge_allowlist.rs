//! The tools allow-list: only allowed tools are listed (page by page, cursors kept), and calling
//! any other tool gets JSON-RPC -32602 `tool not found`, on every transport.

#[path = "bridge/common.rs"]
mod common;

use common::*;
use serde_json::{json, Value};

fn assert_filtered(out: &Value) {
    assert_eq!(out["tools"], json!(["echo", "get-sum"]), "{out}");
    let calls = out["calls"].as_array().unwrap();
    assert_eq!(calls[0]["text"], "Echo: allowed", "{out}");
    for hidden in &calls[1..] {
        assert_eq!(hidden["ok"], false, "{out}");
        assert_eq!(hidden["code"], -32602, "{out}");
        assert_eq!(hidden["message"], "tool not found", "{out}");
    }
}

#[test]
fn python_client_sees_only_allowed_tools_on_both_transports() {
    let bridge = Bridge::start(&["--tools", "echo,get-sum"], &everything());
    let calls = [
        "echo",
        r#"{"message":"allowed"}"#,
        "get-env",
        "{}",
        "no-such-tool",
        "{}",
    ];
    assert_filtered(&python_client(
        "streamable",
        &bridge.url("/mcp"),
        "calls",
        &calls,
    ));
    assert_filtered(&python_client("sse", &bridge.url("/sse"), "calls", &calls));
}

#[test]
fn allow_list_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.json");
    std::fs::write(
        &path,
        r#"{"tools": ["echo", "get-sum"], "requestTimeoutSeconds": 30}"#,
    )
    .unwrap();
    let bridge = Bridge::start(&["--config", path.to_str().unwrap()], &everything());
    let calls = ["echo", r#"{"message":"allowed"}"#, "get-env", "{}"];
    assert_filtered(&python_client(
        "streamable",
        &bridge.url("/mcp"),
        "calls",
        &calls,
    ));
}

#[test]
fn pagination_is_filtered_page_by_page_with_cursors_kept() {
    let bridge = Bridge::start(&["--tools", "t1,t4"], &paged_server());
    let expected = json!([
        {"tools": ["t1"], "next": "2"},
        {"tools": [], "next": "4"},
        {"tools": ["t4"], "next": null},
    ]);
    for (transport, path) in [("streamable", "/mcp"), ("sse", "/sse")] {
        let out = python_client(transport, &bridge.url(path), "pages", &[]);
        assert_eq!(out["pages"], expected, "{transport}: {out}");
    }
    let out = python_client(
        "streamable",
        &bridge.url("/mcp"),
        "calls",
        &["t4", "{}", "t5", "{}"],
    );
    assert_eq!(out["calls"][0]["text"], "called t4");
    assert_eq!(out["calls"][1]["code"], -32602);
}

/// A client that accepts only SSE gets its answers as SSE events; the filter applies there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_applies_inside_sse_responses() {
    let bridge = Bridge::start(&["--tools", "echo"], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    for (body, check) in [
        (
            json!({"jsonrpc": "2.0", "id": "l", "method": "tools/list"}),
            "list",
        ),
        (
            json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call",
                   "params": {"name": "get-env", "arguments": {}}}),
            "call",
        ),
    ] {
        let resp = client
            .post(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &sid)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let text = resp.text().await.unwrap();
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .next_back()
            .expect("an SSE message");
        let msg: Value = serde_json::from_str(data).unwrap();
        match check {
            "list" => {
                let names: Vec<&str> = msg["result"]["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, ["echo"]);
            }
            _ => {
                assert_eq!(msg["id"], "c");
                assert_eq!(msg["error"]["code"], -32602);
                assert_eq!(msg["error"]["message"], "tool not found");
            }
        }
    }
}
