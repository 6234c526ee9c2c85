//! The MCPGroup reconciler: who is in the group. A group has no children; its status lists the
//! MCPServers, MCPRemoteProxies and MCPServerEntries whose `spec.groupRef` names it.
//!
//! Deleting a group never touches its members: they keep running, and their own controllers
//! (which watch groups) report `GroupRefValidated=False`. So no finalizer is needed here.

use super::frame::{self, Error, Frame, Settings};
use super::mcpserver::namespaced_or_all;
use super::metrics::ControllerMetrics;
use super::slim::{EntryRefs, ProxyRefs, ServerRefs, Subscription};
use crate::api::shared::NameRef;
use crate::api::v1beta1::MCPGroup;
use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use std::sync::Arc;

pub struct Context {
    frame: Frame<MCPGroup>,
    groups: Store<MCPGroup>,
    servers: Store<ServerRefs>,
    proxies: Store<ProxyRefs>,
    entries: Store<EntryRefs>,
}

/// Runs the MCPGroup controller over `namespace` (all when `None`) until dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    workloads: Subscription,
) {
    let frame = Frame::<MCPGroup>::new(client.clone(), settings, metrics);
    let all = watcher::Config::default();
    let Subscription {
        servers: (servers, server_stream),
        proxies: (proxies, proxy_stream),
        entries: (entries, entry_stream),
    } = workloads;
    let (groups, group_writer) = reflector::store::<MCPGroup>();
    let group_stream = watcher(namespaced_or_all::<MCPGroup>(&client, &namespace), all)
        .default_backoff()
        .modify(super::frame::trim_cached)
        .reflect(group_writer)
        .applied_objects();
    let controller = Controller::for_stream(group_stream, groups.clone())
        .with_config(frame.settings.controller_config());
    let ctx = Arc::new(Context {
        frame,
        groups: groups.clone(),
        servers,
        proxies,
        entries,
    });
    let (for_servers, for_proxies, for_entries) = (groups.clone(), groups.clone(), groups);
    controller
        .watches_stream(server_stream, move |s: ServerRefs| {
            groups_touched(&for_servers, &s, s.spec.group_ref.as_ref(), "servers")
        })
        .watches_stream(proxy_stream, move |p: ProxyRefs| {
            groups_touched(&for_proxies, &p, p.spec.group_ref.as_ref(), "remoteProxies")
        })
        .watches_stream(entry_stream, move |e: EntryRefs| {
            groups_touched(&for_entries, &e, e.spec.group_ref.as_ref(), "entries")
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The groups a member's event concerns: the one it names now, and any whose status still
/// lists it (it moved away, dropped its reference, or was deleted).
fn groups_touched<M: Resource>(
    groups: &Store<MCPGroup>,
    member: &M,
    group_ref: Option<&NameRef>,
    listed_in: &str,
) -> Vec<ObjectRef<MCPGroup>> {
    let ns = member.meta().namespace.clone();
    let name = member.meta().name.clone().unwrap_or_default();
    let mut touched = frame::referencing(groups, &ns, |g: &MCPGroup| {
        let status = serde_json::to_value(&g.status).unwrap_or(Value::Null);
        status[listed_in]
            .as_array()
            .is_some_and(|l| l.iter().any(|n| n.as_str() == Some(name.as_str())))
    });
    if let (Some(r), Some(ns)) = (group_ref, &ns) {
        let named = ObjectRef::new(&r.name).within(ns);
        if !touched.contains(&named) {
            touched.push(named);
        }
    }
    touched
}

pub async fn reconcile(group: Arc<MCPGroup>, ctx: Arc<Context>) -> Result<Action, Error> {
    let managed = ctx.groups.len();
    ctx.frame
        .observe(&group, managed, reconcile_inner(&group, &ctx))
        .await
}

async fn reconcile_inner(group: &MCPGroup, ctx: &Context) -> Result<Action, Error> {
    let skips_before = ctx.frame.lag_skips();
    if group.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = group.namespace().ok_or(Error::NoNamespace)?;
    let listed = tokio::time::timeout(frame::STORE_READY_WAIT, async {
        let _ = ctx.servers.wait_until_ready().await;
        let _ = ctx.proxies.wait_until_ready().await;
        let _ = ctx.entries.wait_until_ready().await;
    })
    .await
    .is_ok();
    let name = group.name_any();
    let servers = members(&ctx.servers, &ns, |s| s.spec.group_ref.as_ref(), &name);
    let proxies = members(&ctx.proxies, &ns, |p| p.spec.group_ref.as_ref(), &name);
    let entries = members(&ctx.entries, &ns, |e| e.spec.group_ref.as_ref(), &name);
    let found = Members {
        servers,
        proxies,
        entries,
    };
    let status = status_for(group, listed.then_some(found));
    ctx.frame.write_status(group, status).await?;
    Ok(ctx.frame.settled(skips_before))
}

/// The sorted names of the objects in `ns` whose group reference names `group`.
fn members<M>(
    store: &Store<M>,
    ns: &str,
    group_ref: impl Fn(&M) -> Option<&NameRef>,
    group: &str,
) -> Vec<String>
where
    M: Resource<DynamicType = ()> + Clone,
{
    let mut names: Vec<String> = store
        .state()
        .iter()
        .filter(|m| m.meta().namespace.as_deref() == Some(ns))
        .filter(|m| group_ref(m).is_some_and(|r| r.name == group))
        .filter_map(|m| m.meta().name.clone())
        .collect();
    names.sort();
    names
}

/// The sorted names of a group's members, by kind.
#[derive(Debug, Default)]
struct Members {
    servers: Vec<String>,
    proxies: Vec<String>,
    entries: Vec<String>,
}

/// The group's status from its members (`None`: the member caches could not be listed).
fn status_for(group: &MCPGroup, members: Option<Members>) -> Value {
    let old = group.status.clone().unwrap_or_default();
    let generation = group.meta().generation;
    let Some(Members {
        servers,
        proxies,
        entries,
    }) = members
    else {
        // What was counted before stays: an outage of our watch is not an empty group.
        let checked = frame::condition(
            old.conditions.as_deref(),
            generation,
            "MCPServersChecked",
            false,
            "ListMCPServersCheckFailed",
            "the MCPServers, MCPRemoteProxies and MCPServerEntries of the namespace could not be listed yet".into(),
        );
        let mut status = serde_json::to_value(&old).unwrap_or_else(|_| json!({}));
        status["phase"] = json!("Failed");
        status["conditions"] = json!([checked]);
        return status;
    };
    let checked = frame::condition(
        old.conditions.as_deref(),
        generation,
        "MCPServersChecked",
        true,
        "ListMCPServersCheckSucceeded",
        format!(
            "{} MCPServer(s), {} MCPRemoteProxy(ies) and {} MCPServerEntry(ies) name this group",
            servers.len(),
            proxies.len(),
            entries.len()
        ),
    );
    json!({
        "observedGeneration": generation,
        "phase": "Ready",
        "serverCount": servers.len(),
        "servers": servers,
        "remoteProxyCount": proxies.len(),
        "remoteProxies": proxies,
        "entryCount": entries.len(),
        "entries": entries,
        "conditions": [checked],
    })
}

fn error_policy(group: Arc<MCPGroup>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.frame.backoff(&group, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(status: Value) -> MCPGroup {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPGroup",
            "metadata": {"name": "g", "namespace": "ns", "generation": 3},
            "spec": {}, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn status_counts_members_and_is_stable() {
        let g = group(json!({}));
        let found = || Members {
            servers: vec!["a".into(), "b".into()],
            proxies: vec!["p".into()],
            entries: vec!["e".into()],
        };
        let s = status_for(&g, Some(found()));
        assert_eq!(s["serverCount"], 2);
        assert_eq!(s["servers"], json!(["a", "b"]));
        assert_eq!(s["remoteProxyCount"], 1);
        assert_eq!(s["entryCount"], 1);
        assert_eq!(s["entries"], json!(["e"]));
        assert_eq!(s["phase"], "Ready");
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["conditions"][0]["reason"], "ListMCPServersCheckSucceeded");
        // Computed again over its own output: the same status (no write at resync).
        let again = status_for(&group(s.clone()), Some(found()));
        assert_eq!(again, s);
    }

    #[test]
    fn unlisted_caches_keep_the_counts_and_say_so() {
        let g = group(json!({"serverCount": 4, "servers": ["a", "b", "c", "d"], "phase": "Ready"}));
        let s = status_for(&g, None);
        assert_eq!(s["serverCount"], 4);
        assert_eq!(s["phase"], "Failed");
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["reason"], "ListMCPServersCheckFailed");
    }
}
