//! Workloads as the group and tool-config controllers see them: identity and references only.
//!
//! The MCPServer controller already caches whole MCPServers. The controllers that only ask
//! "who names this group / this config" watch the same objects decoded into
//! [`WorkloadRefs`], which keeps the metadata that identifies an object and its references
//! and never allocates the rest (the decoder skips it). A second and third full copy cost
//! +85 MiB at 10,000 MCPServers; this costs a few hundred bytes an object.

use crate::api::shared::NameRef;
use crate::api::telemetry::TelemetryConfigRef;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::core::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::marker::PhantomData;
use tokio::sync::mpsc;

/// Which kind a [`WorkloadRefs`] is read from.
pub trait WorkloadKind: Clone + std::fmt::Debug + Send + Sync + 'static {
    const KIND: &'static str;
    const PLURAL: &'static str;
}

#[derive(Clone, Debug)]
pub struct Server;
impl WorkloadKind for Server {
    const KIND: &'static str = "MCPServer";
    const PLURAL: &'static str = "mcpservers";
}

#[derive(Clone, Debug)]
pub struct Proxy;
impl WorkloadKind for Proxy {
    const KIND: &'static str = "MCPRemoteProxy";
    const PLURAL: &'static str = "mcpremoteproxies";
}

#[derive(Clone, Debug)]
pub struct Entry;
impl WorkloadKind for Entry {
    const KIND: &'static str = "MCPServerEntry";
    const PLURAL: &'static str = "mcpserverentries";
}

/// An MCPServer or MCPRemoteProxy reduced to what identifies it and what it references.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(bound = "")]
pub struct WorkloadRefs<K: WorkloadKind> {
    #[serde(deserialize_with = "identity")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: References,
    #[serde(skip)]
    kind: PhantomData<K>,
}

/// The references the group and shared-config controllers follow.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct References {
    pub group_ref: Option<NameRef>,
    pub tool_config_ref: Option<NameRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry_config_ref: Option<TelemetryConfigRef>,
    /// Only the name of `oidcConfigRef`: the audience and scopes are the workload's business.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_config_ref: Option<NameOnly>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz_config_ref: Option<NameRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_auth_config_ref: Option<NameRef>,
    /// What a VirtualMCPServer needs to reach a member through its Service: the transport,
    /// MCPServer's `proxyMode` and the Service's port (three scalars, not the whole spec).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_port: Option<i32>,
}

/// A reference read for its name alone (the decoder skips its other fields).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct NameOnly {
    pub name: String,
}

/// The identity part of the metadata: a watch cache needs nothing else of it.
fn identity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Identity {
        name: Option<String>,
        namespace: Option<String>,
        uid: Option<String>,
        resource_version: Option<String>,
    }
    let i = Identity::deserialize(d)?;
    Ok(ObjectMeta {
        name: i.name,
        namespace: i.namespace,
        uid: i.uid,
        resource_version: i.resource_version,
        ..ObjectMeta::default()
    })
}

impl<K: WorkloadKind> Resource for WorkloadRefs<K> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        K::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        crate::api::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        crate::api::STORAGE_VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        K::PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

pub type ServerRefs = WorkloadRefs<Server>;
pub type ProxyRefs = WorkloadRefs<Proxy>;
pub type EntryRefs = WorkloadRefs<Entry>;

/// A workload kind's changes as a controller that follows references takes them.
pub type RefStream<K> = BoxStream<'static, Result<WorkloadRefs<K>, watcher::Error>>;

/// One watch of a workload kind's references for every controller that follows them (the
/// group controller and each config kind's): one cache and one decode of every event, however
/// many controllers read it. Each watch of its own cost a cache of every MCPServer and a decode
/// of each of its events per controller.
pub struct SharedRefs<K: WorkloadKind> {
    store: Store<WorkloadRefs<K>>,
    source: RefStream<K>,
    subscribers: Vec<mpsc::Sender<WorkloadRefs<K>>>,
}

