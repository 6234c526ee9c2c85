//! No writes once converged: 100 MCPServers reconciled 100 times over cause zero API writes.
//! (Its own binary: it keeps both cores busy and would slow the timing of others.)

mod controller_support;

use controller_support::*;
use kube::api::Api;
use mcp_operator::api::v1beta1::MCPServer;
use serde_json::json;
use std::time::Duration;

/// After convergence, 100 MCPServers each reconciled about 100 more times cause no write.
#[tokio::test]
async fn converged_objects_cause_no_writes() {
    let h = start(Some(Duration::from_millis(100))).await;
    let c = &h.client;
    for i in 0..100 {
        create_server(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": format!("s{i}"), "namespace": "default"}, "spec": {"image": "docker.io/mcp/fetch", "tools": ["fetch"]}})).await;
    }
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), "default");
    eventually("all converged", || async {
        let list = servers.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .all(|s| s.status.as_ref().and_then(|s| s.url.as_ref()).is_some())
            .then_some(())
    })
    .await;
    // Let in-flight applies and their watch events settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.server.clear_requests();
    let before = h.metrics.successful_reconciles("MCPServer");
    // 100 ms resync: wait until the 100 objects were reconciled 100 times over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while h.metrics.successful_reconciles("MCPServer") - before < 100 * 100 {
        assert!(tokio::time::Instant::now() < deadline, "resyncs too slow");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resyncs = h.metrics.successful_reconciles("MCPServer") - before;
    let writes: Vec<String> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.verb.is_write() && r.resource != "events")
        .map(|r| format!("{:?} {}", r.verb, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "{} writes after convergence: {:?}",
        writes.len(),
        &writes[..writes.len().min(10)]
    );
    eprintln!("{resyncs} reconciles of 100 converged MCPServers, 0 writes");
}
