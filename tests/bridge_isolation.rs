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

fn rpc(id: serde_json::Value, method: &str, params: serde_json::Value) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A task-augmented call of server-everything's task tool; returns the task's id.
fn research(id: i64) -> serde_json::Value {
    rpc(
        json!(id),
        "tools/call",
        json!({"name": "simulate-research-query", "arguments": {"topic": "bridges"},
               "task": {"ttl": 120000}}),
    )
}

/// The next message with an id on a legacy stream (skipping broadcast notifications).
async fn next_reply(sse: &mut SseSession) -> serde_json::Value {
    loop {
        let msg = sse.next(Duration::from_secs(10)).await.expect("a reply");
        if msg.get("id").is_some() {
            return msg;
        }
    }
}

fn task_ids(list: &serde_json::Value) -> Vec<String> {
    list["result"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("a tasks/list result: {list}"))
        .iter()
        .map(|t| t["taskId"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 17: tasks belong to the session that created them. Another session (on either front)
/// does not see them in `tasks/list`, and `tasks/get`, `tasks/result` and `tasks/cancel` of
/// their ids are answered as for unknown tasks; the owner keeps full use of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_seen_and_used_only_by_the_session_that_created_them() {
    let bridge = Bridge::start(&[], &everything());
    let client = http();
    let url = bridge.url("/mcp");
    let a = open_session(&client, &url).await;
    let b = open_session(&client, &url).await;
    let mut legacy = SseSession::open(&client, &bridge.url("")).await;
    assert_eq!(legacy.send(&client, &initialize_body(json!(0))).await, 202);
    next_reply(&mut legacy).await;

    let (status, created) = post(&client, &url, &a, &research(1)).await;
    assert_eq!(status, 200, "{created}");
    let a_task = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a CreateTaskResult: {created}"))
        .to_owned();
    assert_eq!(legacy.send(&client, &research(2)).await, 202);
    let created = next_reply(&mut legacy).await;
    let legacy_task = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();

    // B, a stranger: an empty list, and every use of A's task id is "not found".
    let (_, list) = post(&client, &url, &b, &rpc(json!(3), "tasks/list", json!({}))).await;
    assert_eq!(task_ids(&list), Vec::<String>::new(), "{list}");
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let (status, reply) = post(
            &client,
            &url,
            &b,
            &rpc(json!(4), method, json!({"taskId": a_task})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(reply["error"]["code"], -32602, "{method}: {reply}");
        assert_eq!(reply["id"], 4);
        // The legacy session too.
        assert_eq!(
            legacy
                .send(&client, &rpc(json!(5), method, json!({"taskId": a_task})))
                .await,
            202
        );
        let reply = next_reply(&mut legacy).await;
        assert_eq!(reply["error"]["code"], -32602, "legacy {method}: {reply}");
    }
    assert_eq!(
        legacy
            .send(&client, &rpc(json!(6), "tasks/list", json!({})))
            .await,
        202
    );
    assert_eq!(
        task_ids(&next_reply(&mut legacy).await),
        std::slice::from_ref(&legacy_task)
    );

    // A sees and uses its own task, and only it.
    let (_, list) = post(&client, &url, &a, &rpc(json!(7), "tasks/list", json!({}))).await;
    assert_eq!(task_ids(&list), std::slice::from_ref(&a_task), "{list}");
    let (_, got) = post(
        &client,
        &url,
        &a,
        &rpc(json!(8), "tasks/get", json!({"taskId": a_task})),
    )
    .await;
    assert_eq!(got["result"]["taskId"], a_task.as_str(), "{got}");
    let (_, cancelled) = post(
        &client,
        &url,
        &a,
        &rpc(json!(9), "tasks/cancel", json!({"taskId": a_task})),
    )
    .await;
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    // The legacy session's own task is its own: still running.
    assert_eq!(
        legacy
            .send(
                &client,
                &rpc(json!(10), "tasks/get", json!({"taskId": legacy_task}))
            )
            .await,
        202
    );
    let got = next_reply(&mut legacy).await;
    assert_eq!(got["result"]["status"], "working", "{got}");
}
