//! The reconcile frame every kind shares: what makes a reconciler cheap and safe, so that a
//! kind's own file only says what it reads, which children it wants and what its status is.
//!
//! - children are server-side applied only when they differ from the watch cache (a subset
//!   check plus the applied-hash annotation), and a write's answer stands in for a cache that
//!   has not caught up yet ([`RecentWrites`]);
//! - an object of a child's name that is not ours (no controller owner reference to the owner)
//!   is never written, adopted or deleted: the owner reports it ([`Applied::Conflict`]);
//! - the status is written only when it changed, with an Event when the phase changes;
//! - the admission core's verdict is cached per generation; failures back off with jitter.

use super::child_cache;
use super::children::{self, FIELD_MANAGER};
use super::metrics::ControllerMetrics;
use crate::admission::{self, Operation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Label every child carries; the child watches select on it.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=mcp-operator";
/// A converged object is looked at again this often (watch events do the real work).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
/// Reconciles in flight at once by default. Each holds its object's desired children while it
/// waits on the API server: unbounded, 10,000 objects created at once would all be built at
/// the same time and the peak memory would be theirs, not the caches'.
pub const DEFAULT_CONCURRENCY: u16 = 32;
/// How long a reconcile waits for a cache's first list before judging by it.
pub const STORE_READY_WAIT: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a write may stand in for an object the cache does not show at all (it may have
/// been deleted since: then it is recreated after this long).
pub(crate) const CACHE_LAG_WINDOW: Duration = Duration::from_secs(5);
/// How long a write may stand in for an older copy in the cache. The versions decide here, so
/// this only bounds memory; it must outlast the watch lag of a busy cluster, where thousands of
/// objects converge at once and events trail the writes by tens of seconds.
pub(crate) const VERSION_LAG_WINDOW: Duration = Duration::from_secs(120);

/// Operator-wide settings of the reconcilers.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub bridge_image: String,
    pub default_pull_secrets: Vec<String>,
    /// The MCPRegistry API server's image; empty for the pinned default
    /// (`mcpregistry_children::DEFAULT_API_IMAGE`).
    pub registry_api_image: String,
    /// How often a converged object is reconciled again; `None` for [`DEFAULT_RESYNC`].
    pub resync: Option<Duration>,
    /// The longest wait between retries of a failing object; `None` for 5 minutes.
    pub max_backoff: Option<Duration>,
    /// Reconciles in flight at once; `None` for [`DEFAULT_CONCURRENCY`], `Some(0)` unbounded.
    pub concurrency: Option<u16>,
    /// Where a VirtualMCPServer's `GET /status` is read, `host:port` with `{name}` and
    /// `{namespace}`; `None` for the Service's DNS name
    /// (`vmcp_status::DEFAULT_STATUS_ADDRESS`).
    pub vmcp_status_address: Option<String>,
}

impl Settings {
    pub fn resync(&self) -> Duration {
        self.resync.unwrap_or(DEFAULT_RESYNC)
    }

    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default()
            .concurrency(self.concurrency.unwrap_or(DEFAULT_CONCURRENCY))
    }
}

/// Why a reconcile failed; the variant name is the metric label and the Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to apply {child}: {source}")]
    ApplyChild { child: String, source: kube::Error },
    #[error("failed to delete {child}: {source}")]
    DeleteChild { child: String, source: kube::Error },
    #[error("failed to read {child}: {source}")]
    ReadChild { child: String, source: kube::Error },
    #[error("failed to write the status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("failed to update the finalizers: {0}")]
    WriteFinalizers(#[source] kube::Error),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ApplyChild { .. } => "ApplyChild",
            Error::DeleteChild { .. } => "DeleteChild",
            Error::ReadChild { .. } => "ReadChild",
            Error::WriteStatus(_) => "WriteStatus",
            Error::WriteFinalizers(_) => "WriteFinalizers",
            Error::NoNamespace => "NoNamespace",
        }
    }
}

/// The outcome of applying one child.
#[derive(Debug)]
pub enum Applied {
    /// The child is ours and as wanted: the object as the cluster has it, as far as we know
    /// (what the write returned, the cached copy, or what we sent while the cache catches up).
    Ours(Value),
    /// Something of the child's name is in the way and was left as it is.
    Conflict(Conflict),
}

/// An object holding a child's name that the owner did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub kind: String,
    pub name: String,
    /// Who it belongs to instead, as far as its owner references tell.
    pub holder: String,
}

impl Conflict {
    /// The reason every kind reports a conflict under.
    pub const REASON: &'static str = "ChildConflict";

    pub fn message(&self) -> String {
        format!(
            "{} {:?} already exists and is not managed by this object ({}); it is left untouched. \
             Rename or remove it, and the operator creates its own",
            self.kind, self.name, self.holder
        )
    }
}

