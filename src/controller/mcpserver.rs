//! The MCPServer reconciler: re-validate, resolve, apply children (only when they differ), and
//! report status (only when it changes).

use super::children::{self, Children, Inputs, FIELD_MANAGER};
use super::credentials::PullCredentials;
use super::metrics::ControllerMetrics;
use super::resolve::CommandResolver;
use crate::admission::{self, Operation};
use crate::api::v1beta1::{MCPGroup, MCPServer, MCPServerStatus, MCPToolConfig, MCPToolConfigSpec};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Label every child carries; the child watches select on it.
const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=mcp-operator";
/// A converged object is looked at again this often (watch events do the real work).
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(600);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Operator-wide settings of the reconciler.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub bridge_image: String,
    pub default_pull_secrets: Vec<String>,
    /// How often a converged object is reconciled again; `None` for [`DEFAULT_RESYNC`].
    pub resync: Option<Duration>,
    /// The longest wait between retries of a failing object; `None` for 5 minutes.
    pub max_backoff: Option<Duration>,
    /// Reconciles in flight at once; `None` for [`DEFAULT_CONCURRENCY`], `Some(0)` unbounded.
    pub concurrency: Option<u16>,
}

/// Reconciles in flight at once by default. Each holds its object's desired children while it
/// waits on the API server: unbounded, 10,000 MCPServers created at once would all be built at
/// the same time and the peak memory would be theirs, not the caches'.
pub const DEFAULT_CONCURRENCY: u16 = 32;

/// Everything a reconcile needs besides the object.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub resolver: Arc<dyn CommandResolver>,
    pub metrics: ControllerMetrics,
    recorder: Recorder,
    stores: Stores,
    failures: Mutex<HashMap<ObjectRef<MCPServer>, u32>>,
    /// The admission verdict of each object's current generation: a spec does not change
    /// without a new generation, so a resync need not check it again.
    verdicts: Mutex<HashMap<ObjectRef<MCPServer>, CachedVerdict>>,
    /// What we wrote lately, to tell a lagging watch cache from real drift (see [`Recent`]).
    recent: Mutex<RecentWrites>,
    /// Writes skipped because the cache lagged; a reconcile that skipped any comes back soon.
    lag_skips: std::sync::atomic::AtomicU64,
    /// Key names of referenced Secrets by `ns/name`, with the resourceVersion they were read at.
    secret_keys: Mutex<HashMap<String, (String, Vec<String>)>>,
}

/// Our last write of an object: when, the resourceVersion the API server answered with, and
/// a digest of what we sent. Until the watch cache shows at least that version, the cache is
/// behind, not drifted: comparing against it would write the same thing again (and again, for
/// every event of a busy object).
struct Recent {
    at: std::time::Instant,
    version: Option<u64>,
    sent: u64,
}

/// How long a write may stand in for an object the cache does not show at all (it may have
/// been deleted since: then it is recreated after this long).
const CACHE_LAG_WINDOW: Duration = Duration::from_secs(5);
/// How long a write may stand in for an older copy in the cache. The versions decide here, so
/// this only bounds memory; it must outlast the watch lag of a busy cluster, where thousands of
/// objects converge at once and events trail the writes by tens of seconds.
const VERSION_LAG_WINDOW: Duration = Duration::from_secs(120);

/// Every [`Recent`] write, pruned at most once per [`CACHE_LAG_WINDOW`] (pruning on every call
/// made each reconcile cost as much as the number of objects written lately).
#[derive(Default)]
struct RecentWrites {
    by_key: HashMap<String, Recent>,
    pruned: Option<std::time::Instant>,
}

impl RecentWrites {
    fn prune(&mut self) {
        if self.pruned.is_some_and(|p| p.elapsed() < CACHE_LAG_WINDOW) {
            return;
        }
        self.by_key
            .retain(|_, r| r.at.elapsed() < VERSION_LAG_WINDOW);
        self.pruned = Some(std::time::Instant::now());
    }
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
fn cache_is_behind(r: &Recent, live: Option<Option<u64>>, progress: Option<u64>) -> bool {
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
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

impl Context {
    /// True when `want` is what we last sent and the cache simply has not caught up with it.
    /// `watch_progress` is the highest version the object's watch has delivered, if known.
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
            // A missing object may be lag or a deletion: look again once the window is over.
            self.lag_skips
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        skip
    }

    fn remember_write(&self, key: String, sent: &Value, written: &Value) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.by_key.insert(
            key,
            Recent {
                at: std::time::Instant::now(),
                version: version_of(written),
                sent: digest(sent),
            },
        );
    }
}

/// The generation a verdict is for, and the admission errors (none: valid).
type CachedVerdict = (Option<i64>, Option<String>);

