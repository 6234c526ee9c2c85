//! MCPGroup, MCPToolConfig and MCPTelemetryConfig against the in-memory API server: group counts
//! follow members being added, moved and deleted; a referenced config's deletion is held, says
//! by whom, and completes once nothing references it.

mod controller_support;

use controller_support::*;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use mcp_operator::api::v1beta1::{
    MCPGroup, MCPRemoteProxy, MCPServer, MCPTelemetryConfig, MCPToolConfig,
};
use serde_json::{json, Value};

fn server(name: &str, extra: Value) -> Value {
    let mut obj = seed("mcpserver-fetch.yaml");
    obj["metadata"]["name"] = json!(name);
    for (k, v) in extra.as_object().unwrap() {
        obj["spec"][k] = v.clone();
    }
    obj
}

fn group(name: &str) -> Value {
    json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup",
           "metadata": {"name": name, "namespace": "default"}, "spec": {}})
}

/// Waits until the group's status lists exactly these servers and proxies.
async fn group_lists(client: &Client, name: &str, servers: &[&str], proxies: &[&str]) {
    let what = format!("MCPGroup {name} lists servers {servers:?} and proxies {proxies:?}");
    eventually(&what, || async {
        let g: MCPGroup = get(client, "default", name).await?;
        let s = g.status?;
        let listed = |l: Option<Vec<String>>| l.unwrap_or_default();
        let ok = listed(s.servers) == servers
            && s.server_count == Some(servers.len() as i32)
            && listed(s.remote_proxies) == proxies
            && s.remote_proxy_count == Some(proxies.len() as i32)
            && s.phase.as_deref() == Some("Ready")
            && s.conditions.unwrap_or_default().iter().any(|c| {
                c.type_ == "MCPServersChecked"
                    && c.status == "True"
                    && c.reason == "ListMCPServersCheckSucceeded"
            });
        ok.then_some(())
    })
    .await;
}

async fn set_group(client: &Client, server: &str, group: Value) {
    Api::<MCPServer>::namespaced(client.clone(), "default")
        .patch(
            server,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"groupRef": group}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn group_counts_follow_members_added_moved_and_deleted() {
    let h = start(None).await;
    let c = &h.client;
    create::<MCPGroup>(c, group("research")).await;
    create::<MCPGroup>(c, group("ops")).await;
    group_lists(c, "research", &[], &[]).await;

    create_server(c, server("b", json!({"groupRef": {"name": "research"}}))).await;
    create_server(c, server("a", json!({"groupRef": {"name": "research"}}))).await;
    create_server(c, server("loner", json!({}))).await;
    create::<MCPRemoteProxy>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
               "metadata": {"name": "hosted", "namespace": "default"},
               "spec": {"remoteUrl": "https://mcp.example.com/mcp", "groupRef": {"name": "research"}}}),
    )
    .await;
    group_lists(c, "research", &["a", "b"], &["hosted"]).await;

    // Moved: leaves one group, joins the other.
    set_group(c, "b", json!({"name": "ops"})).await;
    group_lists(c, "research", &["a"], &["hosted"]).await;
    group_lists(c, "ops", &["b"], &[]).await;

    // Dropped reference, deleted member, deleted proxy.
    set_group(c, "b", Value::Null).await;
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), "default");
    servers.delete("a", &DeleteParams::default()).await.unwrap();
    Api::<MCPRemoteProxy>::namespaced(c.clone(), "default")
        .delete("hosted", &DeleteParams::default())
        .await
        .unwrap();
    group_lists(c, "ops", &[], &[]).await;
    group_lists(c, "research", &[], &[]).await;

    // Deleting a group keeps its members and tells them, servers and proxies alike.
    set_group(c, "loner", json!({"name": "ops"})).await;
    create::<MCPRemoteProxy>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
               "metadata": {"name": "edge", "namespace": "default"},
               "spec": {"remoteUrl": "https://edge.example.com/mcp", "groupRef": {"name": "ops"}}}),
    )
    .await;
    group_lists(c, "ops", &["loner"], &["edge"]).await;
    proxy_group_condition(c, "edge", "True", "GroupRefIsValid").await;
    Api::<MCPGroup>::namespaced(c.clone(), "default")
        .delete("ops", &DeleteParams::default())
        .await
        .unwrap();
    let (_, gone) = wait_condition(c, "loner", "GroupRefValidated", |c| c.status == "False").await;
    assert_eq!(gone.reason, "GroupRefNotFound");
    assert!(servers.get_opt("loner").await.unwrap().is_some());
    proxy_group_condition(c, "edge", "False", "GroupRefNotFound").await;
}