/// What holds a child's name among the objects the labelled child cache does not see.
pub enum Unlabelled {
    /// Not watched: read the name from the API server before creating it.
    Unknown,
    /// Watched, and nothing of that name is there.
    Absent,
    /// Watched, and this object (its metadata) holds the name.
    Present(Value),
}

/// Who owns `obj`, unless it is `owner_uid`: `None` when its controller owner reference names
/// the owner (it is ours), else a description of its holder.
pub fn foreign_holder(obj: &Value, owner_uid: &str) -> Option<String> {
    let refs = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    let controller = refs
        .into_iter()
        .flatten()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true));
    match controller {
        Some(r) if r.get("uid").and_then(Value::as_str) == Some(owner_uid) => None,
        Some(r) => {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            Some(format!("controlled by {} {}", s("kind"), s("name")))
        }
        None => Some("it has no controller owner reference".into()),
    }
}

/// Our last write of an object: when, the resourceVersion the API server answered with, and
/// a digest of what we sent. Until the watch cache shows at least that version, the cache is
/// behind, not drifted: comparing against it would write the same thing again (and again, for
/// every event of a busy object).
pub(crate) struct Recent {
    pub(crate) at: Instant,
    pub(crate) version: Option<u64>,
    pub(crate) sent: u64,
}

/// Every [`Recent`] write, pruned at most once per [`CACHE_LAG_WINDOW`] (pruning on every call
/// made each reconcile cost as much as the number of objects written lately).
#[derive(Default)]
pub(crate) struct RecentWrites {
    pub(crate) by_key: HashMap<String, Recent>,
    pruned: Option<Instant>,
}

impl RecentWrites {
    pub(crate) fn prune(&mut self) {
        if self.pruned.is_some_and(|p| p.elapsed() < CACHE_LAG_WINDOW) {
            return;
        }
        self.by_key
            .retain(|_, r| r.at.elapsed() < VERSION_LAG_WINDOW);
        self.pruned = Some(Instant::now());
    }
}

/// A watch cache's copy of a child: the whole object, or the reduced shape of
/// [`child_cache::Slim`] (metadata, the applied hash and a few status fields).
pub trait Cached: Serialize {
    /// Whether the copy holds every field, so "as wanted?" can be judged from it alone.
    const WHOLE: bool;
}

impl<C: child_cache::Reduce> Cached for child_cache::Slim<C> {
    const WHOLE: bool = false;
}

macro_rules! whole {
    ($($kind:ty),*) => {
        $(impl Cached for $kind {
            const WHOLE: bool = true;
        })*
    };
}
// The registry's RBAC children, cached whole (a registry has one of each).
whole!(
    k8s_openapi::api::rbac::v1::Role,
    k8s_openapi::api::rbac::v1::RoleBinding
);

/// How long a child's confirmed version is kept without being looked at. Every child is looked
/// at on each resync of its owner, so only the children of deleted owners age out; one that does
/// anyway is read once more, never written.
fn confirmed_ttl(resync: Duration) -> Duration {
    resync.saturating_mul(3).max(Duration::from_secs(600))
}

/// The resourceVersion at which each reduced child was last known to be as wanted: written by
/// us, or read whole and found so. While the cache shows that version, nobody has changed the
/// child since, and the applied hash alone says whether it is what we want now.
#[derive(Default)]
pub(crate) struct Confirmed {
    by_key: HashMap<String, (String, Instant)>,
    pruned: Option<Instant>,
}

impl Confirmed {
    fn prune(&mut self, ttl: Duration) {
        if self.pruned.is_some_and(|p| p.elapsed() < CACHE_LAG_WINDOW) {
            return;
        }
        self.by_key.retain(|_, (_, at)| at.elapsed() < ttl);
        self.pruned = Some(Instant::now());
    }
}

/// The applied-hash annotation of a child, as JSON.
fn applied_hash(v: &Value) -> Option<&str> {
    v.get("metadata")?
        .get("annotations")?
        .get(children::APPLIED_HASH)?
        .as_str()
}

fn resource_version(v: &Value) -> Option<&str> {
    v.get("metadata")?.get("resourceVersion")?.as_str()
}

/// Numeric resourceVersions (etcd's) order writes; anything else is treated as unordered.
fn version_of(v: &Value) -> Option<u64> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Whether the cache's view of an object predates our last write `r` of it. `live` is the
/// cached copy's version (`None`: not cached; `Some(None)`: a version that is not a number);
/// `progress` the highest version the object's watch has delivered.
pub(crate) fn cache_is_behind(
    r: &Recent,
    live: Option<Option<u64>>,
    progress: Option<u64>,
) -> bool {
    let age = r.at.elapsed();
    match (live, progress, r.version) {
        (Some(Some(seen)), _, Some(wrote)) | (None, Some(seen), Some(wrote)) => {
            seen < wrote && age < VERSION_LAG_WINDOW
        }
        (None, _, _) => age < CACHE_LAG_WINDOW,
        _ => false,
    }
}