/// Caches fed by the same watches that trigger reconciles.
#[derive(Clone)]
struct Stores {
    deployments: Store<Deployment>,
    services: Store<Service>,
    service_accounts: Store<ServiceAccount>,
    config_maps: Store<ConfigMap>,
    secrets: Store<PartialObjectMeta<Secret>>,
    tool_configs: Store<MCPToolConfig>,
    groups: Store<MCPGroup>,
    servers: Option<Store<MCPServer>>,
    /// The highest resourceVersion each child watch has delivered, by kind: a child missing
    /// from its store although its watch is past our write of it was deleted since, while one
    /// written after that point may simply not have arrived yet.
    seen: HashMap<String, Arc<AtomicU64>>,
}

/// Why a reconcile failed; the variant name is the metric label and the Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to apply {child}: {source}")]
    ApplyChild { child: String, source: kube::Error },
    #[error("failed to delete {child}: {source}")]
    DeleteChild { child: String, source: kube::Error },
    #[error("failed to write the status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("the object has no namespace")]
    NoNamespace,
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ApplyChild { .. } => "ApplyChild",
            Error::DeleteChild { .. } => "DeleteChild",
            Error::WriteStatus(_) => "WriteStatus",
            Error::NoNamespace => "NoNamespace",
        }
    }
}

/// Runs the MCPServer controller over `namespace` (all namespaces when `None`) until the
/// returned future is dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    resolver: Arc<dyn CommandResolver>,
    metrics: ControllerMetrics,
) {
    let api = |client: &Client| -> Api<MCPServer> {
        match &namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    };
    let children_cfg = watcher::Config::default().labels(MANAGED_SELECTOR);
    let (deployments, deployment_stream, deployments_seen) =
        reflect::<Deployment>(&client, &namespace, children_cfg.clone());
    let (services, service_stream, services_seen) =
        reflect::<Service>(&client, &namespace, children_cfg.clone());
    let (service_accounts, sa_stream, service_accounts_seen) =
        reflect::<ServiceAccount>(&client, &namespace, children_cfg.clone());
    let (config_maps, cm_stream, config_maps_seen) =
        reflect::<ConfigMap>(&client, &namespace, children_cfg);
    let (tool_configs, tool_config_stream, _) =
        reflect::<MCPToolConfig>(&client, &namespace, watcher::Config::default());
    let (groups, group_stream, _) =
        reflect::<MCPGroup>(&client, &namespace, watcher::Config::default());
    // Secrets by metadata only: their values never enter the operator's memory.
    let (secrets, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secret_api: Api<PartialObjectMeta<Secret>> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let secret_stream = watcher(secret_api, watcher::Config::default())
        .default_backoff()
        .reflect(secret_writer)
        .touched_objects();

    // The MCPServers themselves are cached without managedFields too (see `reflect`).
    let (servers, server_writer) = reflector::store::<MCPServer>();
    let server_stream = watcher(api(&client), watcher::Config::default())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(server_writer)
        .applied_objects();
    metrics.watch_servers(servers.clone());
    let concurrency = settings.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    let controller = Controller::for_stream(server_stream, servers.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        ),
        client: client.clone(),
        settings,
        resolver,
        metrics,
        stores: Stores {
            deployments,
            services,
            service_accounts,
            config_maps,
            secrets,
            tool_configs,
            groups,
            servers: Some(servers.clone()),
            seen: HashMap::from([
                (Deployment::kind(&()).to_string(), deployments_seen),
                (Service::kind(&()).to_string(), services_seen),
                (ServiceAccount::kind(&()).to_string(), service_accounts_seen),
                (ConfigMap::kind(&()).to_string(), config_maps_seen),
            ]),
        },
        failures: Mutex::new(HashMap::new()),
        verdicts: Mutex::new(HashMap::new()),
        recent: Mutex::new(RecentWrites::default()),
        lag_skips: Default::default(),
        secret_keys: Mutex::new(HashMap::new()),
    });
    let by_secret = servers.clone();
    let by_tool_config = servers.clone();
    let by_group = servers.clone();
    controller
        .owns_stream(deployment_stream)
        .owns_stream(service_stream)
        .owns_stream(sa_stream)
        .owns_stream(cm_stream)
        .watches_stream(secret_stream, move |secret| {
            referencing(&by_secret, &secret.namespace(), |s| {
                secret_names(s).contains(&secret.name_any())
            })
        })
        .watches_stream(tool_config_stream, move |tc| {
            referencing(&by_tool_config, &tc.namespace(), |s| {
                s.spec
                    .tool_config_ref
                    .as_ref()
                    .is_some_and(|r| r.name == tc.name_any())
            })
        })
        .watches_stream(group_stream, move |g| {
            referencing(&by_group, &g.namespace(), |s| {
                s.spec
                    .group_ref
                    .as_ref()
                    .is_some_and(|r| r.name == g.name_any())
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// A store and the stream of objects it saw, for one child (or referenced) kind.
fn reflect<K>(
    client: &Client,
    namespace: &Option<String>,
    cfg: watcher::Config,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    Arc<AtomicU64>,
)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let seen = Arc::new(AtomicU64::new(0));
    let progress = seen.clone();
    // managedFields are often the larger half of a child and nothing here reads them: at
    // thousands of MCPServers they would be most of the operator's memory.
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
    (store, stream, seen)
}

fn referencing(
    servers: &Store<MCPServer>,
    ns: &Option<String>,
    pred: impl Fn(&MCPServer) -> bool,
) -> Vec<ObjectRef<MCPServer>> {
    servers
        .state()
        .iter()
        .filter(|s| s.namespace() == *ns && pred(s))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn secret_names(server: &MCPServer) -> Vec<String> {
    server
        .spec
        .secrets
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect()
}

/// One pass over one MCPServer.
pub async fn reconcile(server: Arc<MCPServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    if let Some(servers) = &ctx.stores.servers {
        ctx.metrics.set_managed("MCPServer", servers.len());
    }
    let result = reconcile_inner(&server, &ctx).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) => e.reason(),
    };
    ctx.metrics
        .observe_reconcile("MCPServer", outcome, started.elapsed());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ObjectRef::from_obj(server.as_ref()));
    }
    result
}

