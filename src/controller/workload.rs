//! The children every bridge-fronted workload has — MCPServer and MCPRemoteProxy alike: a
//! ConfigMap with the bridge's configuration, an optional ServiceAccount, a Service and a
//! Deployment. Their caches, and the order and rules by which they are applied, live here once.

use super::frame::{Applied, Conflict, Error, Frame, Owner, Unlabelled};
use super::{children, metrics::ControllerMetrics};
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

/// The watch caches of one kind's workload children.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub service_accounts: Store<ServiceAccount>,
    pub config_maps: Store<ConfigMap>,
    /// Everything else of those kinds, by metadata: what holds a name before we create it.
    pub others: Others,
}

/// The objects of the child kinds that the labelled caches do not see — users' objects,
/// another operator's, and the children of our other kinds — by metadata only, without labels,
/// annotations or managedFields. Two watches per kind, because a label selector cannot say
/// "not both labels": objects not managed by us, and ours labelled for another kind. Together
/// with the labelled cache they cover every name, so creating a child needs no read first (the
/// never-adopt check costs no request); in a namespace holding only our children, they are empty.
#[derive(Clone)]
pub struct Others {
    deployments: OtherStores<Deployment>,
    services: OtherStores<Service>,
    service_accounts: OtherStores<ServiceAccount>,
    config_maps: OtherStores<ConfigMap>,
}

/// What holds `name` among `stores` (the two watches of one kind); `Unknown` (read it) until
/// both have listed once.
///
/// A watch lags the API server by its delivery time, so an object created in the same instant
/// as the owner may not be here yet; so may one created between a read and a write, which is
/// the window the read had. Objects that were there before the owner are always seen.
fn unlabelled<C>(stores: &OtherStores<C>, ns: &str, name: &str) -> Unlabelled
where
    C: Resource<DynamicType = ()> + Clone + 'static,
{
    use futures::FutureExt;
    let listed = |s: &Store<PartialObjectMeta<C>>| {
        matches!(s.wait_until_ready().now_or_never(), Some(Ok(())))
    };
    if !stores.iter().all(listed) {
        return Unlabelled::Unknown;
    }
    let key = ObjectRef::new(name).within(ns);
    match stores.iter().find_map(|s| s.get(&key)) {
        Some(meta) => Unlabelled::Present(to_json(meta.as_ref())),
        None => Unlabelled::Absent,
    }
}

/// The two metadata caches of one child kind outside the labelled cache.
type OtherStores<C> = [Store<PartialObjectMeta<C>>; 2];
/// A child kind's change stream, as `Controller::owns_stream` takes it.
type ChildStream<C> = BoxStream<'static, Result<C, watcher::Error>>;