/// A digest of a value we send, to tell "the same write again" from a new one.
fn digest(v: &Value) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    crate::canonical::to_string(v).hash(&mut h);
    h.finish()
}

/// The generation a verdict is for, and the admission errors (none: valid).
type CachedVerdict = (Option<i64>, Option<String>);

/// What a [`Frame`] reconciles and what it applies: a namespaced kind it can read and write.
/// [`Owner`] is the same bound, named for the object whose children are applied.
pub trait Namespaced:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Serialize
    + DeserializeOwned
    + Debug
    + Send
    + Sync
    + 'static
{
}
impl<K> Namespaced for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

pub use Namespaced as Owner;

/// The shared half of one kind's controller context. `K` is the kind reconciled.
pub struct Frame<K: Resource<DynamicType = ()>> {
    pub client: Client,
    pub settings: Settings,
    pub metrics: ControllerMetrics,
    recorder: Recorder,
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
    /// The admission verdict of each object's current generation: a spec does not change
    /// without a new generation, so a resync need not check it again.
    verdicts: Mutex<HashMap<ObjectRef<K>, CachedVerdict>>,
    /// What we wrote lately, to tell a lagging watch cache from real drift (see [`Recent`]).
    recent: Mutex<RecentWrites>,
    /// Writes skipped because the cache lagged; a reconcile that skipped any comes back soon.
    lag_skips: AtomicU64,
    /// The highest resourceVersion each child watch has delivered, by kind: a child missing
    /// from its store although its watch is past our write of it was deleted since, while one
    /// written after that point may simply not have arrived yet.
    seen: Mutex<HashMap<String, Arc<AtomicU64>>>,
    /// Where each reduced child was last known to be as wanted (see [`Confirmed`]).
    confirmed: Mutex<Confirmed>,
}