async fn reconcile_inner(server: &MCPServer, ctx: &Context) -> Result<Action, Error> {
    let ns = server.namespace().ok_or(Error::NoNamespace)?;
    let skips_before = ctx.lag_skips.load(std::sync::atomic::Ordering::Relaxed);
    if server.meta().deletion_timestamp.is_some() {
        // Children go with the owner references; nothing outside them needs cleaning.
        return Ok(Action::await_change());
    }
    // The webhook may be off or may have been bypassed: check again before acting.
    if let Some(message) = spec_errors(server, ctx) {
        let verdict = Verdict::Refused {
            reason: "InvalidSpec",
            why: message,
        };
        report_without_rollout(server, ctx, &ns, verdict).await?;
        return Ok(Action::await_change());
    }
    // Authentication asked for and not enforced by the data path: running would serve
    // everyone. Nothing of ours may serve it (see `stop_serving`).
    if children::asks_for_inline_oidc(server) {
        stop_serving(server, ctx, &ns).await?;
        let verdict = Verdict::Refused {
            reason: "AuthenticationNotSupported",
            why: INLINE_OIDC_HELD.into(),
        };
        let status = status_for(server, &Observed::default(), verdict, None);
        write_status(server, ctx, with_group(server, ctx, status)).await?;
        return Ok(Action::await_change());
    }
    // A missing or refused MCPToolConfig must not mean "every tool": nothing is applied (running
    // pods keep their configuration) until it is fixed; its watch brings us back.
    let tool_config = match referenced_tool_config(server, ctx, &ns).await {
        Ok(spec) => spec,
        Err((reason, why)) => {
            let verdict = Verdict::BadReference { reason, why };
            report_without_rollout(server, ctx, &ns, verdict).await?;
            return Ok(Action::await_change());
        }
    };
    // Neither may two allow-lists with nothing in common: the bridge reads "no list" as "all".
    if children::no_tool_allowed(server, tool_config.as_ref()) {
        let reference = server
            .spec
            .tool_config_ref
            .as_ref()
            .map(|r| r.name.as_str());
        let verdict = Verdict::BadReference {
            reason: "NoToolsAllowed",
            why: format!(
                "spec.tools and the toolsFilter of MCPToolConfig {:?} have no tool in common, so no tool could be served; \
                 allow at least one tool in both (by the name clients see, after toolsOverride) or remove one of the lists",
                reference.unwrap_or_default()
            ),
        };
        report_without_rollout(server, ctx, &ns, verdict).await?;
        return Ok(Action::await_change());
    }
    let (command, resolved) = match &server.spec.command {
        Some(c) => (Some(c.clone()), None),
        None => {
            let (pull, unreadable) = pull_credentials(server, ctx, &ns).await;
            match ctx.resolver.resolve(&server.spec.image, &pull).await {
                Ok(c) => (
                    Some(c.command_for(server.spec.args.is_some())),
                    Some(Ok(())),
                ),
                Err(why) if unreadable.is_empty() => (None, Some(Err(why))),
                Err(why) => (None, Some(Err(format!("{why}; {}", unreadable.join("; "))))),
            }
        }
    };
    let Some(command) = command else {
        let status = status_for(server, &Observed::default(), Verdict::Accepted, resolved);
        write_status(server, ctx, status).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    let inputs = Inputs {
        bridge_image: ctx.settings.bridge_image.clone(),
        command,
        tool_config,
        secret_versions: secret_versions(server, ctx),
        default_pull_secrets: ctx.settings.default_pull_secrets.clone(),
    };
    let desired = children::desired(server, &inputs);
    let service = apply_children(server, ctx, &ns, &desired).await?;
    // The pods cannot start without their Secrets: applied anyway (the kubelet retries, and the
    // Secret's watch rolls the pods once it exists), but not Ready.
    let verdict = match missing_secret(server, ctx, &ns).await {
        Some(why) => Verdict::Waiting {
            reason: "SecretNotFound",
            why,
        },
        None => Verdict::Accepted,
    };
    let live = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&children::deployment_name(&server.name_any())).within(&ns));
    let observed = Observed {
        deployment: live.as_deref().map(to_json),
        service,
    };
    let status = status_for(server, &observed, verdict, resolved);
    write_status(server, ctx, with_group(server, ctx, status)).await?;
    let resync = ctx.settings.resync.unwrap_or(DEFAULT_RESYNC);
    if ctx.lag_skips.load(std::sync::atomic::Ordering::Relaxed) != skips_before {
        return Ok(Action::requeue(resync.min(CACHE_LAG_WINDOW)));
    }
    Ok(Action::requeue(resync))
}

