//! Isolation: many sessions sharing one server process, all using JSON-RPC id 1, each get only
//! their own results — on the streamable-HTTP front and on the legacy SSE front.

#[path = "bridge/common.rs"]
mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const SESSIONS: usize = 20;
const CALLS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_streamable_sessions_with_id_1_get_only_their_own_results() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let sid = open_session(&client, &url).await;
            let mut mismatches = 0;
            for c in 0..CALLS {
                let mine = format!("session-{s}-call-{c}");
                let (status, reply) = post(&client, &url, &sid, &echo_call(json!(1), &mine)).await;
                assert_eq!(status, 200, "{reply}");
                assert_eq!(reply["id"], 1, "the client's own id comes back: {reply}");
                if reply["result"]["content"][0]["text"] != format!("Echo: {mine}") {
                    mismatches += 1;
                }
            }
            mismatches
        }));
    }
    let mut mismatches = 0;
    for t in tasks {
        mismatches += t.await.unwrap();
    }
    assert_eq!(mismatches, 0, "replies crossed between sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sse_sessions_with_id_1_get_only_their_own_results() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let base = bridge.url("");
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let mut sse = SseSession::open(&client, &base).await;
        assert_eq!(sse.send(&client, &initialize_body(json!(1))).await, 202);
        let init = sse
            .next(Duration::from_secs(10))
            .await
            .expect("initialize reply");
        assert_eq!(init["id"], 1);
        assert_eq!(
            init["result"]["serverInfo"]["name"],
            "mcp-servers/everything"
        );
        sessions.push(sse);
    }
    // Every session sends its calls at once, all with id 1.
    let mut sends = Vec::new();
    for (s, sse) in sessions.iter().enumerate() {
        for c in 0..CALLS {
            let client = client.clone();
            let endpoint = sse.endpoint.clone();
            let body = echo_call(json!(1), &format!("sse-{s}-{c}"));
            sends.push(tokio::spawn(async move {
                client
                    .post(endpoint)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
    }
    for send in sends {
        assert_eq!(send.await.unwrap(), 202);
    }
    for (s, sse) in sessions.iter_mut().enumerate() {
        let mut seen = Vec::new();
        while seen.len() < CALLS {
            let msg = sse
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("session {s} got only {} replies", seen.len()));
            if msg.get("id").is_none() {
                continue; // a broadcast notification such as tools/list_changed
            }
            assert_eq!(msg["id"], 1);
            seen.push(
                msg["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        seen.sort();
        let mut expected: Vec<String> = (0..CALLS).map(|c| format!("Echo: sse-{s}-{c}")).collect();
        expected.sort();
        assert_eq!(seen, expected, "session {s} saw someone else's results");
    }
    // And nothing else arrives afterwards: no reply was broadcast.
    for sse in sessions.iter_mut() {
        while let Some(extra) = sse.next(Duration::from_millis(100)).await {
            assert!(
                extra.get("id").is_none(),
                "unexpected extra message {extra}"
            );
        }
    }
}
