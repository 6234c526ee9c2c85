//! The "etcd": objects by resource and key, one global resourceVersion counter and the event log
//! watches replay from.

use crate::resources::{self, ResKey, ResourceInfo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many events the log keeps before the oldest are compacted away (a watch resuming from a
/// compacted resourceVersion gets 410 Gone, as with etcd compaction).
pub const LOG_CAPACITY: usize = 50_000;

pub const CRD_RES: (&str, &str) = ("apiextensions.k8s.io", "customresourcedefinitions");
pub const NS_RES: (&str, &str) = ("", "namespaces");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change, as stored (objects at their storage version).
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub res: ResKey,
    pub namespace: String,
    pub kind: EventKind,
    pub obj: Value,
    /// The object before the change (for selector transitions).
    pub prev: Option<Value>,
}

/// What kind of request a [`RequestRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET of one object (or of a subresource).
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (any patch type, server-side apply included).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Discovery, /version, /openapi and anything that is not a resource request.
    NonResource,
}

impl Verb {
    /// Whether the verb changes state.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }

    /// The verb as Kubernetes spells it (`get`, `deletecollection`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::NonResource => "nonresource",
        }
    }
}

/// One request the server answered (see [`crate::TestApiServer::requests`]).
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The Kubernetes verb.
    pub verb: Verb,
    /// The HTTP method.
    pub method: String,
    /// The URL path, without a trailing slash.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// API group ("" for core).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Plural resource name (`deployments`), empty for non-resource requests.
    pub resource: String,
    /// `status`, `scale`, or empty.
    pub subresource: String,
    /// Namespace of the request ("" for cluster-scoped or all-namespace requests).
    pub namespace: String,
    /// Object name ("" for collections).
    pub name: String,
    /// The request's Content-Type (the patch type for PATCH requests).
    pub content_type: String,
    /// The `fieldManager` query parameter, if any.
    pub field_manager: String,
    /// The User-Agent header.
    pub user_agent: String,
    /// HTTP status answered (for watches: the status of the stream's start).
    pub status: u16,
}

/// A fault armed by a test: the next `remaining` matching requests fail with `code`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub verb: Option<Verb>,
    pub resource: Option<String>,
    pub remaining: usize,
    pub code: u16,
    pub message: String,
}

pub struct State {
    pub rv: u64,
    pub objects: BTreeMap<ResKey, BTreeMap<(String, String), Value>>,
    pub log: VecDeque<Arc<Event>>,
    /// Resource versions at or below this can no longer be watched from (410 Gone).
    pub compacted: u64,
    pub tx: broadcast::Sender<Arc<Event>>,
    pub requests: Vec<RequestRecord>,
    pub faults: Vec<Fault>,
    pub latency: Duration,
    /// `namespace/name` of a Service → `host:port` where it really listens.
    pub service_map: HashMap<String, String>,
    /// The last ClusterIP handed out, as an offset into 10.96.0.0/12.
    pub next_service_ip: u32,
    /// Whether workload kinds get the status their pods would give them (see gc.rs).
    pub simulate_workloads: bool,
    res_cache: Arc<Vec<ResourceInfo>>,
}

impl State {
    pub fn new(tx: broadcast::Sender<Arc<Event>>) -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            log: VecDeque::new(),
            compacted: 0,
            tx,
            requests: vec![],
            faults: vec![],
            latency: Duration::ZERO,
            service_map: HashMap::new(),
            next_service_ip: 9,
            simulate_workloads: true,
            res_cache: Arc::new(resources::builtins()),
        }
    }

    /// Built-ins plus the resources of every stored CRD (cached; rebuilt when a CRD changes).
    pub fn resources(&self) -> Arc<Vec<ResourceInfo>> {
        self.res_cache.clone()
    }

    fn refresh_resources(&mut self) {
        let mut all = resources::builtins();
        if let Some(crds) = self
            .objects
            .get(&(CRD_RES.0.to_string(), CRD_RES.1.to_string()))
        {
            all.extend(crds.values().filter_map(resources::from_crd));
        }
        self.res_cache = Arc::new(all);
    }

    pub fn find_resource(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        self.res_cache
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    pub fn get(&self, res: &ResKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(res)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource, in (namespace, name) order; `ns` empty means all namespaces.
    pub fn list(&self, res: &ResKey, ns: &str) -> Vec<Value> {
        self.objects
            .get(res)
            .map(|m| {
                m.iter()
                    .filter(|((n, _), _)| ns.is_empty() || n == ns)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Store `obj` (new rv) and emit ADDED or MODIFIED. Returns the stored object.
    pub fn put(&mut self, res: &ResKey, mut obj: Value) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let prev = self
            .objects
            .entry(res.clone())
            .or_default()
            .insert((ns.clone(), name), obj.clone());
        let kind = if prev.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        if res.0 == CRD_RES.0 && res.1 == CRD_RES.1 {
            self.refresh_resources();
        }
        self.emit(Event {
            rv,
            res: res.clone(),
            namespace: ns,
            kind,
            obj: obj.clone(),
            prev,
        });
        obj
    }

    /// Remove an object and emit DELETED (the deleted object carries the deletion's rv).
    pub fn remove(&mut self, res: &ResKey, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(res)?
            .remove(&(ns.to_string(), name.to_string()))?;
        if res.0 == CRD_RES.0 && res.1 == CRD_RES.1 {
            self.refresh_resources();
        }
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.emit(Event {
            rv,
            res: res.clone(),
            namespace: ns.to_string(),
            kind: EventKind::Deleted,
            obj: obj.clone(),
            prev: None,
        });
        Some(obj)
    }

    fn emit(&mut self, ev: Event) {
        let ev = Arc::new(ev);
        self.log.push_back(ev.clone());
        while self.log.len() > LOG_CAPACITY {
            if let Some(old) = self.log.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Forget all history up to now: watches resuming from any older resourceVersion get 410.
    pub fn compact(&mut self) {
        // The counter moves past everything handed out, so even a watcher that is fully up to
        // date (its last bookmark is the current resourceVersion) has to re-list.
        self.rv += 1;
        self.log.clear();
        self.compacted = self.rv;
    }

    /// Every uid currently stored, with where it lives.
    pub fn uid_index(&self) -> HashMap<String, (ResKey, String, String)> {
        let mut idx = HashMap::new();
        for (res, objs) in &self.objects {
            for ((ns, name), o) in objs {
                if let Some(uid) = o.pointer("/metadata/uid").and_then(Value::as_str) {
                    idx.insert(uid.to_string(), (res.clone(), ns.clone(), name.clone()));
                }
            }
        }
        idx
    }
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A top-level string field, owned (empty if absent).
pub fn meta_free_str(obj: &Value, field: &str) -> String {
    obj.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, f: &[String]) {
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if f.is_empty() {
            md.remove("finalizers");
        } else {
            md.insert("finalizers".into(), json!(f));
        }
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