/// What to do today instead of inline OIDC, for the condition and the Event.
const INLINE_OIDC_HELD: &str = "spec.oidcConfig (kept from v1alpha1) asks for authentication, which this operator does not enforce yet; \
     nothing is deployed and any workload of ours is removed so the server never runs unauthenticated. \
     To run it without authentication knowingly, remove oidcConfig (at v1alpha1) or the toolhive.stacklok.dev/v1alpha1-oidcConfig annotation; \
     to run it with authentication, put an authenticating gateway in front of its Service and remove oidcConfig";

/// Writes the status of a server that is not rolled out this time, from what the cluster still
/// runs of it: its Service (for `status.url`) and Deployment.
async fn report_without_rollout(
    server: &MCPServer,
    ctx: &Context,
    ns: &str,
    verdict: Verdict,
) -> Result<(), Error> {
    let name = server.name_any();
    let deployment = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&children::deployment_name(&name)).within(ns));
    let service = ctx
        .stores
        .services
        .get(&ObjectRef::new(&children::service_name(&name)).within(ns));
    let observed = Observed {
        deployment: deployment.as_deref().map(to_json),
        service: service.as_deref().map(to_json),
    };
    let status = status_for(server, &observed, verdict, None);
    write_status(server, ctx, with_group(server, ctx, status)).await
}

/// Removes the Deployment and Service of ours, if any: a server that must not serve (it asks
/// for authentication the data path cannot give) keeps no pods and no door. Deleting is chosen
/// over scaling to zero because `replicas` may belong to an HPA, which would scale it up again;
/// the ConfigMap and ServiceAccount hold nothing that serves and stay. Nothing the user owns is
/// touched: only children found by our label under our names.
async fn stop_serving(server: &MCPServer, ctx: &Context, ns: &str) -> Result<(), Error> {
    let name = server.name_any();
    let deployment = children::deployment_name(&name);
    if ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&deployment).within(ns))
        .is_some()
    {
        delete_child::<Deployment>(ctx, ns, &deployment).await?;
    }
    let service = children::service_name(&name);
    if ctx
        .stores
        .services
        .get(&ObjectRef::new(&service).within(ns))
        .is_some()
    {
        delete_child::<Service>(ctx, ns, &service).await?;
    }
    Ok(())
}

async fn delete_child<K>(ctx: &Context, ns: &str, name: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::DeleteChild {
            child: format!("{}/{name}", K::kind(&())),
            source,
        }),
    }
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The referenced MCPToolConfig's spec (`None` without a reference), or why it cannot be used,
/// with the Ready reason: it does not exist (upstream fails the same way), or the admission core
/// refuses it (the bridge would refuse it too, and crash-loop).
async fn referenced_tool_config(
    server: &MCPServer,
    ctx: &Context,
    ns: &str,
) -> Result<Option<MCPToolConfigSpec>, (&'static str, String)> {
    let Some(reference) = &server.spec.tool_config_ref else {
        return Ok(None);
    };
    let name = &reference.name;
    // Right after start-up the cache may not have listed yet: "missing" is news only after.
    let store = &ctx.stores.tool_configs;
    let _ = tokio::time::timeout(STORE_READY_WAIT, store.wait_until_ready()).await;
    let Some(config) = store.get(&ObjectRef::new(name).within(ns)) else {
        return Err((
            "ToolConfigNotFound",
            format!(
                "MCPToolConfig {name:?} does not exist in namespace {ns}; create it or remove spec.toolConfigRef"
            ),
        ));
    };
    let object = serde_json::to_value(config.as_ref()).unwrap_or(Value::Null);
    match admission::admit(&object, None, Operation::Create) {
        Ok(verdict) if !verdict.allowed() => Err((
            "InvalidToolConfig",
            format!("MCPToolConfig {name:?} is not valid: {}", verdict.errors),
        )),
        _ => Ok(Some(config.spec.clone())),
    }
}

/// How long a reconcile waits for a reference cache's first list before judging by it.
const STORE_READY_WAIT: Duration = Duration::from_secs(10);

