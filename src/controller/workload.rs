//! The children every bridge-fronted workload has — MCPServer and MCPRemoteProxy alike: a
//! ConfigMap with the bridge's configuration, an optional ServiceAccount, a Service and a
//! Deployment. Their caches, and the order and rules by which they are applied, live here once.

use super::child_cache::{Reduce, Slim};
use super::children;
use super::frame::{Applied, Conflict, Error, Frame, Owner, Unlabelled};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// Every child of one workload, in the shape both kinds build.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    pub config_map: ConfigMap,
    pub service_account: Option<ServiceAccount>,
    pub service: Service,
    pub deployment: Deployment,
}

impl Children {
    /// The children as JSON objects, in the order they are applied (config before workload).
    pub fn objects(&self) -> Vec<Value> {
        let mut out = vec![to_json(&self.config_map)];
        if let Some(sa) = &self.service_account {
            out.push(to_json(sa));
        }
        out.push(to_json(&self.service));
        out.push(to_json(&self.deployment));
        out
    }
}

/// The names a kind gives its children (each a function of the owner's name).
pub struct Names {
    pub config_map: String,
    pub service_account: String,
    pub service: String,
    pub deployment: String,
}

/// The workload kinds whose children share the child kinds' names in a namespace: every
/// `app.kubernetes.io/name` our children carry. Each kind's labelled cache holds its own.
pub const WORKLOAD_KINDS: [&str; 4] = [
    children::KIND_LABEL,
    super::mcpremoteproxy_children::KIND_LABEL,
    super::mcpregistry_children::KIND_LABEL,
    super::vmcp_children::KIND_LABEL,
];

/// The labelled watch caches of one kind's workload children.
#[derive(Clone)]
pub struct Labelled {
    pub deployments: Store<Slim<Deployment>>,
    pub services: Store<Slim<Service>>,
    pub service_accounts: Store<Slim<ServiceAccount>>,
    pub config_maps: Store<Slim<ConfigMap>>,
}

/// The watch caches of one kind's workload children, and what the kind needs to know of the
/// names its children would take.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Slim<Deployment>>,
    pub services: Store<Slim<Service>>,
    pub service_accounts: Store<Slim<ServiceAccount>>,
    pub config_maps: Store<Slim<ConfigMap>>,
    kind_label: &'static str,
    neighbours: Neighbourhood,
}

