//! The "etcd": objects by resource and key, one global resourceVersion counter and the event log
//! watches replay from.

use crate::resources::{self, ResKey, ResourceInfo};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many events the log keeps before the oldest are compacted away (a watch resuming from a
/// compacted resourceVersion gets 410 Gone, as with etcd compaction). Enough for every write of
/// the controller benchmark at 10,000 objects (~90,000), so a watcher that had to resume there
/// replays instead of re-listing everything.
pub const LOG_CAPACITY: usize = 200_000;

/// How many events a watch stream may fall behind the newest before it is ended (a lagging
/// watcher's stream ends and the client resumes from the log). Every open watch sees every event,
/// whatever its resource, so this is counted in all writes, not the watched kind's.
pub const WATCH_BUFFER: usize = 65_536;

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

/// Where an object lives: its resource, namespace ("" if cluster-scoped) and name.
pub type ObjKey = (ResKey, String, String);

/// What the garbage collector needs to find its work without scanning every object, kept up to
/// date by [`State::put`] and [`State::remove`].
#[derive(Default)]
pub struct GcIndex {
    /// uid → where the object with that uid lives.
    pub uids: HashMap<String, ObjKey>,
    /// Owner uid → the objects whose ownerReferences name it (whether or not the owner exists).
    pub dependents: HashMap<String, BTreeSet<ObjKey>>,
    /// Objects with a deletionTimestamp.
    pub deleting: BTreeSet<ObjKey>,
    /// Objects the collector has to look at again since its last pass: those written or removed,
    /// those an owner or dependent of which was, deleting namespaces whose content changed,
    /// deleting CRDs whose instances changed.
    pub dirty: BTreeSet<ObjKey>,
    /// A pass must look at everything (set when a pass failed half-way).
    pub full: bool,
}

pub struct State {
    pub rv: u64,
    /// Read it freely; write only through [`State::put`] and [`State::remove`], which keep
    /// [`State::gc`] in step.
    objects: BTreeMap<ResKey, BTreeMap<(String, String), Value>>,
    /// Indexes and work list of the garbage collector (gc.rs).
    pub gc: GcIndex,
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
    /// Whether workload kinds get the status their pods would give them (see gc.rs); change it
    /// with [`State::set_simulate_workloads`].
    pub simulate_workloads: bool,
    res_cache: Arc<Vec<Arc<ResourceInfo>>>,
}

impl State {
    pub fn new(tx: broadcast::Sender<Arc<Event>>) -> Self {
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            gc: GcIndex::default(),
            log: VecDeque::new(),
            compacted: 0,
            tx,
            requests: vec![],
            faults: vec![],
            latency: Duration::ZERO,
            service_map: HashMap::new(),
            next_service_ip: 9,
            simulate_workloads: true,
            res_cache: Arc::new(resources::builtins().into_iter().map(Arc::new).collect()),
        }
    }

    /// Built-ins plus the resources of every stored CRD (cached; rebuilt when a CRD changes).
    pub fn resources(&self) -> Arc<Vec<Arc<ResourceInfo>>> {
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
        self.res_cache = Arc::new(all.into_iter().map(Arc::new).collect());
    }

    /// A served resource (cheap: shared, not copied).
    pub fn find_resource(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.res_cache
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    /// Every stored object, by resource then (namespace, name).
    pub fn objects(&self) -> &BTreeMap<ResKey, BTreeMap<(String, String), Value>> {
        &self.objects
    }

    /// Turn the workload simulation on or off; turning it on makes the collector look at every
    /// workload again (their status may be stale).
    pub fn set_simulate_workloads(&mut self, on: bool) {
        if on && !self.simulate_workloads {
            for plural in WORKLOAD_PLURALS {
                let key = ("apps".to_string(), plural.to_string());
                if let Some(m) = self.objects.get(&key) {
                    for (ns, name) in m.keys() {
                        self.gc
                            .dirty
                            .insert((key.clone(), ns.clone(), name.clone()));
                    }
                }
            }
        }
        self.simulate_workloads = on;
    }

    pub fn get(&self, res: &ResKey, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(res)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// Objects of a resource, in (namespace, name) order; `ns` empty means all namespaces.
    pub fn list(&self, res: &ResKey, ns: &str) -> Vec<Value> {
        self.list_matching(res, ns, |_| true)
    }

    /// The objects of a resource in a namespace (all if `ns` is empty), in (namespace, name)
    /// order, without copying them.
    pub fn iter_ns<'a>(
        &'a self,
        res: &ResKey,
        ns: &'a str,
    ) -> impl Iterator<Item = (&'a (String, String), &'a Value)> + 'a {
        let m = self.objects.get(res);
        let range: Box<dyn Iterator<Item = (&'a (String, String), &'a Value)> + 'a> = match m {
            None => Box::new(std::iter::empty()),
            Some(m) if ns.is_empty() => Box::new(m.iter()),
            Some(m) => Box::new(
                m.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns),
            ),
        };
        range
    }

    /// Like [`State::list`], copying only the objects `pred` accepts.
    pub fn list_matching(
        &self,
        res: &ResKey,
        ns: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        self.iter_ns(res, ns)
            .filter(|(_, v)| pred(v))
            .map(|(_, v)| v.clone())
            .collect()
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
            .insert((ns.clone(), name.clone()), obj.clone());
        self.index((res.clone(), ns.clone(), name), prev.as_ref(), Some(&obj));
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
        self.index(
            (res.clone(), ns.to_string(), name.to_string()),
            Some(&obj),
            None,
        );
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

    /// Keep [`State::gc`] in step with a change of the object at `key` from `old` to `new`
    /// (None: absent), and mark what the collector has to look at again.
    fn index(&mut self, key: ObjKey, old: Option<&Value>, new: Option<&Value>) {
        let uid = |o: Option<&Value>| {
            o.map(|o| meta_str(o, "uid"))
                .filter(|u| !u.is_empty())
                .map(String::from)
        };
        let (old_uid, new_uid) = (uid(old), uid(new));
        let old_owners = old.map(owner_uids).unwrap_or_default();
        let new_owners = new.map(owner_uids).unwrap_or_default();
        let gc = &mut self.gc;
        if let Some(u) = &old_uid {
            if new_uid.as_ref() != Some(u) && gc.uids.get(u) == Some(&key) {
                gc.uids.remove(u);
            }
        }
        if let Some(u) = &new_uid {
            gc.uids.insert(u.clone(), key.clone());
        }
        for o in old_owners.iter().filter(|o| !new_owners.contains(o)) {
            if let Some(deps) = gc.dependents.get_mut(o) {
                deps.remove(&key);
                if deps.is_empty() {
                    gc.dependents.remove(o);
                }
            }
        }
        for o in &new_owners {
            gc.dependents
                .entry(o.clone())
                .or_default()
                .insert(key.clone());
        }
        if new.is_some_and(|n| !meta_str(n, "deletionTimestamp").is_empty()) {
            gc.deleting.insert(key.clone());
        } else {
            gc.deleting.remove(&key);
        }
        // Its dependents (an owner appeared, changed or went away) and its owners (a dependent
        // changed), before and after.
        for u in old_uid.iter().chain(new_uid.iter()) {
            if let Some(deps) = gc.dependents.get(u) {
                gc.dirty.extend(deps.iter().cloned());
            }
        }
        for o in old_owners.iter().chain(new_owners.iter()) {
            if let Some(k) = gc.uids.get(o) {
                gc.dirty.insert(k.clone());
            }
        }
        // A namespace being deleted waits for its content; a CRD being deleted for its instances.
        let (res, ns, _) = &key;
        if !ns.is_empty() {
            let ns_key: ObjKey = (
                (NS_RES.0.into(), NS_RES.1.into()),
                String::new(),
                ns.clone(),
            );
            if gc.deleting.contains(&ns_key) {
                gc.dirty.insert(ns_key);
            }
        }
        if !res.0.is_empty() {
            let crd_res: ResKey = (CRD_RES.0.into(), CRD_RES.1.into());
            let crds = self.objects.get(&crd_res);
            let deleting_crds = gc
                .deleting
                .range((crd_res.clone(), String::new(), String::new())..)
                .take_while(|(r, _, _)| *r == crd_res)
                .filter(|(_, n, name)| {
                    crds.and_then(|m| m.get(&(n.clone(), name.clone())))
                        .is_some_and(|c| {
                            c.pointer("/spec/group").and_then(Value::as_str) == Some(&res.0)
                                && c.pointer("/spec/names/plural").and_then(Value::as_str)
                                    == Some(&res.1)
                        })
                })
                .cloned()
                .collect::<Vec<_>>();
            gc.dirty.extend(deleting_crds);
        }
        gc.dirty.insert(key);
    }
}

/// The workload kinds (group `apps`) the workload simulation looks after, in the order it does.
pub const WORKLOAD_PLURALS: [&str; 4] =
    ["deployments", "statefulsets", "replicasets", "daemonsets"];

/// The uids an object's ownerReferences name.
pub fn owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
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
