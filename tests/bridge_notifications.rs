//! What the server sends on its own: list-changed notifications reach every session's GET
//! stream, resource updates reach only the subscribed session.

#[path = "bridge/common.rs"]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

async fn next_notification(
    rx: &mut UnboundedReceiver<Value>,
    method: &str,
    within: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if msg["method"] == method {
            return Some(msg);
        }
    }
}

const SECONDS_5: Duration = Duration::from_secs(5);

fn call(id: i64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_goes_to_every_session_and_updates_only_to_subscribers() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let a = open_session(&client, &url).await;
    let b = open_session(&client, &url).await;
    let mut a_stream = open_get_stream(&client, &url, &a).await;
    let mut b_stream = open_get_stream(&client, &url, &b).await;

    // A new (session) resource on the server: both sessions hear that the list changed.
    let gzip = call(
        1,
        "gzip-file-as-resource",
        json!({"name": "hello.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resourceLink"}),
    );
    let (status, reply) = post(&client, &url, &a, &gzip).await;
    assert_eq!(status, 200, "{reply}");
    for stream in [&mut a_stream, &mut b_stream] {
        next_notification(stream, "notifications/resources/list_changed", SECONDS_5)
            .await
            .expect("resources/list_changed on every GET stream");
    }

    // A subscribes to a resource; the update goes to A only.
    let (_, listed) = post(
        &client,
        &url,
        &a,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
    )
    .await;
    let uri = listed["result"]["resources"][0]["uri"]
        .as_str()
        .expect("a resource")
        .to_owned();
    let subscribe =
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/subscribe", "params": {"uri": uri}});
    let (status, reply) = post(&client, &url, &a, &subscribe).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = post(
        &client,
        &url,
        &a,
        &call(4, "toggle-subscriber-updates", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let update = next_notification(&mut a_stream, "notifications/resources/updated", SECONDS_5)
        .await
        .expect("the subscriber gets the update");
    assert_eq!(update["params"]["uri"], uri.as_str());
    assert!(
        // Both would have been sent in the same instant.
        next_notification(
            &mut b_stream,
            "notifications/resources/updated",
            Duration::from_millis(300)
        )
        .await
        .is_none(),
        "a session that did not subscribe got the update"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_streams_get_keep_alive_comments() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.json");
    std::fs::write(&config, r#"{"keepAliveSeconds": 1}"#).unwrap();
    let bridge = Bridge::start(&["--config", config.to_str().unwrap()], &time_server());
    let mut resp = http()
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !seen.contains(": ping\n\n") {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("a keep-alive within 3 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.starts_with("event: endpoint\ndata: /messages?session_id="),
        "{seen}"
    );
}

/// Tool arguments and results may hold secrets: even at debug level the bridge logs the session
/// and the method, never the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_arguments_or_results() {
    const SECRET: &str = "hunter2-do-not-log";
    let bridge = Bridge::start_env(
        &[],
        &everything(),
        &[("RUST_LOG", "mcp_operator=debug".into())],
    );
    let client = http();
    let url = bridge.url("/mcp");
    let sid = open_session(&client, &url).await;
    let (status, reply) = post(&client, &url, &sid, &echo_call(json!(1), SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["result"]["content"][0]["text"],
        format!("Echo: {SECRET}")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = bridge.log.lock().unwrap();
    assert!(
        log.iter().any(|l| l.contains("tools/call")),
        "the request was logged with its method"
    );
    let leaks: Vec<&String> = log.iter().filter(|l| l.contains(SECRET)).collect();
    assert!(leaks.is_empty(), "the log holds the payload: {leaks:?}");
}