/// The registry logins of the pod's pull Secrets, and why any of them could not be used.
/// Read only when the image's command must be looked up; a missing Secret is skipped (the
/// kubelet would skip it too), and the lookup says so if it then fails.
async fn pull_credentials(
    server: &MCPServer,
    ctx: &Context,
    ns: &str,
) -> (PullCredentials, Vec<String>) {
    let mut pull = PullCredentials::default();
    let mut unreadable = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    for name in children::pull_secret_names(server, &ctx.settings.default_pull_secrets) {
        let data = match secrets.get_opt(&name).await {
            Ok(Some(secret)) => secret.data.unwrap_or_default(),
            Ok(None) => {
                unreadable.push(format!("imagePullSecret {name:?} does not exist"));
                continue;
            }
            Err(e) => {
                unreadable.push(format!("imagePullSecret {name:?} cannot be read: {e}"));
                continue;
            }
        };
        let data = data.into_iter().map(|(k, v)| (k, v.0)).collect();
        if let Err(why) = pull.add_secret_data(&data) {
            unreadable.push(format!("imagePullSecret {name:?} {why}"));
        }
    }
    (pull, unreadable)
}

/// The admission core's errors for this generation of the spec, if any (cached per generation).
fn spec_errors(server: &MCPServer, ctx: &Context) -> Option<String> {
    let key = ObjectRef::from_obj(server);
    let generation = server.meta().generation;
    let mut cache = ctx.verdicts.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((g, errors)) = cache.get(&key) {
        if *g == generation && generation.is_some() {
            return errors.clone();
        }
    }
    let object = serde_json::to_value(server).unwrap_or(Value::Null);
    let errors = match admission::admit(&object, None, Operation::Create) {
        Ok(v) if !v.allowed() => Some(v.errors.to_string()),
        _ => None,
    };
    cache.insert(key, (generation, errors.clone()));
    errors
}

fn secret_versions(server: &MCPServer, ctx: &Context) -> BTreeMap<String, String> {
    let ns = server.namespace().unwrap_or_default();
    secret_names(server)
        .into_iter()
        .map(|name| {
            let version = ctx
                .stores
                .secrets
                .get(&ObjectRef::new(&name).within(&ns))
                .and_then(|s| s.resource_version())
                .unwrap_or_else(|| "missing".into());
            (name, version)
        })
        .collect()
}

/// Server-side applies every child that differs from what the cluster has; converged children
/// cost nothing. A ServiceAccount we made but no longer need is removed. Returns the Service as
/// the cluster has it now (if known), for the status.
async fn apply_children(
    server: &MCPServer,
    ctx: &Context,
    ns: &str,
    desired: &Children,
) -> Result<Option<Value>, Error> {
    let name = server.name_any();
    // Right after start-up the child caches may not have listed yet: a child missing from
    // them is not missing from the cluster, and applying it would be a write per child.
    let stores = &ctx.stores;
    let _ = tokio::time::timeout(STORE_READY_WAIT, async {
        let _ = stores.config_maps.wait_until_ready().await;
        let _ = stores.service_accounts.wait_until_ready().await;
        let _ = stores.services.wait_until_ready().await;
        let _ = stores.deployments.wait_until_ready().await;
    })
    .await;
    apply_if_changed(
        ctx,
        ns,
        &desired.config_map,
        ctx.stores
            .config_maps
            .get(&ObjectRef::new(&children::config_map_name(&name)).within(ns)),
    )
    .await?;
    let sa_name = children::service_account_name(&name);
    let live_sa = ctx
        .stores
        .service_accounts
        .get(&ObjectRef::new(&sa_name).within(ns));
    match &desired.service_account {
        Some(sa) => {
            apply_if_changed(ctx, ns, sa, live_sa).await?;
        }
        None if live_sa.is_some() => delete_child::<ServiceAccount>(ctx, ns, &sa_name).await?,
        None => {}
    }
    let service = apply_if_changed(
        ctx,
        ns,
        &desired.service,
        ctx.stores
            .services
            .get(&ObjectRef::new(&children::service_name(&name)).within(ns)),
    )
    .await?;
    let service = match service {
        Some(live) => Some(own_service_lists(ctx, ns, &desired.service, live).await?),
        None => None,
    };
    apply_if_changed(
        ctx,
        ns,
        &desired.deployment,
        ctx.stores
            .deployments
            .get(&ObjectRef::new(&children::deployment_name(&name)).within(ns)),
    )
    .await?;
    Ok(service)
}

/// Makes the Service's selector and ports exactly ours when someone added to them. Server-side
/// apply cannot do it: items and keys another manager set are theirs, and a forced apply keeps
/// them. A merge patch replaces the ports list whole and nulls the extra selector keys; being an
/// update, it also takes the removed fields out of the other manager's ownership.
async fn own_service_lists(
    ctx: &Context,
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
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let written = api
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|source| Error::ApplyChild {
            child: children::describe(&want),
            source,
        })?;
    ctx.metrics.count_apply(Service::kind(&()).as_ref());
    Ok(to_json(&written))
}