impl<K: Owner> Frame<K> {
    pub fn new(client: Client, settings: Settings, metrics: ControllerMetrics) -> Self {
        Frame {
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: FIELD_MANAGER.into(),
                    instance: None,
                },
            ),
            client,
            settings,
            metrics,
            failures: Mutex::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            recent: Mutex::new(RecentWrites::default()),
            lag_skips: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            confirmed: Mutex::new(Confirmed::default()),
        }
    }

    /// The kind's name, for metrics and logs.
    pub fn kind() -> String {
        K::kind(&()).to_string()
    }

    /// A watch of child kind `C` feeding a store, for [`kube::runtime::Controller::owns_stream`]:
    /// labelled children only, without managedFields (often the larger half of a child, and
    /// nothing here reads them: at thousands of objects they would be most of the memory).
    pub fn reflect<C>(
        &self,
        namespace: &Option<String>,
        cfg: watcher::Config,
    ) -> (
        Store<C>,
        impl futures::Stream<Item = Result<C, watcher::Error>> + Send + 'static,
    )
    where
        C: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + Sync
            + 'static,
    {
        let api: Api<C> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let (store, writer) = reflector::store();
        let progress = Arc::new(AtomicU64::new(0));
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(C::kind(&()).to_string(), progress.clone());
        // The progress is taken after the store has the event, never before.
        let stream = watcher(api, cfg)
            .default_backoff()
            .modify(|o| o.managed_fields_mut().clear())
            .reflect(writer)
            .modify(move |o| {
                if let Some(v) = o.resource_version().and_then(|v| v.parse().ok()) {
                    progress.fetch_max(v, Ordering::Relaxed);
                }
            })
            .touched_objects();
        (store, stream)
    }

    /// Runs one reconcile with its metrics, and forgets the failures of an object that
    /// reconciled cleanly. `managed` is how many objects of the kind the cache holds.
    pub async fn observe<F>(&self, obj: &K, managed: usize, reconcile: F) -> Result<Action, Error>
    where
        F: std::future::Future<Output = Result<Action, Error>>,
    {
        let started = Instant::now();
        let kind = Self::kind();
        self.metrics.set_managed(&kind, managed);
        let result = reconcile.await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.reason(),
        };
        self.metrics
            .observe_reconcile(&kind, outcome, started.elapsed());
        if result.is_ok() {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ObjectRef::from_obj(obj));
        }
        result
    }

    /// The action after a successful pass: the resync, or sooner when a write was skipped
    /// because the cache lagged (a missing object may be lag or a deletion: look again once
    /// the window is over). `skips_before` is [`Frame::lag_skips`] at the start of the pass.
    pub fn settled(&self, skips_before: u64) -> Action {
        let resync = self.settings.resync();
        if self.lag_skips() != skips_before {
            return Action::requeue(resync.min(CACHE_LAG_WINDOW));
        }
        Action::requeue(resync)
    }

    pub fn lag_skips(&self) -> u64 {
        self.lag_skips.load(Ordering::Relaxed)
    }

    /// The admission core's errors for this generation of the object, if any (cached per
    /// generation). The webhook may be off or bypassed: a reconciler checks again before acting.
    pub fn spec_errors(&self, obj: &K) -> Option<String> {
        let key = ObjectRef::from_obj(obj);
        let generation = obj.meta().generation;
        let mut cache = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, errors)) = cache.get(&key) {
            if *g == generation && generation.is_some() {
                return errors.clone();
            }
        }
        let errors = admission_refusal(obj);
        cache.insert(key, (generation, errors.clone()));
        errors
    }

    /// True when `want` is what we last sent and the cache simply has not caught up with it.
    fn written_lately(
        &self,
        key: &str,
        want: &Value,
        live: Option<&Value>,
        watch_progress: Option<u64>,
    ) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.prune();
        let Some(r) = recent.by_key.get(key) else {
            return false;
        };
        let skip =
            cache_is_behind(r, live.map(version_of), watch_progress) && r.sent == digest(want);
        if skip {
            self.lag_skips.fetch_add(1, Ordering::Relaxed);
        }
        skip
    }

    fn remember_write(&self, key: String, sent: &Value, written: &Value) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.by_key.insert(
            key,
            Recent {
                at: Instant::now(),
                version: version_of(written),
                sent: digest(sent),
            },
        );
    }

    fn watch_progress(&self, kind: &str) -> Option<u64> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
            .map(|s| s.load(Ordering::Relaxed))
    }

    /// Whether the cached copy `have` of a child is already what `want` asks for. A whole copy
    /// is compared field by field; a reduced one ([`child_cache::Slim`]) by its applied hash and
    /// by its version: still the one at which we last knew the child to be as wanted.
    fn converged<L: Cached>(&self, key: &str, want: &Value, have: &Value) -> bool {
        if L::WHOLE {
            return children::is_subset(want, have);
        }
        if applied_hash(have).is_none() || applied_hash(have) != applied_hash(want) {
            return false;
        }
        let ttl = confirmed_ttl(self.settings.resync());
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.prune(ttl);
        match confirmed.by_key.get_mut(key) {
            Some((version, at)) if Some(version.as_str()) == resource_version(have) => {
                *at = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Notes that child `key` was as wanted at the version `seen` has (what a write returned, or
    /// a whole read that matched).
    pub(crate) fn confirm(&self, key: String, seen: &Value) {
        let Some(version) = resource_version(seen) else {
            return;
        };
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed
            .by_key
            .insert(key, (version.to_string(), Instant::now()));
    }

    /// The key a child's writes and confirmations are kept under.
    pub(crate) fn child_key(kind: &str, ns: &str, name: &str) -> String {
        format!("{kind}/{ns}/{name}")
    }

    /// Applies `desired` (a child of `owner`) unless the live object already has all of it and
    /// carries the digest of it, so nothing we stopped wanting lingers. A name held by an object
    /// that is not ours is never written: it comes back as [`Applied::Conflict`].
    ///
    /// `live` is the watch cache's copy. The child watches see only labelled objects, so a
    /// child missing from the cache is read from the API server before it is created: a
    /// server-side apply onto someone else's object would merge into it and take it over.
    /// Kinds that also watch the unlabelled objects use [`Frame::apply_known`] and skip the read.
    pub async fn apply<C, L>(
        &self,
        owner: &K,
        desired: &C,
        live: Option<Arc<L>>,
    ) -> Result<Applied, Error>
    where
        C: Namespaced,
        L: Cached,
    {
        self.apply_known(owner, desired, live, Unlabelled::Unknown)
            .await
    }

    /// [`Frame::apply`], told by a watch of the unlabelled objects what holds the name when
    /// the labelled cache has nothing: then no read is needed before the first apply.
    ///
    /// With a reduced cache ([`child_cache::Slim`]), a child whose version moved since we last
    /// knew it to be as wanted (someone else wrote it, or this process has not seen it yet) is
    /// read whole once and compared field by field: a foreign edit of our fields is put back with
    /// one write, anything else costs that read only.
    pub async fn apply_known<C, L>(
        &self,
        owner: &K,
        desired: &C,
        live: Option<Arc<L>>,
        unlabelled: Unlabelled,
    ) -> Result<Applied, Error>
    where
        C: Namespaced,
        L: Cached,
    {
        let ns = owner.namespace().ok_or(Error::NoNamespace)?;
        let owner_uid = owner.meta().uid.clone().unwrap_or_default();
        let mut want = serde_json::to_value(desired).unwrap_or(Value::Null);
        children::stamp_applied_hash(&mut want);
        let name = desired.meta().name.clone().unwrap_or_default();
        let kind = C::kind(&()).to_string();
        let conflict = |holder| {
            Ok(Applied::Conflict(Conflict {
                kind: kind.clone(),
                name: name.clone(),
                holder,
            }))
        };
        let key = Self::child_key(&kind, &ns, &name);
        let have = live.map(|l| serde_json::to_value(l.as_ref()).unwrap_or(Value::Null));
        if let Some(h) = &have {
            if let Some(holder) = foreign_holder(h, &owner_uid) {
                return conflict(holder);
            }
            if self.converged::<L>(&key, &want, h) {
                return Ok(Applied::Ours(h.clone()));
            }
        }
        if self.written_lately(&key, &want, have.as_ref(), self.watch_progress(&kind)) {
            // Our write is on its way to the cache: until it arrives, what we sent stands in for
            // it (judging the child missing would flip `status.url` off and on, a write each time).
            return Ok(Applied::Ours(have.unwrap_or(want)));
        }
        let api: Api<C> = Api::namespaced(self.client.clone(), &ns);
        let read = || async {
            api.get_opt(&name)
                .await
                .map_err(|source| Error::ReadChild {
                    child: format!("{kind}/{name}"),
                    source,
                })
                .map(|f| f.map(|f| serde_json::to_value(&f).unwrap_or(Value::Null)))
        };
        match &have {
            None => {
                let found = match unlabelled {
                    Unlabelled::Absent => None,
                    Unlabelled::Present(meta) => Some(meta),
                    Unlabelled::Unknown => read().await?,
                };
                if let Some(holder) = found.as_ref().and_then(|f| foreign_holder(f, &owner_uid)) {
                    return conflict(holder);
                }
            }
            Some(h) if !L::WHOLE && applied_hash(h) == applied_hash(&want) => {
                if let Some(whole) = read().await? {
                    if let Some(holder) = foreign_holder(&whole, &owner_uid) {
                        return conflict(holder);
                    }
                    if children::is_subset(&want, &whole) {
                        self.confirm(key, &whole);
                        return Ok(Applied::Ours(whole));
                    }
                }
            }
            Some(_) => {}
        }
        let written = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&want),
            )
            .await
            .map_err(|source| Error::ApplyChild {
                child: children::describe(&want),
                source,
            })?;
        let written = serde_json::to_value(&written).unwrap_or(Value::Null);
        self.remember_write(key.clone(), &want, &written);
        self.confirm(key, &written);
        self.metrics.count_apply(&kind);
        Ok(Applied::Ours(written))
    }

    /// Deletes a child of `owner` that is no longer wanted, if the cache shows it and it is
    /// ours; anything else of that name is left alone.
    pub async fn delete<L>(&self, owner: &K, live: Option<Arc<L>>) -> Result<(), Error>
    where
        L: Namespaced,
    {
        let Some(live) = live else {
            return Ok(());
        };
        let owner_uid = owner.meta().uid.clone().unwrap_or_default();
        let value = serde_json::to_value(live.as_ref()).unwrap_or(Value::Null);
        if foreign_holder(&value, &owner_uid).is_some() {
            return Ok(());
        }
        let ns = owner.namespace().ok_or(Error::NoNamespace)?;
        let name = live.name_any();
        let api: Api<L> = Api::namespaced(self.client.clone(), &ns);
        // Only the object we looked at: if it was replaced since, the uid no longer matches.
        let params = DeleteParams {
            preconditions: live.meta().uid.clone().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(source) => Err(Error::DeleteChild {
                child: format!("{}/{name}", L::kind(&())),
                source,
            }),
        }
    }

    /// Writes `status` (the whole status, as JSON) when it differs from what `obj` has, as a
    /// merge patch that also removes the fields it no longer has; an Event records a change of
    /// `phase`.
    pub async fn write_status(&self, obj: &K, status: Value) -> Result<(), Error> {
        let old = serde_json::to_value(obj)
            .ok()
            .and_then(|v| v.get("status").cloned())
            .unwrap_or_else(|| json!({}));
        if same_status(&old, &status) {
            return Ok(());
        }
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        // Working from a copy older than our own last status write: that write's watch event is
        // on its way and will bring us back with the fresh object.
        let key = format!("{}.status/{ns}/{}", Self::kind(), obj.name_any());
        let seen = serde_json::to_value(obj).unwrap_or(Value::Null);
        if self.written_lately(&key, &json!({}), Some(&seen), None) {
            return Ok(());
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let patch = json!({ "status": status_patch(&old, &status) });
        let written = api
            .patch_status(
                &obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(Error::WriteStatus)?;
        self.remember_write(
            key,
            &json!({}),
            &serde_json::to_value(&written).unwrap_or(Value::Null),
        );
        let phase = |v: &Value| v.get("phase").and_then(Value::as_str).map(str::to_owned);
        if let Some(now) = phase(&status).filter(|p| phase(&old).as_ref() != Some(p)) {
            let message = status.get("message").and_then(Value::as_str);
            self.announce(obj, &now, message).await;
        }
        Ok(())
    }

    /// Puts `finalizer` on `obj` unless it is there already (no write then).
    pub async fn ensure_finalizer(&self, obj: &K, finalizer: &str) -> Result<(), Error> {
        let mut list = obj.finalizers().to_vec();
        if list.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        list.push(finalizer.to_string());
        self.write_finalizers(obj, list).await
    }

    /// Takes `finalizer` off `obj` if it is there, leaving everyone else's.
    pub async fn release_finalizer(&self, obj: &K, finalizer: &str) -> Result<(), Error> {
        let list = obj.finalizers();
        if !list.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let kept = list.iter().filter(|f| *f != finalizer).cloned().collect();
        self.write_finalizers(obj, kept).await
    }

    /// A merge patch of the whole list, made conditional on the resourceVersion we read: a
    /// finalizer someone added since is never dropped (the conflict brings a retry).
    async fn write_finalizers(&self, obj: &K, list: Vec<String>) -> Result<(), Error> {
        let ns = obj.namespace().ok_or(Error::NoNamespace)?;
        let api: Api<K> = Api::namespaced(self.client.clone(), &ns);
        let patch = json!({"metadata": {
            "resourceVersion": obj.resource_version(),
            "finalizers": list,
        }});
        api.patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::WriteFinalizers)?;
        Ok(())
    }

    /// An Event for a phase change: a warning for `Failed`, normal otherwise.
    async fn announce(&self, obj: &K, phase: &str, message: Option<&str>) {
        let note = message.map_or_else(|| format!("phase is now {phase}"), str::to_owned);
        self.record(obj, phase == "Failed", phase, &note).await;
    }

    /// Records an Event about `obj` (a Warning when `warning`); a failure to record is only
    /// logged: Events are news, never the state.
    pub async fn record(&self, obj: &K, warning: bool, reason: &str, note: &str) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::debug!(error = %e, "could not record an Event");
        }
    }

    /// Exponential backoff with jitter, per object; the first failure in a row also goes out as
    /// a Warning Event (repeats would only flood).
    pub fn backoff(&self, obj: &K, error: &Error) -> Action {
        let key = ObjectRef::from_obj(obj);
        let attempt = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        tracing::warn!(kind = %Self::kind(), name = %obj.name_any(), namespace = ?obj.namespace(), reason = error.reason(), attempt, error = %error, "reconcile failed");
        if attempt == 1 {
            let recorder = self.recorder.clone();
            let reference = obj.object_ref(&());
            let event = Event {
                type_: EventType::Warning,
                reason: error.reason().into(),
                note: Some(truncate(&error.to_string(), 1000)),
                action: "Reconcile".into(),
                secondary: None,
            };
            tokio::spawn(async move {
                let _ = recorder.publish(&event, &reference).await;
            });
        }
        let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(12));
        let capped = exp.min(self.settings.max_backoff.unwrap_or(BACKOFF_MAX));
        let jitter = rand::random::<f64>() * 0.5 + 0.75; // ±25 %
        Action::requeue(capped.mul_f64(jitter))
    }
}

