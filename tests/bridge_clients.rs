//! The official Python MCP client, over streamable HTTP and legacy SSE, through the bridge in
//! front of real stdio servers: `server-everything` (npm) and `mcp-server-time` (PyPI).

#[path = "bridge/common.rs"]
mod common;

use common::*;
use serde_json::Value;

fn assert_everything(out: &Value) {
    assert_eq!(out["server"], "mcp-servers/everything", "{out}");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"get-sum"),
        "{tools:?}"
    );
    assert_eq!(out["echo"]["text"], "Echo: hello bridge", "{out}");
    assert_eq!(out["sum"]["text"], "The sum of 2 and 40 is 42.", "{out}");
    assert_eq!(out["long"]["ok"], true, "{out}");
    // Progress reaches the caller through the bridge's rewritten progress token.
    assert_eq!(out["progress"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(out["ping"], true);
}

#[test]
fn python_client_over_streamable_http_uses_server_everything() {
    let bridge = Bridge::start(&[], &everything());
    let out = python_client("streamable", &bridge.url("/mcp"), "everything", &[]);
    assert_everything(&out);
}

#[test]
fn python_client_over_sse_uses_server_everything() {
    let bridge = Bridge::start(&[], &everything());
    let out = python_client("sse", &bridge.url("/sse"), "everything", &[]);
    assert_everything(&out);
}

fn assert_time(out: &Value) {
    assert_eq!(out["server"], "mcp-time", "{out}");
    assert_eq!(
        out["tools"],
        serde_json::json!(["convert_time", "get_current_time"])
    );
    let now: Value = serde_json::from_str(out["now"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(now["timezone"], "UTC");
    let converted: Value = serde_json::from_str(out["convert"]["text"].as_str().unwrap()).unwrap();
    assert_eq!(converted["target"]["timezone"], "Asia/Tokyo", "{converted}");
    assert_eq!(
        converted["target"]["datetime"].as_str().unwrap()[11..16],
        *"21:00"
    );
}

#[test]
fn python_client_over_both_transports_uses_mcp_server_time() {
    let bridge = Bridge::start(&[], &time_server());
    assert_time(&python_client(
        "streamable",
        &bridge.url("/mcp"),
        "time",
        &[],
    ));
    assert_time(&python_client("sse", &bridge.url("/sse"), "time", &[]));
}

#[test]
fn endpoint_prefix_is_used_for_the_sse_endpoint_and_routes() {
    let bridge = Bridge::start(&["--endpoint-prefix", "/team/fetch/"], &time_server());
    // An ingress that keeps the prefix: the client connects under it and posts under it.
    let out = python_client("sse", &bridge.url("/team/fetch/sse"), "time", &[]);
    assert_time(&out);
    let out = python_client("streamable", &bridge.url("/team/fetch/mcp"), "time", &[]);
    assert_time(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_prefix_is_honoured_only_when_trusted() {
    let client = http();
    for (flags, expected) in [
        (
            vec!["--trust-proxy-headers"],
            "/from-proxy/messages?session_id=",
        ),
        (vec![], "/messages?session_id="),
    ] {
        let bridge = Bridge::start(&flags, &time_server());
        let mut resp = client
            .get(bridge.url("/sse"))
            .header("accept", "text/event-stream")
            .header("x-forwarded-prefix", "/from-proxy/")
            .send()
            .await
            .unwrap();
        let first = resp.chunk().await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&first);
        assert!(
            text.starts_with(&format!("event: endpoint\ndata: {expected}")),
            "{flags:?}: {text}"
        );
    }
}