/// Applies `desired` unless the live object already has all of it and carries the digest of
/// it (so nothing we stopped wanting lingers). Returns the object as the cluster now has it, as
/// far as we know: what the write returned, or the cached copy.
async fn apply_if_changed<K>(
    ctx: &Context,
    ns: &str,
    desired: &K,
    live: Option<Arc<K>>,
) -> Result<Option<Value>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + DeserializeOwned
        + Debug,
{
    let mut want = serde_json::to_value(desired).unwrap_or(Value::Null);
    children::stamp_applied_hash(&mut want);
    let have = live.map(|l| serde_json::to_value(l.as_ref()).unwrap_or(Value::Null));
    if have.as_ref().is_some_and(|h| children::is_subset(&want, h)) {
        return Ok(have);
    }
    let name = desired.meta().name.clone().unwrap_or_default();
    let key = format!("{}/{ns}/{name}", K::kind(&()));
    let progress = ctx
        .stores
        .seen
        .get(K::kind(&()).as_ref())
        .map(|s| s.load(Ordering::Relaxed));
    if ctx.written_lately(&key, &want, have.as_ref(), progress) {
        // Our write is on its way to the cache: until it arrives, what we sent stands in for
        // it (judging the child missing would flip `status.url` off and on, a write each time).
        return Ok(have.or(Some(want)));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
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
    ctx.remember_write(key, &want, &written);
    ctx.metrics.count_apply(K::kind(&()).as_ref());
    Ok(Some(written))
}

/// Why the pods cannot get their Secrets, if they cannot: a referenced Secret that does not
/// exist, or lacks the key. Existence comes from the metadata cache; the key names of a Secret
/// are read once per resourceVersion (its values are dropped at once and never kept).
async fn missing_secret(server: &MCPServer, ctx: &Context, ns: &str) -> Option<String> {
    let refs = server.spec.secrets.as_deref().unwrap_or_default();
    if refs.is_empty() {
        return None;
    }
    let store = &ctx.stores.secrets;
    let _ = tokio::time::timeout(STORE_READY_WAIT, store.wait_until_ready()).await;
    for (i, r) in refs.iter().enumerate() {
        let Some(meta) = store.get(&ObjectRef::new(&r.name).within(ns)) else {
            return Some(format!(
                "spec.secrets[{i}]: Secret {:?} does not exist in namespace {ns}",
                r.name
            ));
        };
        let version = meta.resource_version().unwrap_or_default();
        match secret_keys(ctx, ns, &r.name, &version).await {
            Ok(keys) if keys.contains(&r.key) => {}
            Ok(_) => {
                return Some(format!(
                    "spec.secrets[{i}]: Secret {:?} has no key {:?}",
                    r.name, r.key
                ))
            }
            // Cannot tell: say nothing rather than something false; the next pass retries.
            Err(e) => tracing::debug!(secret = %r.name, error = %e, "could not read the key names"),
        }
    }
    None
}

/// The key names of a Secret at `version`, cached by version.
async fn secret_keys(
    ctx: &Context,
    ns: &str,
    name: &str,
    version: &str,
) -> Result<Vec<String>, kube::Error> {
    let cache_key = format!("{ns}/{name}");
    if let Some((v, keys)) = ctx
        .secret_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
    {
        if v == version {
            return Ok(keys.clone());
        }
    }
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
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
    let mut cache = ctx.secret_keys.lock().unwrap_or_else(|e| e.into_inner());
    // Bounded: one entry per referenced Secret; entries of deleted Secrets are few and small.
    cache.insert(cache_key, (version, keys.clone()));
    Ok(keys)
}

/// Whether the spec passed the admission core.
enum Verdict {
    Accepted,
    /// The object must not run as it is (`Accepted=False`): its spec is invalid, or it asks for
    /// what the operator cannot give. `reason` is both conditions' reason.
    Refused {
        reason: &'static str,
        why: String,
    },
    /// The spec is valid, but an object it references is missing or refused, or the references
    /// together make no sense: `reason` is the Ready condition's reason. Nothing is rolled out.
    BadReference {
        reason: &'static str,
        why: String,
    },
    /// Rolled out, but the pods cannot become ready until something appears (a Secret).
    Waiting {
        reason: &'static str,
        why: String,
    },
}

/// What the cluster has of the server's children, as JSON (absent: not there or not known).
#[derive(Default)]
struct Observed {
    deployment: Option<Value>,
    service: Option<Value>,
}

/// The status the object should have, from what was found. Transition times of conditions that
/// did not change are kept, so an unchanged world yields an identical status.
fn status_for(
    server: &MCPServer,
    observed: &Observed,
    verdict: Verdict,
    image: Option<Result<(), String>>,
) -> MCPServerStatus {
    let old = server.status.clone().unwrap_or_default();
    let generation = server.meta().generation;
    let mut conditions: Vec<Condition> = Vec::new();
    let mut cond = |type_: &str, ok: bool, reason: &str, message: String| {
        conditions.push(condition(&old, generation, type_, ok, reason, message));
    };
    let deployment = observed.deployment.as_ref();
    let ready_replicas = deployment
        .and_then(|d| d.pointer("/status/readyReplicas"))
        .and_then(Value::as_i64)
        .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let scaled_to_zero = deployment
        .and_then(|d| d.pointer("/spec/replicas"))
        .and_then(Value::as_i64)
        == Some(0);
    let reaches_pods = match (&observed.service, deployment) {
        (Some(s), Some(d)) => children::service_selects_pods(s, d),
        _ => true,
    };
    let (phase, message) = match (&verdict, &image) {
        (Verdict::Refused { reason, why }, _) => {
            cond("Accepted", false, reason, why.clone());
            let (ready, phase_message) = if *reason == "InvalidSpec" {
                (
                    "the spec is not valid; no workload is created".to_string(),
                    format!("invalid spec: {why}"),
                )
            } else {
                (
                    "no workload is run: see the Accepted condition".to_string(),
                    why.clone(),
                )
            };
            cond("Ready", false, reason, ready);
            ("Failed", Some(phase_message))
        }
        (Verdict::BadReference { reason, why }, _) => {
            cond("Accepted", true, "Valid", "the spec is valid".into());
            cond("Ready", false, reason, why.clone());
            ("Failed", Some(why.clone()))
        }
        (Verdict::Accepted | Verdict::Waiting { .. }, Some(Err(why))) => {
            cond("Accepted", true, "Valid", "the spec is valid".into());
            cond(
                "ImageResolved",
                false,
                "EntrypointUnknown",
                format!("{why}; set spec.command to the server's command"),
            );
            cond(
                "Ready",
                false,
                "EntrypointUnknown",
                "waiting for the server's command".into(),
            );
            (
                "Pending",
                Some(format!(
                    "cannot read the entrypoint of {}: {why}; set spec.command",
                    server.spec.image
                )),
            )
        }
        (Verdict::Accepted | Verdict::Waiting { .. }, _) => {
            cond("Accepted", true, "Valid", "the spec is valid".into());
            if image.is_some() {
                cond(
                    "ImageResolved",
                    true,
                    "EntrypointRead",
                    "the command was read from the image".into(),
                );
            }
            if let Verdict::Waiting { reason, why } = &verdict {
                cond("Ready", false, reason, why.clone());
                ("Pending", Some(why.clone()))
            } else if scaled_to_zero {
                cond("Ready", false, "Stopped", "scaled to zero".into());
                ("Stopped", Some("the Deployment is scaled to zero".into()))
            } else if ready_replicas > 0 && !reaches_pods {
                let why = "the Service's selector matches no label set of the pods, so it reaches none of the ready pods";
                cond("Ready", false, "ServiceSelectsNoPods", why.into());
                ("Pending", Some(why.into()))
            } else if ready_replicas > 0 {
                cond(
                    "Ready",
                    true,
                    "Ready",
                    format!("{ready_replicas} pod(s) ready"),
                );
                ("Ready", None)
            } else {
                cond(
                    "Ready",
                    false,
                    "NotReady",
                    "waiting for a pod whose bridge has initialized the server".into(),
                );
                ("Pending", None)
            }
        }
    };
    // A server that is not rolled out this time keeps what it had resolved before: the image
    // was not looked at again, and its running pods still carry that command.
    if matches!(
        verdict,
        Verdict::Refused { .. } | Verdict::BadReference { .. }
    ) && image.is_none()
    {
        if let Some(kept) = old
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ImageResolved")
        {
            conditions.push(kept.clone());
        }
    }
    let accepted = matches!(verdict, Verdict::Accepted | Verdict::Waiting { .. });
    MCPServerStatus {
        conditions: Some(conditions),
        observed_generation: generation,
        phase: Some(phase.into()),
        message,
        // Where clients reach it, for as long as its Service exists (also while Failed with the
        // previous pods still serving); nothing while there is no Service.
        url: observed.service.is_some().then(|| children::url(server)),
        // Known from the first write on (0 until the Deployment reports), so the status does
        // not change just because the Deployment appeared in the cache.
        ready_replicas: accepted.then_some(ready_replicas),
        tool_config_hash: old.tool_config_hash,
    }
}

/// `status` with the `GroupRefValidated` condition added, when the server names a group.
fn with_group(server: &MCPServer, ctx: &Context, mut status: MCPServerStatus) -> MCPServerStatus {
    add_group_condition(server, ctx, &mut status);
    status
}

/// `GroupRefValidated`, as upstream reports it: advisory, never blocking.
fn add_group_condition(server: &MCPServer, ctx: &Context, status: &mut MCPServerStatus) {
    let Some(group) = &server.spec.group_ref else {
        return;
    };
    let ns = server.namespace().unwrap_or_default();
    let found = ctx
        .stores
        .groups
        .get(&ObjectRef::new(&group.name).within(&ns))
        .is_some();
    let old = server.status.clone().unwrap_or_default();
    let (reason, message) = if found {
        ("GroupRefIsValid", format!("MCPGroup {} exists", group.name))
    } else {
        (
            "GroupRefNotFound",
            format!("MCPGroup {} does not exist in namespace {ns}", group.name),
        )
    };
    let c = condition(
        &old,
        server.meta().generation,
        "GroupRefValidated",
        found,
        reason,
        message,
    );
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

fn condition(
    old: &MCPServerStatus,
    generation: Option<i64>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let previous = old.conditions.iter().flatten().find(|c| c.type_ == type_);
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

/// Writes the status when it differs from what is stored, and records an Event when the phase
/// changes.
async fn write_status(
    server: &MCPServer,
    ctx: &Context,
    status: MCPServerStatus,
) -> Result<(), Error> {
    let old = server.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let ns = server.namespace().ok_or(Error::NoNamespace)?;
    // Working from a copy older than our own last status write: that write's watch event is on
    // its way and will bring us back with the fresh object.
    let key = format!("MCPServer.status/{ns}/{}", server.name_any());
    let seen = serde_json::to_value(server).unwrap_or(Value::Null);
    if ctx.written_lately(&key, &json!({}), Some(&seen), None) {
        return Ok(());
    }
    let api: Api<MCPServer> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "status": {
            "conditions": status.conditions,
            "observedGeneration": status.observed_generation,
            "phase": status.phase,
            "message": status.message,
            "url": status.url,
            "readyReplicas": status.ready_replicas,
        }
    });
    let written = api
        .patch_status(
            &server.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::WriteStatus)?;
    ctx.remember_write(
        key,
        &json!({}),
        &serde_json::to_value(&written).unwrap_or(Value::Null),
    );
    if old.phase != status.phase {
        announce_phase(server, ctx, &status).await;
    }
    Ok(())
}

async fn announce_phase(server: &MCPServer, ctx: &Context, status: &MCPServerStatus) {
    let phase = status.phase.clone().unwrap_or_default();
    let type_ = if phase == "Failed" {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let note = status
        .message
        .clone()
        .unwrap_or_else(|| format!("phase is now {phase}"));
    let event = Event {
        type_,
        reason: phase,
        note: Some(truncate(&note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &server.object_ref(&())).await {
        tracing::debug!(error = %e, "could not record an Event");
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Exponential backoff with jitter, per object; the error also goes out as a Warning Event.
pub fn error_policy(server: Arc<MCPServer>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(server.as_ref());
    let attempt = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    tracing::warn!(name = %server.name_any(), namespace = ?server.namespace(), reason = error.reason(), attempt, error = %error, "reconcile failed");
    // The first failure in a row is worth an Event; repeats would only flood.
    if attempt == 1 {
        let recorder = ctx.recorder.clone();
        let reference = server.object_ref(&());
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
    let capped = exp.min(ctx.settings.max_backoff.unwrap_or(BACKOFF_MAX));
    let jitter = rand::random::<f64>() * 0.5 + 0.75; // ±25 %
    Action::requeue(capped.mul_f64(jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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

    /// Ready says whether clients reach a ready pod: ready replicas behind a Service whose
    /// selector no pod matches (someone added a key) are not Ready.
    #[test]
    fn ready_needs_a_service_that_selects_the_pods() {
        let server: MCPServer = serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "s", "namespace": "ns", "generation": 1},
            "spec": {"image": "x", "command": ["srv"]}}))
        .unwrap();
        let deployment = json!({
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {
                "app.kubernetes.io/name": "mcpserver", "app.kubernetes.io/instance": "s", "sidecar": "on"}}}},
            "status": {"readyReplicas": 1}});
        let service = |selector: Value| json!({"spec": {"selector": selector}});
        let ours =
            json!({"app.kubernetes.io/name": "mcpserver", "app.kubernetes.io/instance": "s"});
        let mut extra = ours.clone();
        extra["tier"] = json!("none");
        let rows = [
            (
                Some(service(ours)),
                "Ready",
                Some("http://mcp-s-proxy.ns.svc.cluster.local:8080/mcp"),
            ),
            (
                Some(service(extra)),
                "ServiceSelectsNoPods",
                Some("http://mcp-s-proxy.ns.svc.cluster.local:8080/mcp"),
            ),
            (None, "Ready", None),
        ];
        for (i, (svc, reason, url)) in rows.into_iter().enumerate() {
            let observed = Observed {
                deployment: Some(deployment.clone()),
                service: svc,
            };
            let status = status_for(&server, &observed, Verdict::Accepted, None);
            let ready = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .unwrap();
            assert_eq!(ready.reason, reason, "row {i}");
            assert_eq!(
                status.url.as_deref(),
                url,
                "row {i}: url only with a Service"
            );
        }
    }

    #[test]
    fn recent_writes_are_pruned_in_batches_not_per_call() {
        let mut recent = RecentWrites::default();
        let stale = Recent {
            at: Instant::now() - VERSION_LAG_WINDOW - Duration::from_secs(1),
            version: Some(1),
            sent: 0,
        };
        recent.by_key.insert("a".into(), stale);
        recent.prune();
        assert!(recent.by_key.is_empty(), "the first call prunes");
        recent.by_key.insert(
            "b".into(),
            Recent {
                at: Instant::now() - VERSION_LAG_WINDOW - Duration::from_secs(1),
                version: Some(1),
                sent: 0,
            },
        );
        recent.prune();
        assert_eq!(recent.by_key.len(), 1, "not again within the window");
    }
}