/// Two statuses are the same when every field is equal, nulls counting as absent.
fn same_status(old: &Value, new: &Value) -> bool {
    strip_nulls(old) == strip_nulls(new)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `new` as a merge patch over `old`: top-level fields `old` has and `new` does not are nulled.
fn status_patch(old: &Value, new: &Value) -> Value {
    let mut patch: Map<String, Value> = new.as_object().cloned().unwrap_or_default();
    for key in old.as_object().into_iter().flat_map(|m| m.keys()) {
        patch.entry(key.clone()).or_insert(Value::Null);
    }
    Value::Object(patch)
}

/// A condition of `type_`, keeping the previous transition time when its status did not flip,
/// so an unchanged world yields an identical status.
pub fn condition(
    old: Option<&[Condition]>,
    generation: Option<i64>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = old.into_iter().flatten().find(|c| c.type_ == type_);
    let since = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    };
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// The objects of a store in `ns` that `pred` picks, as references to reconcile.
pub fn referencing<K>(
    store: &Store<K>,
    ns: &Option<String>,
    pred: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace() == *ns && pred(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Waits (bounded) until every store has listed once: right after start-up a child missing
/// from a cache is not missing from the cluster.
pub async fn wait_for_caches(ready: Vec<futures::future::BoxFuture<'_, ()>>) {
    let _ = tokio::time::timeout(STORE_READY_WAIT, futures::future::join_all(ready)).await;
}

/// What no reconciler reads of a cached object, dropped before it is stored: managedFields, and
/// kubectl's copy of the whole last applied object (an object applied with kubectl carries itself
/// twice).
pub fn trim_cached<T: Resource>(o: &mut T) {
    o.managed_fields_mut().clear();
    if let Some(a) = o.meta_mut().annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// kubectl's client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The key names of referenced Secrets by `ns/name`, with the resourceVersion they were read at:
/// a Secret is read (by whichever controller asks first) only when its version changes. Values
/// are dropped at once; only the names stay.
#[derive(Default)]
pub struct SecretKeys(Mutex<HashMap<String, (String, Vec<String>)>>);

impl SecretKeys {
    /// The key names of Secret `ns/name` at `version`.
    pub async fn get(
        &self,
        client: &Client,
        ns: &str,
        name: &str,
        version: &str,
    ) -> Result<Vec<String>, kube::Error> {
        let cache_key = format!("{ns}/{name}");
        if let Some((v, keys)) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
        {
            if v == version {
                return Ok(keys.clone());
            }
        }
        let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
            .get(name)
            .await?;
        let keys: Vec<String> = secret
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(secret.string_data.iter().flat_map(|d| d.keys()))
            .cloned()
            .collect();
        let version = secret.resource_version().unwrap_or_default();
        // Bounded: one entry per referenced Secret; entries of deleted Secrets are few and small.
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(cache_key, (version, keys.clone()));
        Ok(keys)
    }
}

/// A Secret key a pod reads: `(field that asks for it, Secret name, key)`, for messages.
pub type SecretUse = (String, String, String);

impl SecretKeys {
    /// Why the pods could not read one of `uses`, if they could not: a Secret that does not
    /// exist in `ns`, or lacks the key. Existence comes from the metadata cache; key names are
    /// read once per resourceVersion (values are dropped at once and never kept). When the keys
    /// cannot be read, nothing is said rather than something false: the next pass retries.
    pub async fn first_missing(
        &self,
        client: &Client,
        store: &Store<kube::core::PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>,
        ns: &str,
        uses: &[SecretUse],
    ) -> Option<String> {
        if uses.is_empty() {
            return None;
        }
        let _ = tokio::time::timeout(STORE_READY_WAIT, store.wait_until_ready()).await;
        for (field, name, key) in uses {
            let Some(meta) = store.get(&ObjectRef::new(name).within(ns)) else {
                return Some(format!(
                    "{field}: Secret {name:?} does not exist in namespace {ns}"
                ));
            };
            let version = meta.resource_version().unwrap_or_default();
            match self.get(client, ns, name, &version).await {
                Ok(keys) if keys.contains(key) => {}
                Ok(_) => return Some(format!("{field}: Secret {name:?} has no key {key:?}")),
                Err(e) => {
                    tracing::debug!(secret = %name, error = %e, "could not read the key names")
                }
            }
        }
        None
    }
}

/// What the admission core says against `obj`, if it refuses it: a referenced config may have
/// been written while the webhook was off, and the data path would refuse it too.
pub fn admission_refusal<T: Serialize>(obj: &T) -> Option<String> {
    let object = serde_json::to_value(obj).unwrap_or(Value::Null);
    match admission::admit(&object, None, Operation::Create) {
        Ok(verdict) if !verdict.allowed() => Some(verdict.errors.to_string()),
        _ => None,
    }
}

/// A config's published `status.configHash`, or the same hash of its spec while its controller
/// has not published one yet: what workloads copy into their status.
pub fn published_hash<T: Serialize>(
    status: Option<&crate::api::v1beta1::ConfigStatus>,
    spec: &T,
) -> String {
    status
        .and_then(|s| s.config_hash.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| config_hash(spec))
}

/// The `configHash` of a config kind's spec, as upstream computes it: FNV-1a (32 bit) over a
/// deterministic dump, in hex. serde_json writes struct fields in declaration order and maps
/// sorted, so equal specs hash equally across processes and restarts.
pub fn config_hash<T: Serialize>(spec: &T) -> String {
    let dump = serde_json::to_vec(spec).unwrap_or_default();
    format!("{:08x}", fnv1a32(&dump))
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Names of a kind's objects for a message: sorted as given, at most `max`, then how many more.
pub fn name_list(names: &[String], max: usize) -> String {
    let shown = names
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().saturating_sub(max) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_is_fnv1a_of_the_dump_and_stable() {
        // The published FNV-1a 32-bit test vectors.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        assert_eq!(config_hash(&"a"), format!("{:08x}", fnv1a32(b"\"a\"")));
        // The typed spec (what callers hash): its maps are sorted whatever order they were
        // written in (a raw JSON object would keep its order: serde_json's preserve_order).
        let spec = |v: serde_json::Value| -> crate::api::v1beta1::MCPToolConfigSpec {
            serde_json::from_value(v).unwrap()
        };
        let a = spec(json!({"toolsFilter": ["x"], "toolsOverride": {"b": {}, "a": {}}}));
        let b = spec(json!({"toolsOverride": {"a": {}, "b": {}}, "toolsFilter": ["x"]}));
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(
            config_hash(&a),
            config_hash(&spec(json!({"toolsFilter": ["y"]})))
        );
    }

    #[test]
    fn name_lists_are_bounded() {
        let names: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
        assert_eq!(name_list(&names[..2], 3), "s0, s1");
        assert_eq!(name_list(&names, 3), "s0, s1, s2 and 2 more");
        assert_eq!(name_list(&[], 3), "");
    }

    /// One situation: what the cache shows, how far the watch got, our write, and the verdict.
    struct Case {
        live: Option<Option<u64>>,
        progress: Option<u64>,
        wrote: Option<u64>,
        age: Duration,
        behind: bool,
    }

    const fn case(
        live: Option<Option<u64>>,
        progress: Option<u64>,
        wrote: Option<u64>,
        age: Duration,
        behind: bool,
    ) -> Case {
        Case {
            live,
            progress,
            wrote,
            age,
            behind,
        }
    }

    #[test]
    fn the_cache_is_behind_only_until_it_shows_our_write() {
        let fresh = Duration::ZERO;
        let old = CACHE_LAG_WINDOW + Duration::from_secs(1);
        let ancient = VERSION_LAG_WINDOW + Duration::from_secs(1);
        let cases = [
            // Cached at an older version: behind, for as long as the versions say so.
            case(Some(Some(90)), None, Some(100), fresh, true),
            case(Some(Some(90)), None, Some(100), old, true),
            case(Some(Some(90)), None, Some(100), ancient, false),
            // Cached at our version or later (someone edited it since): compare for real.
            case(Some(Some(100)), None, Some(100), fresh, false),
            case(Some(Some(120)), None, Some(100), fresh, false),
            // Not cached, and the watch has not reached our write: not arrived yet.
            case(None, Some(95), Some(100), old, true),
            // Not cached although the watch is past our write: deleted since, repair it.
            case(None, Some(150), Some(100), fresh, false),
            // Versions that are not numbers: only the short window.
            case(Some(None), None, Some(100), fresh, false),
            case(None, None, None, fresh, true),
            case(None, None, None, old, false),
        ];
        for (i, c) in cases.iter().enumerate() {
            let r = Recent {
                at: Instant::now() - c.age,
                version: c.wrote,
                sent: 0,
            };
            assert_eq!(
                cache_is_behind(&r, c.live, c.progress),
                c.behind,
                "case {i}: live {:?}, progress {:?}, wrote {:?}, age {:?}",
                c.live,
                c.progress,
                c.wrote,
                c.age
            );
        }
    }

    #[test]
    fn recent_writes_are_pruned_in_batches_not_per_call() {
        let stale = || Recent {
            at: Instant::now() - VERSION_LAG_WINDOW - Duration::from_secs(1),
            version: Some(1),
            sent: 0,
        };
        let mut recent = RecentWrites::default();
        recent.by_key.insert("a".into(), stale());
        recent.prune();
        assert!(recent.by_key.is_empty(), "the first call prunes");
        recent.by_key.insert("b".into(), stale());
        recent.prune();
        assert_eq!(recent.by_key.len(), 1, "not again within the window");
    }

    /// Only a controller owner reference to the owner itself makes a child ours.
    #[test]
    fn a_child_is_ours_only_with_our_controller_reference() {
        let with = |refs: Value| json!({"metadata": {"name": "c", "ownerReferences": refs}});
        let ours = json!({"kind": "MCPServer", "name": "s", "uid": "u1", "controller": true});
        let rows = [
            (
                json!({"metadata": {"name": "c"}}),
                Some("no controller owner reference"),
            ),
            (with(json!([ours])), None),
            (
                with(json!([{"kind": "MCPServer", "name": "s", "uid": "u0", "controller": true}])),
                Some("controlled by MCPServer s"),
            ),
            (
                with(json!([{"kind": "MCPServer", "name": "s", "uid": "u1"}])),
                Some("no controller owner reference"),
            ),
            (
                with(json!([{"kind": "ReplicaSet", "name": "r", "uid": "x", "controller": true}])),
                Some("controlled by ReplicaSet r"),
            ),
        ];
        for (i, (obj, holder)) in rows.into_iter().enumerate() {
            let got = foreign_holder(&obj, "u1");
            match holder {
                None => assert_eq!(got, None, "row {i}"),
                Some(h) => assert!(
                    got.as_deref().is_some_and(|g| g.contains(h)),
                    "row {i}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn the_status_patch_removes_what_the_new_status_lacks() {
        let old = json!({"phase": "Ready", "url": "http://x", "readyReplicas": 1});
        let new = json!({"phase": "Pending", "readyReplicas": 0});
        assert_eq!(
            status_patch(&old, &new),
            json!({"phase": "Pending", "readyReplicas": 0, "url": null})
        );
        assert!(same_status(&json!({"a": 1, "b": null}), &json!({"a": 1})));
        assert!(!same_status(&old, &new));
    }
}
