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

/// POSTs as a streamable-HTTP client must (accepting JSON and SSE, as the backend insists);
/// returns the status, the session id the answer carries, and the JSON-RPC answer (from the
/// SSE `data:` line when the server streams it).
async fn send(
    client: &reqwest::Client,
    url: &str,
    sid: Option<&str>,
    body: &serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let mut req = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(sid) = sid {
        req = req.header("mcp-session-id", sid);
    }
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text)
        .trim()
        .to_owned();
    (
        status,
        session,
        serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
    )
}

/// Batches (protocol revisions before 2025-06-18) reach HTTP backends as they are: a hidden
/// tool called from inside one is refused like a single call, before the server sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cannot_smuggle_a_hidden_tool_past_the_allow_list() {
    let bridge = backend("streamableHttp", "/mcp", Some("echo"));
    let client = http();
    let url = bridge.url("/mcp");
    let (status, sid, _) = send(&client, &url, None, &initialize_body(json!(0))).await;
    assert_eq!(status, 200);
    let sid = sid.expect("a session id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(send(&client, &url, Some(&sid), &initialized).await.0, 202);

    let batch = json!([
        echo_call(json!(1), "fine"),
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get-env", "arguments": {}}},
    ]);
    let (status, _, body) = send(&client, &url, Some(&sid), &batch).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("tool not found"),
        "{body}"
    );
    // Issue 17: a call whose tool name cannot be read (positional params, no name) is refused
    // under an allow-list too, alone or in a batch, rather than let through.
    for params in [json!(["get-env", {}]), json!({"arguments": {}})] {
        let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params});
        let (status, _, body) = send(&client, &url, Some(&sid), &call).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (200, &json!(-32602)),
            "{params}: {body}"
        );
        assert_eq!(body["id"], 4);
        let (status, _, body) = send(&client, &url, Some(&sid), &json!([call])).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!(-32602)),
            "{params}: {body}"
        );
    }
    // Issue 17: a DNS-rebinding page is refused before the backend sees it.
    let evil = format!("evil.example:{}", bridge.port);
    let resp = client
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .header("host", &evil)
        .header("origin", format!("http://{evil}"))
        .json(&echo_call(json!(5), "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // The session is still good for single calls.
    let (status, _, body) = send(&client, &url, Some(&sid), &echo_call(json!(3), "still")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["content"][0]["text"], "Echo: still",
        "{body}"
    );
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
    // Issue 17: a DNS-rebinding page (its Origin and Host agree on a foreign name) is refused
    // on both legacy routes; the same request without a browser's Origin is served.
    let evil = format!("evil.example:{}", bridge.port);
    let rebound = |req: reqwest::RequestBuilder| {
        req.header("host", &evil)
            .header("origin", format!("http://{evil}"))
    };
    let resp = rebound(
        client
            .get(bridge.url("/sse"))
            .header("accept", "text/event-stream"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = rebound(client.post(&sse.endpoint).json(&echo_call(json!(1), "x")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = client
        .post(&sse.endpoint)
        .header("host", &evil)
        .json(&echo_call(json!(2), "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

/// The bridge's own secrets (header values, tokens, client secrets read from its environment)
/// are not inherited by the MCP server it starts: the server's `get-env` shows the rest of the
/// environment but none of them.
#[test]
fn the_server_never_inherits_the_bridges_secrets() {
    let port = free_port();
    let target = format!("http://127.0.0.1:{port}/mcp");
    let config = json!({
        "transport": "streamable-http", "target": target,
        "headersFromEnv": {"X-Api-Key": "API_KEY_VALUE"},
        "auth": {"outgoing": {"bearerTokenEnv": "BACKEND_TOKEN"}},
    });
    let (_dir, path) = config_file(&config.to_string());
    let secrets = [
        ("API_KEY_VALUE", "api-key-4b7e".to_string()),
        ("BACKEND_TOKEN", "backend-token-8c1f".to_string()),
    ];
    let mut env = vec![("PORT", port.to_string()), ("KEPT_VAR", "kept-2d9a".into())];
    env.extend(secrets.iter().cloned());
    let bridge = Bridge::start_env(
        &["--config", &path],
        &everything_http("streamableHttp"),
        &env,
    );
    let out = python_client(
        "streamable",
        &bridge.url("/mcp"),
        "calls",
        &["get-env", "{}"],
    );
    let shown = out["calls"][0]["text"].as_str().unwrap_or_default();
    assert!(
        shown.contains("kept-2d9a"),
        "get-env shows the environment: {out}"
    );
    for (var, value) in &secrets {
        assert!(!shown.contains(var), "{var} reached the server: {shown}");
        assert!(
            !shown.contains(value.as_str()),
            "{var}'s value reached the server"
        );
    }
}
