//! The children every bridge-fronted workload has — MCPServer and MCPRemoteProxy alike: a
//! ConfigMap with the bridge's configuration, an optional ServiceAccount, a Service and a
//! Deployment. Their caches, and the order and rules by which they are applied, live here once.

use super::frame::{Applied, Conflict, Error, Frame, Owner};
use super::{children, metrics::ControllerMetrics};
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
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
}

/// The change streams behind [`Stores`], for `Controller::owns_stream`.
pub struct Streams {
    pub deployments: BoxStream<'static, Result<Deployment, watcher::Error>>,
    pub services: BoxStream<'static, Result<Service, watcher::Error>>,
    pub service_accounts: BoxStream<'static, Result<ServiceAccount, watcher::Error>>,
    pub config_maps: BoxStream<'static, Result<ConfigMap, watcher::Error>>,
}

impl Stores {
    /// Watches the children labelled with `selector` (one kind's children, nobody else's).
    pub fn reflect<K>(
        frame: &Frame<K>,
        namespace: &Option<String>,
        selector: &str,
    ) -> (Self, Streams)
    where
        K: Owner,
    {
        let cfg = watcher::Config::default().labels(selector);
        let (deployments, d) = frame.reflect::<Deployment>(namespace, cfg.clone());
        let (services, s) = frame.reflect::<Service>(namespace, cfg.clone());
        let (service_accounts, sa) = frame.reflect::<ServiceAccount>(namespace, cfg.clone());
        let (config_maps, cm) = frame.reflect::<ConfigMap>(namespace, cfg);
        let stores = Stores {
            deployments,
            services,
            service_accounts,
            config_maps,
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
        let _ = tokio::time::timeout(super::frame::STORE_READY_WAIT, async {
            let _ = self.config_maps.wait_until_ready().await;
            let _ = self.service_accounts.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            let _ = self.deployments.wait_until_ready().await;
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
    if let Applied::Conflict(c) = frame.apply(owner, &desired.config_map, live).await? {
        return Ok(Err(c));
    }
    let live_sa = stores
        .service_accounts
        .get(&at(&ns, &names.service_account));
    match &desired.service_account {
        Some(sa) => {
            if let Applied::Conflict(c) = frame.apply(owner, sa, live_sa).await? {
                return Ok(Err(c));
            }
        }
        None => frame.delete(owner, live_sa).await?,
    }
    let live = stores.services.get(&at(&ns, &names.service));
    let service = match frame.apply(owner, &desired.service, live).await? {
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
    if let Applied::Conflict(c) = frame.apply(owner, &desired.deployment, live).await? {
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