async fn proxy_group_condition(client: &Client, name: &str, status: &str, reason: &str) {
    eventually(
        &format!("{name}: GroupRefValidated={status} {reason}"),
        || async {
            let p: MCPRemoteProxy = get(client, "default", name).await?;
            p.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "GroupRefValidated" && c.status == status && c.reason == reason)
                .then_some(())
        },
    )
    .await;
}

fn tool_config(name: &str) -> Value {
    json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"toolsFilter": ["fetch"]}})
}

fn condition<'a>(
    tc: &'a MCPToolConfig,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    tc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

#[tokio::test]
async fn tool_config_deletion_is_held_while_referenced_and_completes_after() {
    let h = start(None).await;
    let c = &h.client;
    create::<MCPToolConfig>(c, tool_config("shared")).await;
    create::<MCPToolConfig>(c, tool_config("unused")).await;
    create_server(
        c,
        server("s1", json!({"toolConfigRef": {"name": "shared"}})),
    )
    .await;
    create_server(
        c,
        server("s2", json!({"toolConfigRef": {"name": "shared"}})),
    )
    .await;
    create::<MCPRemoteProxy>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
               "metadata": {"name": "px", "namespace": "default"},
               "spec": {"remoteUrl": "https://px.example.com/mcp", "toolConfigRef": {"name": "shared"}}}),
    )
    .await;

    let configs: Api<MCPToolConfig> = Api::namespaced(c.clone(), "default");
    let tc = eventually("shared: hash, finalizer and both users", || async {
        let tc: MCPToolConfig = get(c, "default", "shared").await?;
        let referenced = condition(&tc, "Referenced")?;
        (referenced.message == "used by MCPRemoteProxy/px, MCPServer/s1, MCPServer/s2"
            && tc.status.as_ref()?.config_hash.is_some()
            && condition(&tc, "Valid")?.status == "True")
            .then_some(tc)
    })
    .await;
    assert!(tc
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"toolhive.stacklok.dev/toolconfig-finalizer".to_string()));
    // The users report the hash their pods were rolled out with.
    let hash = tc.status.unwrap().config_hash.unwrap();
    eventually("s1 copies the configHash", || async {
        let s: MCPServer = get(c, "default", "s1").await?;
        (s.status?.tool_config_hash? == hash).then_some(())
    })
    .await;
    eventually("px copies the configHash", || async {
        let p: MCPRemoteProxy = get(c, "default", "px").await?;
        (p.status?.tool_config_hash? == hash).then_some(())
    })
    .await;

    // An unreferenced config goes at once.
    configs
        .delete("unused", &DeleteParams::default())
        .await
        .unwrap();
    eventually("unused is gone", || async {
        get::<MCPToolConfig>(c, "default", "unused")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    configs
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    eventually("shared: deletion held, naming its users", || async {
        let tc: MCPToolConfig = get(c, "default", "shared").await?;
        let held = condition(&tc, "DeletionBlocked")?;
        (tc.metadata.deletion_timestamp.is_some()
            && held.status == "True"
            && held.reason == "ReferencedByWorkloads"
            && held
                .message
                .contains("MCPRemoteProxy/px, MCPServer/s1, MCPServer/s2"))
        .then_some(())
    })
    .await;

    // One user drops the reference, the other is deleted: the deletion completes.
    let servers: Api<MCPServer> = Api::namespaced(c.clone(), "default");
    servers
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"toolConfigRef": null}})),
        )
        .await
        .unwrap();
    eventually("shared: held by s2 only", || async {
        let tc: MCPToolConfig = get(c, "default", "shared").await?;
        let held = condition(&tc, "DeletionBlocked")?;
        held.message
            .ends_with("still used by MCPRemoteProxy/px, MCPServer/s2")
            .then_some(())
    })
    .await;
    servers
        .delete("s2", &DeleteParams::default())
        .await
        .unwrap();
    Api::<MCPRemoteProxy>::namespaced(c.clone(), "default")
        .delete("px", &DeleteParams::default())
        .await
        .unwrap();
    eventually("shared is gone", || async {
        get::<MCPToolConfig>(c, "default", "shared")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}

fn telemetry_condition<'a>(
    t: &'a MCPTelemetryConfig,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    t.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// MCPTelemetryConfig is a shared config like MCPToolConfig: Valid, configHash (which its users
/// copy), Referenced, and a deletion held while a workload names it. A config admission would
/// refuse (written while the webhook was off) is reported, not published as usable.
#[tokio::test]
async fn telemetry_config_is_validated_and_its_deletion_held_while_referenced() {
    let h = start(None).await;
    let c = &h.client;
    let config = |name: &str, otel: Value| {
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPTelemetryConfig",
               "metadata": {"name": name, "namespace": "default"}, "spec": {"openTelemetry": otel}})
    };
    create::<MCPTelemetryConfig>(
        c,
        config(
            "otel",
            json!({"endpoint": "collector:4318", "tracing": {"enabled": true}}),
        ),
    )
    .await;
    create::<MCPTelemetryConfig>(c, config("silent", json!({"endpoint": "collector:4318"}))).await;
    create_server(
        c,
        server("s1", json!({"telemetryConfigRef": {"name": "otel"}})),
    )
    .await;
    create::<MCPRemoteProxy>(
        c,
        json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRemoteProxy",
               "metadata": {"name": "px", "namespace": "default"},
               "spec": {"remoteUrl": "https://px.example.com/mcp", "telemetryConfigRef": {"name": "otel"}}}),
    )
    .await;

    let t = eventually("otel: valid, hashed, referenced and held", || async {
        let t: MCPTelemetryConfig = get(c, "default", "otel").await?;
        let referenced = telemetry_condition(&t, "Referenced")?;
        (referenced.message == "used by MCPRemoteProxy/px, MCPServer/s1"
            && t.status.as_ref()?.config_hash.is_some()
            && telemetry_condition(&t, "Valid")?.status == "True")
            .then_some(t)
    })
    .await;
    assert!(t
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"mcptelemetryconfig.toolhive.stacklok.dev/finalizer".to_string()));
    let hash = t.status.unwrap().config_hash.unwrap();
    eventually("s1 copies the configHash", || async {
        let s: MCPServer = get(c, "default", "s1").await?;
        (s.status?.telemetry_config_hash? == hash).then_some(())
    })
    .await;
    let silent = eventually("silent: Valid=False", || async {
        let t: MCPTelemetryConfig = get(c, "default", "silent").await?;
        let valid = telemetry_condition(&t, "Valid")?.clone();
        (valid.status == "False").then_some(valid)
    })
    .await;
    assert_eq!(silent.reason, "ValidationFailed");
    assert!(
        silent.message.contains("spec.openTelemetry.endpoint"),
        "{}",
        silent.message
    );

    let configs: Api<MCPTelemetryConfig> = Api::namespaced(c.clone(), "default");
    configs
        .delete("otel", &DeleteParams::default())
        .await
        .unwrap();
    eventually("otel: deletion held, naming its users", || async {
        let t: MCPTelemetryConfig = get(c, "default", "otel").await?;
        let held = telemetry_condition(&t, "DeletionBlocked")?;
        (t.metadata.deletion_timestamp.is_some()
            && held.reason == "ReferencedByWorkloads"
            && held.message.contains("MCPRemoteProxy/px, MCPServer/s1"))
        .then_some(())
    })
    .await;
    Api::<MCPServer>::namespaced(c.clone(), "default")
        .patch(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"telemetryConfigRef": null}})),
        )
        .await
        .unwrap();
    Api::<MCPRemoteProxy>::namespaced(c.clone(), "default")
        .delete("px", &DeleteParams::default())
        .await
        .unwrap();
    eventually("otel is gone", || async {
        get::<MCPTelemetryConfig>(c, "default", "otel")
            .await
            .is_none()
            .then_some(())
    })
    .await;
}
