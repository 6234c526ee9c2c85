//! No writes once converged: 100 MCPServers, 10 MCPRegistries and 10 MCPRemoteProxies (in 10
//! MCPGroups, using 10 MCPToolConfigs) reconciled 100 times over cause zero API writes, and none
//! when the operator restarts either.
//! (Its own binary: it keeps both cores busy and would slow the timing of others.)

mod controller_support;

use controller_support::*;
use kube::api::Api;
use mcp_operator::api::v1beta1::{MCPGroup, MCPRegistry, MCPRemoteProxy, MCPServer, MCPToolConfig};
use serde_json::json;
use std::time::Duration;

/// Specs of the converged objects, taken in turn: plain, and with maps left empty after their
/// entries were removed (which the API server drops, so they must not read as drift).
fn spec_variant(i: usize) -> serde_json::Value {
    let mut spec = json!({"image": "docker.io/mcp/fetch", "tools": ["fetch"],
        "groupRef": {"name": format!("g{}", i % 10)},
        "toolConfigRef": {"name": format!("tc{}", i % 10)}});
    match i % 3 {
        1 => {
            spec["podTemplateSpec"] =
                json!({"spec": {"nodeSelector": {}, "affinity": {"nodeAffinity": {}}}});
        }
        2 => {
            spec["resourceOverrides"] = json!({"proxyService": {"labels": {}, "annotations": {}},
                "proxyDeployment": {"annotations": {}, "podTemplateMetadataOverrides": {"labels": {}}}});
            spec["resources"] = json!({"limits": {}});
        }
        _ => {}
    }
    spec
}

/// After convergence, 100 MCPServers each reconciled about 100 more times cause no write; nor
/// does a restart of the operator, with caches and memory of its writes gone.
#[tokio::test]
async fn converged_objects_cause_no_writes() {
    let mut h = start(Some(Duration::from_millis(100))).await;
    let c = &h.client.clone();
    for i in 0..10 {
        create(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup", "metadata": {"name": format!("g{i}"), "namespace": "default"}, "spec": {}})).await;
        create(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig", "metadata": {"name": format!("tc{i}"), "namespace": "default"}, "spec": {"toolsFilter": ["fetch"], "toolsOverride": {"fetch": {"description": format!("fetch, variant {i}")}}}})).await;
    }
    for i in 0..10 {
        create(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRegistry", "metadata": {"name": format!("r{i}"), "namespace": "default"},
            "spec": {"configYAML": format!("sources:\n  - name: upstream\n    api:\n      endpoint: https://registry{i}.example.com\nregistries:\n  - name: all\n    sources: [upstream]\n")}})).await;
        create(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy", "metadata": {"name": format!("p{i}"), "namespace": "default"},
            "spec": {"remoteUrl": format!("https://mcp{i}.example.com/mcp"), "groupRef": {"name": format!("g{i}")}, "toolConfigRef": {"name": format!("tc{i}")},
                     "headerForward": {"addPlaintextHeaders": {"X-Team": "a", "X-Env": "prod"}}}})).await;
    }
    for i in 0..100 {
        create_server(c, json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer", "metadata": {"name": format!("s{i}"), "namespace": "default"}, "spec": spec_variant(i)})).await;
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
    let groups: Api<MCPGroup> = Api::namespaced(c.clone(), "default");
    eventually(
        "every group counts its 10 servers and its proxy",
        || async {
            let list = groups.list(&Default::default()).await.ok()?;
            list.items
                .iter()
                .all(|g| {
                    let s = g.status.as_ref();
                    s.and_then(|s| s.server_count) == Some(10)
                        && s.and_then(|s| s.remote_proxy_count) == Some(1)
                })
                .then_some(())
        },
    )
    .await;
    let proxies: Api<MCPRemoteProxy> = Api::namespaced(c.clone(), "default");
    eventually("every proxy has its url", || async {
        let list = proxies.list(&Default::default()).await.ok()?;
        (list.items.len() == 10
            && list
                .items
                .iter()
                .all(|p| p.status.as_ref().and_then(|s| s.url.as_ref()).is_some()))
        .then_some(())
    })
    .await;
    let registries: Api<MCPRegistry> = Api::namespaced(c.clone(), "default");
    eventually("every registry has its status", || async {
        let list = registries.list(&Default::default()).await.ok()?;
        (list.items.len() == 10
            && list.items.iter().all(|r| {
                r.status.as_ref().and_then(|s| s.observed_generation) == r.metadata.generation
            }))
        .then_some(())
    })
    .await;
    let configs: Api<MCPToolConfig> = Api::namespaced(c.clone(), "default");
    eventually("every tool config has its hash", || async {
        let list = configs.list(&Default::default()).await.ok()?;
        list.items
            .iter()
            .all(|t| {
                t.status
                    .as_ref()
                    .and_then(|s| s.config_hash.as_ref())
                    .is_some()
            })
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
    // The other kinds' resyncs came along (same period, fewer objects).
    for kind in ["MCPGroup", "MCPToolConfig", "MCPRegistry", "MCPRemoteProxy"] {
        assert!(
            h.metrics.successful_reconciles(kind) >= 10 * 50,
            "{kind}: {} reconciles",
            h.metrics.successful_reconciles(kind)
        );
    }
    let resyncs = h.metrics.successful_reconciles("MCPServer") - before;
    assert_no_writes(&h, "after convergence");
    eprintln!("{resyncs} reconciles of 100 converged MCPServers, 0 writes");

    h.restart_controller();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let restarted = |kind: &str, n: u64| h.metrics.successful_reconciles(kind) >= n;
    while !(h.metrics.successful_reconciles("MCPServer") >= 100 * 5
        && restarted("MCPRegistry", 10 * 5)
        && restarted("MCPRemoteProxy", 10 * 5))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "restarted controller too slow"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_no_writes(&h, "after a restart");
}

async fn create(c: &kube::Client, obj: serde_json::Value) {
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        c.clone(),
        "default",
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(
                "toolhive.stacklok.dev",
                "v1beta1",
                obj["kind"].as_str().unwrap(),
            ),
            &match obj["kind"].as_str().unwrap().to_lowercase().as_str() {
                "mcpregistry" => "mcpregistries".to_string(),
                "mcpremoteproxy" => "mcpremoteproxies".to_string(),
                other => format!("{other}s"),
            },
        ),
    );
    api.create(&Default::default(), &serde_json::from_value(obj).unwrap())
        .await
        .unwrap();
}

/// Fails naming the first writes (Events aside) the server received since the last clear.
fn assert_no_writes(h: &Harness, when: &str) {
    let writes: Vec<String> = h
        .server
        .requests()
        .into_iter()
        .filter(|r| r.verb.is_write() && r.resource != "events")
        .map(|r| format!("{:?} {}", r.verb, r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "{} writes {when}: {:?}",
        writes.len(),
        &writes[..writes.len().min(10)]
    );
}
