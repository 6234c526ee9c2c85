//! HTTP backends: the bridge reverse-proxies to a server that serves MCP over HTTP itself
//! (`server-everything streamableHttp` and `sse`), streaming, with the allow-list applied and the
//! legacy `endpoint` URL rewritten to the bridge.

#[path = "bridge/common.rs"]
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn backend(mode: &str, path: &str, tools: Option<&str>) -> Bridge {
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}{path}");
    let transport = if mode == "sse" {
        "sse"
    } else {
        "streamable-http"
    };
    let mut flags = vec!["--transport", transport, "--target", &target];
    if let Some(t) = tools {
        flags.extend(["--tools", t]);
    }
    Bridge::start_env(
        &flags,
        &everything_http(mode),
        &[("PORT", port.to_string())],
    )
}

#[test]
fn python_client_through_a_streamable_http_backend() {
    let bridge = backend("streamableHttp", "/mcp", None);
    let out = python_client("streamable", &bridge.url("/mcp"), "everything", &[]);
    assert_eq!(out["echo"]["text"], "Echo: hello bridge", "{out}");
    assert_eq!(out["sum"]["text"], "The sum of 2 and 40 is 42.", "{out}");
    // Progress streams through as SSE events, unbuffered.
    assert_eq!(out["progress"].as_array().unwrap().len(), 3, "{out}");
}

#[test]
fn python_client_through_an_sse_backend() {
    let bridge = backend("sse", "/sse", None);
    let out = python_client("sse", &bridge.url("/sse"), "everything", &[]);
    assert_eq!(out["echo"]["text"], "Echo: hello bridge", "{out}");
    assert_eq!(out["progress"].as_array().unwrap().len(), 3, "{out}");
}

#[test]
fn allow_list_applies_to_http_backends() {
    for (mode, path, transport, client_path) in [
        ("streamableHttp", "/mcp", "streamable", "/mcp"),
        ("sse", "/sse", "sse", "/sse"),
    ] {
        let bridge = backend(mode, path, Some("echo,get-sum"));
        let out = python_client(
            transport,
            &bridge.url(client_path),
            "calls",
            &["echo", r#"{"message":"allowed"}"#, "get-env", "{}"],
        );
        assert_eq!(out["tools"], json!(["echo", "get-sum"]), "{mode}: {out}");
        assert_eq!(out["calls"][0]["text"], "Echo: allowed", "{mode}: {out}");
        assert_eq!(out["calls"][1]["code"], -32602, "{mode}: {out}");
        assert_eq!(
            out["calls"][1]["message"], "tool not found",
            "{mode}: {out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_endpoint_event_points_at_the_bridge() {
    let bridge = backend("sse", "/sse", None);
    let client = http();
    let mut sse = SseSession::open(&client, &bridge.url("")).await;
    let prefix = bridge.url("/messages?");
    assert!(
        sse.endpoint.starts_with(&prefix),
        "{} should start with {prefix}",
        sse.endpoint
    );
    assert_eq!(sse.send(&client, &initialize_body(json!("i"))).await, 202);
    let reply = sse
        .next(Duration::from_secs(5))
        .await
        .expect("initialize reply");
    assert_eq!(reply["id"], "i");
    assert_eq!(
        reply["result"]["serverInfo"]["name"],
        "mcp-servers/everything"
    );
}