/// What every workload kind of one process shares to know who holds a child's name without
/// reading it first: each kind's labelled caches (registered as the kinds start), and by
/// metadata the objects of the child kinds that none of those caches sees — users' objects,
/// another operator's, and ours labelled for no kind we run. Each object is cached once: a kind
/// looks at its siblings' caches for their children instead of watching them again (a second
/// watch of every MCPServer's children cost +105 MiB at 10,000). In a namespace holding only
/// our children, the metadata caches are empty.
#[derive(Clone)]
pub struct Neighbourhood {
    labelled: Arc<RwLock<Vec<(&'static str, Labelled)>>>,
    others: Others,
}

/// The metadata caches of the child kinds' objects outside every labelled cache, without
/// labels, annotations or managedFields. Two watches per kind, because a label selector cannot
/// say "not both labels": objects not managed by us, and ours labelled for no workload kind.
#[derive(Clone)]
pub struct Others {
    deployments: OtherStores<Deployment>,
    services: OtherStores<Service>,
    service_accounts: OtherStores<ServiceAccount>,
    config_maps: OtherStores<ConfigMap>,
}

/// A child kind, and where each cache of the [`Neighbourhood`] keeps it.
pub trait ChildKind: Reduce + serde::Serialize + serde::de::DeserializeOwned {
    fn labelled(stores: &Labelled) -> &Store<Slim<Self>>;
    fn others(others: &Others) -> &OtherStores<Self>;
}

macro_rules! child_kind {
    ($kind:ty, $field:ident) => {
        impl ChildKind for $kind {
            fn labelled(stores: &Labelled) -> &Store<Slim<Self>> {
                &stores.$field
            }
            fn others(others: &Others) -> &OtherStores<Self> {
                &others.$field
            }
        }
    };
}
child_kind!(Deployment, deployments);
child_kind!(Service, services);
child_kind!(ServiceAccount, service_accounts);
child_kind!(ConfigMap, config_maps);

/// Whether a cache has listed once (without waiting for it).
fn listed<T: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<T>) -> bool {
    use futures::FutureExt;
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

impl Stores {
    /// What holds `name` of child kind `C` outside this kind's labelled cache; `Unknown` (read
    /// it) until every cache that could hold it has listed once, or while a sibling kind is not
    /// running in this process.
    ///
    /// A watch lags the API server by its delivery time, so an object created in the same
    /// instant as the owner may not be here yet; so may one created between a read and a
    /// write, which is the window the read had. Objects that were there before the owner are
    /// always seen.
    fn unlabelled<C: ChildKind>(&self, ns: &str, name: &str) -> Unlabelled {
        let key = at::<Slim<C>>(ns, name);
        let others = C::others(&self.neighbours.others);
        if !others.iter().all(listed) {
            return Unlabelled::Unknown;
        }
        if let Some(meta) = others.iter().find_map(|s| s.get(&at(ns, name))) {
            return Unlabelled::Present(to_json(meta.as_ref()));
        }
        let labelled = self
            .neighbours
            .labelled
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for kind in WORKLOAD_KINDS.iter().filter(|k| **k != self.kind_label) {
            let Some((_, sibling)) = labelled.iter().find(|(k, _)| k == kind) else {
                return Unlabelled::Unknown;
            };
            let store = C::labelled(sibling);
            if !listed(store) {
                return Unlabelled::Unknown;
            }
            if let Some(child) = store.get(&key) {
                return Unlabelled::Present(to_json(child.as_ref()));
            }
        }
        Unlabelled::Absent
    }
}

/// The two metadata caches of one child kind outside the labelled caches.
pub type OtherStores<C> = [Store<PartialObjectMeta<C>>; 2];

/// The two metadata watches of child kind `C` outside every labelled cache, and the stream
/// that keeps them fed (it yields only watch errors).
fn watch_others<C>(
    client: &kube::Client,
    namespace: &Option<String>,
) -> (
    OtherStores<C>,
    BoxStream<'static, Result<C, watcher::Error>>,
)
where
    C: ChildKind,
{
    let selectors = [
        format!("{MANAGED_BY}!={OPERATOR}"),
        format!(
            "{MANAGED_BY}={OPERATOR},{NAME_LABEL} notin ({})",
            WORKLOAD_KINDS.join(",")
        ),
    ];
    let mut stores = Vec::with_capacity(2);
    let mut streams = Vec::with_capacity(2);
    for selector in selectors {
        let api: kube::Api<PartialObjectMeta<C>> = match namespace {
            Some(ns) => kube::Api::namespaced(client.clone(), ns),
            None => kube::Api::all(client.clone()),
        };
        let (store, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .modify(|m: &mut PartialObjectMeta<C>| {
                // Only the name and the owner references decide "whose is it".
                m.metadata.managed_fields = None;
                m.metadata.annotations = None;
                m.metadata.labels = None;
            })
            .reflect(writer)
            .filter_map(|event| futures::future::ready(event.err().map(Err)));
        stores.push(store);
        streams.push(stream.boxed());
    }
    let stores: [_; 2] = stores
        .try_into()
        .unwrap_or_else(|_| unreachable!("two selectors"));
    (stores, futures::stream::select_all(streams).boxed())
}

impl Neighbourhood {
    /// Starts the metadata watches of the objects outside every labelled cache; the returned
    /// future keeps them fed (run it next to the controllers) and logs their errors.
    pub fn watch(
        client: &kube::Client,
        namespace: &Option<String>,
    ) -> (Self, futures::future::BoxFuture<'static, ()>) {
        let (deployments, d) = watch_others::<Deployment>(client, namespace);
        let (services, s) = watch_others::<Service>(client, namespace);
        let (service_accounts, sa) = watch_others::<ServiceAccount>(client, namespace);
        let (config_maps, cm) = watch_others::<ConfigMap>(client, namespace);
        let errors = futures::stream::select_all([
            d.map(|r| r.err()).boxed(),
            s.map(|r| r.err()).boxed(),
            sa.map(|r| r.err()).boxed(),
            cm.map(|r| r.err()).boxed(),
        ]);
        let feed = errors.for_each(|e| {
            if let Some(e) = e {
                tracing::warn!(error = %e, "watching the child kinds' other objects");
            }
            futures::future::ready(())
        });
        let neighbourhood = Neighbourhood {
            labelled: Arc::default(),
            others: Others {
                deployments,
                services,
                service_accounts,
                config_maps,
            },
        };
        (neighbourhood, futures::FutureExt::boxed(feed))
    }

    /// Makes `kind_label`'s labelled caches visible to the other workload kinds.
    pub fn register(&self, kind_label: &'static str, stores: Labelled) {
        let mut labelled = self.labelled.write().unwrap_or_else(|e| e.into_inner());
        labelled.retain(|(k, _)| *k != kind_label);
        labelled.push((kind_label, stores));
    }

    /// Every cache another kind's apply may consult, for a bounded wait at start-up.
    fn all_ready(&self) -> impl std::future::Future<Output = ()> + 'static {
        let o = self.others.clone();
        let labelled: Vec<Labelled> = self
            .labelled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        async move {
            for s in &o.deployments {
                let _ = s.wait_until_ready().await;
            }
            for s in &o.services {
                let _ = s.wait_until_ready().await;
            }
            for s in &o.service_accounts {
                let _ = s.wait_until_ready().await;
            }
            for s in &o.config_maps {
                let _ = s.wait_until_ready().await;
            }
            for l in &labelled {
                l.all_ready().await;
            }
        }
    }
}

impl Labelled {
    async fn all_ready(&self) {
        let _ = self.config_maps.wait_until_ready().await;
        let _ = self.service_accounts.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.deployments.wait_until_ready().await;
    }
}

/// The labels every child carries (see `children::labels`): the two the watches select on.
pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const NAME_LABEL: &str = "app.kubernetes.io/name";
pub(crate) const OPERATOR: &str = children::FIELD_MANAGER;

/// The change streams behind [`Stores`], for `Controller::owns_stream`.
pub struct Streams {
    pub deployments: BoxStream<'static, Result<Slim<Deployment>, watcher::Error>>,
    pub services: BoxStream<'static, Result<Slim<Service>, watcher::Error>>,
    pub service_accounts: BoxStream<'static, Result<Slim<ServiceAccount>, watcher::Error>>,
    pub config_maps: BoxStream<'static, Result<Slim<ConfigMap>, watcher::Error>>,
}

impl Stores {
    /// Watches the children labelled as ours and as `kind_label`'s (one kind's children,
    /// nobody else's), and registers them with the `neighbours` every kind consults.
    pub fn reflect<K>(
        frame: &Frame<K>,
        namespace: &Option<String>,
        kind_label: &'static str,
        neighbours: &Neighbourhood,
    ) -> (Self, Streams)
    where
        K: Owner,
    {
        let selector = format!("{MANAGED_BY}={OPERATOR},{NAME_LABEL}={kind_label}");
        let cfg = watcher::Config::default().labels(&selector);
        let (deployments, d) = frame.reflect::<Slim<Deployment>>(namespace, cfg.clone());
        let (services, s) = frame.reflect::<Slim<Service>>(namespace, cfg.clone());
        let (service_accounts, sa) = frame.reflect::<Slim<ServiceAccount>>(namespace, cfg.clone());
        let (config_maps, cm) = frame.reflect::<Slim<ConfigMap>>(namespace, cfg);
        let labelled = Labelled {
            deployments: deployments.clone(),
            services: services.clone(),
            service_accounts: service_accounts.clone(),
            config_maps: config_maps.clone(),
        };
        neighbours.register(kind_label, labelled);
        let stores = Stores {
            deployments,
            services,
            service_accounts,
            config_maps,
            kind_label,
            neighbours: neighbours.clone(),
        };
        let streams = Streams {
            deployments: d.boxed(),
            services: s.boxed(),
            service_accounts: sa.boxed(),
            config_maps: cm.boxed(),
        };
        (stores, streams)
    }

    /// Waits (bounded) until every cache has listed once: right after start-up a child missing
    /// from a cache is not missing from the cluster, and applying it would be a write per child.
    pub async fn wait_ready(&self) {
        let own = Labelled {
            deployments: self.deployments.clone(),
            services: self.services.clone(),
            service_accounts: self.service_accounts.clone(),
            config_maps: self.config_maps.clone(),
        };
        let neighbours = self.neighbours.all_ready();
        let _ = tokio::time::timeout(super::frame::STORE_READY_WAIT, async {
            own.all_ready().await;
            neighbours.await;
        })
        .await;
    }
}

/// Applies the children of `owner` in order — configuration, identity, Service, Deployment —
/// and returns the Service as the cluster has it now. A child whose name is held by an object
/// that is not ours stops the rest (a Deployment must not start on someone else's ConfigMap)
/// and comes back as the conflict.
pub async fn apply<K>(
    frame: &Frame<K>,
    owner: &K,
    stores: &Stores,
    names: &Names,
    desired: &Children,
) -> Result<Result<Value, Conflict>, Error>
where
    K: Owner,
{
    let ns = owner.meta().namespace.clone().ok_or(Error::NoNamespace)?;
    stores.wait_ready().await;
    let live = stores.config_maps.get(&at(&ns, &names.config_map));
    let held = stores.unlabelled::<ConfigMap>(&ns, &names.config_map);
    if let Applied::Conflict(c) = frame
        .apply_known(owner, &desired.config_map, live, held)
        .await?
    {
        return Ok(Err(c));
    }
    let live_sa = stores
        .service_accounts
        .get(&at(&ns, &names.service_account));
    match &desired.service_account {
        Some(sa) => {
            let held = stores.unlabelled::<ServiceAccount>(&ns, &names.service_account);
            if let Applied::Conflict(c) = frame.apply_known(owner, sa, live_sa, held).await? {
                return Ok(Err(c));
            }
        }
        None => frame.delete(owner, live_sa).await?,
    }
    let live = stores.services.get(&at(&ns, &names.service));
    let held = stores.unlabelled::<Service>(&ns, &names.service);
    let service = match frame
        .apply_known(owner, &desired.service, live, held)
        .await?
    {
        Applied::Conflict(c) => return Ok(Err(c)),
        Applied::Ours(live) => own_service_lists(frame, &ns, &desired.service, live).await?,
    };
    let live = stores.deployments.get(&at(&ns, &names.deployment));
    let held = stores.unlabelled::<Deployment>(&ns, &names.deployment);
    if let Applied::Conflict(c) = frame
        .apply_known(owner, &desired.deployment, live, held)
        .await?
    {
        return Ok(Err(c));
    }
    Ok(Ok(service))
}

/// Makes the Service's selector and ports exactly ours when someone added to them. Server-side
/// apply cannot do it: items and keys another manager set are theirs, and a forced apply keeps
/// them. A merge patch replaces the ports list whole and nulls the extra selector keys; being an
/// update, it also takes the removed fields out of the other manager's ownership.
async fn own_service_lists<K: Owner>(
    frame: &Frame<K>,
    ns: &str,
    desired: &Service,
    live: Value,
) -> Result<Value, Error> {
    let want = to_json(desired);
    if children::service_lists_are_ours(&want, &live) {
        return Ok(live);
    }
    let name = desired.meta().name.clone().unwrap_or_default();
    let patch = children::service_lists_patch(&want, &live);
    let api: Api<Service> = Api::namespaced(frame.client.clone(), ns);
    let written = api
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(children::FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::ApplyChild {
            child: children::describe(&want),
            source,
        })?;
    frame.metrics.count_apply(Service::kind(&()).as_ref());
    let written = to_json(&written);
    let kind = Service::kind(&());
    frame.confirm(Frame::<K>::child_key(&kind, ns, &name), &written);
    Ok(written)
}

/// What the cluster has of a workload's Deployment and Service — ours only (a foreign object
/// holding the name counts as absent) — as JSON, for the status.
#[derive(Default)]
pub struct Observed {
    pub deployment: Option<Value>,
    pub service: bool,
}

impl Stores {
    /// The Deployment `deployment` and Service `service` of the owner with `owner_uid` in `ns`,
    /// as this kind's caches hold them.
    pub fn observe(&self, ns: &str, deployment: &str, service: &str, owner_uid: &str) -> Observed {
        let ours =
            |v: Option<Value>| v.filter(|v| super::frame::foreign_holder(v, owner_uid).is_none());
        let deployment = self
            .deployments
            .get(&at(ns, deployment))
            .map(|d| to_json(d.as_ref()));
        let service = self
            .services
            .get(&at(ns, service))
            .map(|s| to_json(s.as_ref()));
        Observed {
            deployment: ours(deployment),
            service: ours(service).is_some(),
        }
    }
}

fn at<T: Resource<DynamicType = ()>>(ns: &str, name: &str) -> ObjectRef<T> {
    ObjectRef::new(name).within(ns)
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}
