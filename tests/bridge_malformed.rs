//! Malformed client input gets the documented HTTP status and JSON-RPC error, and the bridge
//! keeps serving. The cases are data: `tests/bridge/malformed.json`.

#[path = "bridge/common.rs"]
mod common;

use common::*;
use serde_json::{json, Value};

const BODY_LIMIT: usize = 64 * 1024;

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_the_documented_status_and_error() {
    let limit = BODY_LIMIT.to_string();
    let bridge = Bridge::start(&["--max-body-bytes", &limit], &everything());
    let client = http();
    let sid = open_session(&client, &bridge.url("/mcp")).await;
    // Rows with `"front": "sse"` are POSTed to this legacy session's own message endpoint.
    let sse = SseSession::open(&client, &bridge.url("")).await;
    let port = bridge.port.to_string();
    let fill = |s: &str| s.replace("{port}", &port);
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/bridge/malformed.json")).unwrap(),
    )
    .unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let url = match (case["front"].as_str(), case["path"].as_str()) {
            (Some("sse"), _) => sse.endpoint.clone(),
            (_, path) => bridge.url(path.unwrap_or("/mcp")),
        };
        let method = case["method"].as_str().unwrap_or("POST");
        let body: Vec<u8> = if let Some(n) = case["body_repeat"].as_u64() {
            let pad = "x".repeat(n as usize);
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": pad}})
                .to_string()
                .into_bytes()
        } else if let Some(h) = case["body_hex"].as_str() {
            hex_decode(h)
        } else {
            case["body"]
                .as_str()
                .unwrap_or(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .as_bytes()
                .to_vec()
        };
        let mut req = client.request(method.parse().unwrap(), url).header(
            "accept",
            case["accept"]
                .as_str()
                .unwrap_or("application/json, text/event-stream"),
        );
        if method == "POST" {
            // `"content_type": null` sends none.
            match case.get("content_type") {
                None => req = req.header("content-type", "application/json"),
                Some(Value::String(ct)) => req = req.header("content-type", ct),
                Some(_) => {}
            }
            req = if case["chunked"] == true {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    body.chunks(4096).map(|c| Ok(c.to_vec())).collect();
                req.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            } else {
                req.body(body)
            };
        }
        match case.get("session") {
            None => req = req.header("mcp-session-id", &sid),
            Some(Value::String(s)) => req = req.header("mcp-session-id", s),
            Some(_) => {}
        }
        if let Some(o) = case["origin"].as_str() {
            req = req.header("origin", fill(o));
        }
        if let Some(h) = case["host"].as_str() {
            req = req.header("host", fill(h));
        }
        if let Some(v) = case["protocol_version"].as_str() {
            req = req.header("mcp-protocol-version", v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let reply: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != case["status"].as_u64().unwrap() as u16
            || reply["error"]["code"] != case["code"]
            || reply["jsonrpc"] != "2.0"
            || case.get("id").is_some_and(|id| reply["id"] != *id)
        {
            failures.push(format!("{name}: got {status} {text}"));
        }
    }
    assert!(
        failures.is_empty(),
        "cases that failed:\n{}",
        failures.join("\n")
    );

    // The bridge still serves the same session, and new ones.
    let (status, reply) = post(
        &client,
        &bridge.url("/mcp"),
        &sid,
        &echo_call(json!(9), "still here"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["result"]["content"][0]["text"], "Echo: still here");
    let _ = open_session(&client, &bridge.url("/mcp")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_gets_504_after_the_request_timeout() {
    let bridge = Bridge::start(&["--request-timeout", "1"], &everything());
    let client = http();
    let sid = open_session(&client, &bridge.url("/mcp")).await;
    let slow = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                      "params": {"name": "trigger-long-running-operation",
                                 "arguments": {"duration": 3, "steps": 1}}});
    let (status, reply) = post(&client, &bridge.url("/mcp"), &sid, &slow).await;
    assert_eq!(status, 504);
    assert_eq!(reply["id"], 5);
    assert_eq!(reply["error"]["code"], -32603);
    // The late reply is dropped, not delivered to anyone; the session keeps working.
    let (status, reply) = post(
        &client,
        &bridge.url("/mcp"),
        &sid,
        &echo_call(json!(6), "after"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["id"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_sessions_are_gone_and_notifications_get_202() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"});
    let resp = client
        .post(&url)
        .header("mcp-session-id", &sid)
        .json(&note)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = client
        .delete(&url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, reply) = post(&client, &url, &sid, &echo_call(json!(1), "x")).await;
    assert_eq!(status, 404);
    assert_eq!(reply["error"]["code"], -32001);
}