/// How many changes a subscriber may fall behind before the watch waits for it.
const SUBSCRIBER_BUFFER: usize = 1024;

impl<K: WorkloadKind> SharedRefs<K> {
    /// Sets up the watch of `namespace` (all when `None`); nothing is read until [`Self::run`].
    pub fn watch(client: &Client, namespace: &Option<String>) -> Self {
        let api: Api<WorkloadRefs<K>> = match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let (store, writer) = reflector::store();
        let source = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .touched_objects()
            .boxed();
        SharedRefs {
            store,
            source,
            subscribers: Vec::new(),
        }
    }

    /// The shared cache, and a stream of every object touched (deletions included) from now on.
    pub fn subscribe(&mut self) -> (Store<WorkloadRefs<K>>, RefStream<K>) {
        let (tx, mut rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers.push(tx);
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok);
        (self.store.clone(), stream.boxed())
    }

    /// Keeps the cache fed and hands each change to every subscriber, in order; a subscriber
    /// that is gone is skipped. Watch errors are retried with backoff and logged here.
    pub fn run(self) -> BoxFuture<'static, ()> {
        let SharedRefs {
            mut source,
            subscribers,
            ..
        } = self;
        async move {
            while let Some(change) = source.next().await {
                match change {
                    Ok(obj) => {
                        for tx in &subscribers {
                            let _ = tx.send(obj.clone()).await;
                        }
                    }
                    Err(e) => tracing::warn!(kind = K::KIND, error = %e, "watch error"),
                }
            }
        }
        .boxed()
    }
}

/// The shared reference watches of the group members' kinds: MCPServer, MCPRemoteProxy and
/// MCPServerEntry.
pub struct Workloads {
    pub servers: SharedRefs<Server>,
    pub proxies: SharedRefs<Proxy>,
    pub entries: SharedRefs<Entry>,
}

/// One subscriber's view of [`Workloads`]. A subscriber drops the streams it does not follow
/// (a dropped stream is skipped, never waited for).
pub struct Subscription {
    pub servers: (Store<ServerRefs>, RefStream<Server>),
    pub proxies: (Store<ProxyRefs>, RefStream<Proxy>),
    pub entries: (Store<EntryRefs>, RefStream<Entry>),
}

impl Workloads {
    pub fn watch(client: &Client, namespace: &Option<String>) -> Self {
        Workloads {
            servers: SharedRefs::watch(client, namespace),
            proxies: SharedRefs::watch(client, namespace),
            entries: SharedRefs::watch(client, namespace),
        }
    }

    pub fn subscribe(&mut self) -> Subscription {
        Subscription {
            servers: self.servers.subscribe(),
            proxies: self.proxies.subscribe(),
            entries: self.entries.subscribe(),
        }
    }

    /// Runs the three watches; see [`SharedRefs::run`].
    pub fn run(self) -> BoxFuture<'static, ()> {
        futures::future::join3(self.servers.run(), self.proxies.run(), self.entries.run())
            .map(|_| ())
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_identity_and_references_are_kept() {
        let s: ServerRefs = serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                         "labels": {"x": "y"}, "annotations": {"big": "x".repeat(1000)},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"image": "docker.io/mcp/fetch", "env": [{"name": "A", "value": "b"}],
                     "groupRef": {"name": "g"}, "toolConfigRef": {"name": "t"}},
            "status": {"phase": "Ready"},
        }))
        .unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["metadata"],
            json!({"name": "a", "namespace": "ns", "uid": "u", "resourceVersion": "7"})
        );
        assert_eq!(
            v["spec"],
            json!({"groupRef": {"name": "g"}, "toolConfigRef": {"name": "t"}})
        );
        assert_eq!(ServerRefs::plural(&()), "mcpservers");
        assert_eq!(ProxyRefs::kind(&()), "MCPRemoteProxy");
        let p: ProxyRefs = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(p.spec.group_ref.is_none());
    }
}