/// The two metadata watches of child kind `C` outside `kind_label`'s labelled cache, and the
/// stream that keeps them fed (it yields nothing: it is polled as part of the child stream).
fn watch_others<C>(
    client: &kube::Client,
    namespace: &Option<String>,
    kind_label: &str,
) -> (OtherStores<C>, ChildStream<C>)
where
    C: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let selectors = [
        format!("{MANAGED_BY}!={OPERATOR}"),
        format!("{MANAGED_BY}={OPERATOR},{NAME_LABEL}!={kind_label}"),
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

/// The labels every child carries (see `children::labels`): the two the watches select on.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const NAME_LABEL: &str = "app.kubernetes.io/name";
const OPERATOR: &str = children::FIELD_MANAGER;

/// The change streams behind [`Stores`], for `Controller::owns_stream`.
pub struct Streams {
    pub deployments: BoxStream<'static, Result<Deployment, watcher::Error>>,
    pub services: BoxStream<'static, Result<Service, watcher::Error>>,
    pub service_accounts: BoxStream<'static, Result<ServiceAccount, watcher::Error>>,
    pub config_maps: BoxStream<'static, Result<ConfigMap, watcher::Error>>,
}

impl Stores {
    /// Watches the children labelled as ours and as `kind_label`'s (one kind's children,
    /// nobody else's), and by metadata every other object of the child kinds.
    pub fn reflect<K>(
        frame: &Frame<K>,
        namespace: &Option<String>,
        kind_label: &str,
    ) -> (Self, Streams)
    where
        K: Owner,
    {
        let selector = format!("{MANAGED_BY}={OPERATOR},{NAME_LABEL}={kind_label}");
        let cfg = watcher::Config::default().labels(&selector);
        let client = &frame.client;
        let (deployments, d) = frame.reflect::<Deployment>(namespace, cfg.clone());
        let (services, s) = frame.reflect::<Service>(namespace, cfg.clone());
        let (service_accounts, sa) = frame.reflect::<ServiceAccount>(namespace, cfg.clone());
        let (config_maps, cm) = frame.reflect::<ConfigMap>(namespace, cfg);
        let (other_d, od) = watch_others::<Deployment>(client, namespace, kind_label);
        let (other_s, os) = watch_others::<Service>(client, namespace, kind_label);
        let (other_sa, osa) = watch_others::<ServiceAccount>(client, namespace, kind_label);
        let (other_cm, ocm) = watch_others::<ConfigMap>(client, namespace, kind_label);
        let stores = Stores {
            deployments,
            services,
            service_accounts,
            config_maps,
            others: Others {
                deployments: other_d,
                services: other_s,
                service_accounts: other_sa,
                config_maps: other_cm,
            },
        };
        // Each metadata watch rides on the labelled stream of its kind, so the controller
        // polls it; it never yields an object (nothing of someone else's triggers a reconcile).
        let streams = Streams {
            deployments: futures::stream::select(d, od).boxed(),
            services: futures::stream::select(s, os).boxed(),
            service_accounts: futures::stream::select(sa, osa).boxed(),
            config_maps: futures::stream::select(cm, ocm).boxed(),
        };
        (stores, streams)
    }

    /// Waits (bounded) until every cache has listed once: right after start-up a child missing
    /// from a cache is not missing from the cluster, and applying it would be a write per child.
    pub async fn wait_ready(&self) {
        let _ = tokio::time::timeout(super::frame::STORE_READY_WAIT, async {
            let _ = self.config_maps.wait_until_ready().await;
            let _ = self.service_accounts.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            let _ = self.deployments.wait_until_ready().await;
            let o = &self.others;
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
    let others = &stores.others;
    let live = stores.config_maps.get(&at(&ns, &names.config_map));
    let held = unlabelled(&others.config_maps, &ns, &names.config_map);
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
            let held = unlabelled(&others.service_accounts, &ns, &names.service_account);
            if let Applied::Conflict(c) = frame.apply_known(owner, sa, live_sa, held).await? {
                return Ok(Err(c));
            }
        }
        None => frame.delete(owner, live_sa).await?,
    }
    let live = stores.services.get(&at(&ns, &names.service));
    let held = unlabelled(&others.services, &ns, &names.service);
    let service = match frame
        .apply_known(owner, &desired.service, live, held)
        .await?
    {
        Applied::Conflict(c) => return Ok(Err(c)),
        Applied::Ours(live) => {
            own_service_lists(
                frame.client.clone(),
                &frame.metrics,
                &ns,
                &desired.service,
                live,
            )
            .await?
        }
    };
    let live = stores.deployments.get(&at(&ns, &names.deployment));
    let held = unlabelled(&others.deployments, &ns, &names.deployment);
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
async fn own_service_lists(
    client: kube::Client,
    metrics: &ControllerMetrics,
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
    let api: Api<Service> = Api::namespaced(client, ns);
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
    metrics.count_apply(Service::kind(&()).as_ref());
    Ok(to_json(&written))
}

fn at<T: Resource<DynamicType = ()>>(ns: &str, name: &str) -> ObjectRef<T> {
    ObjectRef::new(name).within(ns)
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}
