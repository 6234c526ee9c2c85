//! The VirtualMCPServer reconciler: re-validate, find the group's members (MCPServers,
//! MCPRemoteProxies, MCPServerEntries) and the MCPToolConfigs the aggregation names, render the
//! runtime's whole configuration ([`children::file_config`]), apply the children (only when
//! they differ; the config's checksum on the pod template rolls the pods) and report status,
//! the backends' health read from the runtime's own `GET /status`.
//!
//! What mcp-operator does not build is held with a condition naming the field, never ignored:
//! `outgoingAuth` of type `externalAuthConfigRef`, an entry's `externalAuthConfigRef` of a type
//! other than `unauthenticated`, `headerInjection` or `bearerToken`, and the inline OIDC of the
//! old shape.

use super::auth_refs::{self, AuthStores, Finding};
use super::frame::{self, Conflict, Frame};
use super::mcpserver::namespaced_or_all;
use super::metrics::ControllerMetrics;
use super::slim::{ProxyRefs, ServerRefs, Subscription};
use super::vmcp_children::{self as children, Inputs, Member};
use super::vmcp_status;
use super::workload::{self, Observed};
use crate::admission::auth::WorkloadAuth;
use crate::admission::{self, Operation};
use crate::api::v1beta1::{
    DiscoveredBackend, MCPExternalAuthConfig, MCPGroup, MCPServerEntry, MCPToolConfig,
    MCPToolConfigSpec, VirtualMCPServer, VirtualMCPServerStatus,
};
use crate::vmcp::config::{FileConfig, StatusReport};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::frame::{Error, Settings};

/// How soon an object whose child name is taken looks again.
const CONFLICT_RECHECK: Duration = Duration::from_secs(30);
/// How soon an object looks again when the auth configs' caches have not listed yet.
const AUTH_CACHE_RECHECK: Duration = Duration::from_secs(5);

/// Everything a reconcile needs besides the object.
pub struct Context {
    pub frame: Frame<VirtualMCPServer>,
    stores: Stores,
    secret_keys: frame::SecretKeys,
    http: vmcp_status::Client,
    /// `host:port` of the runtime's `/status`, with `{name}` and `{namespace}`.
    status_address: String,
    /// The last report read per object (`ns/name`) and when: a burst of events (a Secret
    /// rotated, members changing together) reuses it instead of asking the runtime each time.
    reports: Mutex<HashMap<String, ReadReport>>,
}

/// A report as read (or why it could not be), and when.
type ReadReport = (Instant, Result<StatusReport, String>);

/// How long a report read stands for the runtime's current word.
const REPORT_REUSE: Duration = Duration::from_secs(1);

/// Caches fed by the same watches that trigger reconciles.
#[derive(Clone)]
struct Stores {
    children: workload::Stores,
    secrets: Store<PartialObjectMeta<Secret>>,
    tool_configs: Store<MCPToolConfig>,
    groups: Store<MCPGroup>,
    servers: Store<ServerRefs>,
    proxies: Store<ProxyRefs>,
    entries: Store<MCPServerEntry>,
    auth: AuthStores,
    vmcps: Store<VirtualMCPServer>,
}

/// The auth fields of a VirtualMCPServer, as admission reads them.
pub fn vmcp_auth(v: &VirtualMCPServer) -> WorkloadAuth<'_> {
    let i = &v.spec.incoming_auth;
    WorkloadAuth {
        kind: "VirtualMCPServer",
        at: "spec.incomingAuth",
        oidc_config_ref: i.oidc_config_ref.as_ref(),
        authz_config: i.authz_config.as_ref(),
        authz_config_ref: i.authz_config_ref.as_ref(),
        external_auth_config_ref: None,
        audit: None,
    }
}

/// Runs the VirtualMCPServer controller over `namespace` (all namespaces when `None`) until
/// the returned future is dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    neighbours: workload::Neighbourhood,
    workloads: Subscription,
) {
    let status_address = settings
        .vmcp_status_address
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vmcp_status::DEFAULT_STATUS_ADDRESS.into());
    let frame = Frame::<VirtualMCPServer>::new(client.clone(), settings, metrics);
    let (child_stores, child_streams) =
        workload::Stores::reflect(&frame, &namespace, children::KIND_LABEL, &neighbours);
    let all = watcher::Config::default;
    let (tool_configs, tool_config_stream) = frame.reflect::<MCPToolConfig>(&namespace, all());
    let (groups, group_stream) = frame.reflect::<MCPGroup>(&namespace, all());
    let (entries, entry_stream) = frame.reflect::<MCPServerEntry>(&namespace, all());
    let (auth, auth_streams) = AuthStores::reflect(&frame, &namespace);
    let Subscription {
        servers: (servers, server_stream),
        proxies: (proxies, proxy_stream),
        ..
    } = workloads;
    // Secrets by metadata only: their values never enter the operator's memory.
    let (secrets, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secret_api: Api<PartialObjectMeta<Secret>> = namespaced_or_all(&client, &namespace);
    let secret_stream = watcher(secret_api, all())
        .default_backoff()
        .reflect(secret_writer)
        .touched_objects();
    let (vmcps, vmcp_writer) = reflector::store::<VirtualMCPServer>();
    let vmcp_stream = watcher(
        namespaced_or_all::<VirtualMCPServer>(&client, &namespace),
        all(),
    )
    .default_backoff()
    .modify(super::frame::trim_cached)
    .reflect(vmcp_writer)
    .applied_objects();
    let controller = Controller::for_stream(vmcp_stream, vmcps.clone())
        .with_config(frame.settings.controller_config());
    let stores = Stores {
        children: child_stores,
        secrets,
        tool_configs,
        groups,
        servers,
        proxies,
        entries: entries.clone(),
        auth: auth.clone(),
        vmcps: vmcps.clone(),
    };
    let ctx = Arc::new(Context {
        frame,
        stores,
        secret_keys: frame::SecretKeys::default(),
        http: vmcp_status::client(),
        status_address,
        reports: Mutex::default(),
    });
    let v = || vmcps.clone();
    let (by_server, by_proxy, by_entry, by_group, by_tool_config) = (v(), v(), v(), v(), v());
    let (by_oidc, by_authz, by_secret, by_external) = (v(), v(), v(), v());
    let by_authz_config_map = v();
    // Policies read from a ConfigMap (`authzConfig.type: configMap`): its change re-renders.
    let authz_config_map_stream = auth_refs::watch_authz_config_maps(&client, &namespace);
    let entries_for_external = entries.clone();
    let external_for_secrets = auth.external.clone();
    let entries_for_secrets = entries;
    controller
        .owns_stream(child_streams.deployments)
        .owns_stream(child_streams.services)
        .owns_stream(child_streams.service_accounts)
        .owns_stream(child_streams.config_maps)
        .watches_stream(server_stream, move |s: ServerRefs| {
            touched_by_member(&by_server, &s, s.spec.group_ref.as_ref().map(|r| &r.name))
        })
        .watches_stream(proxy_stream, move |p: ProxyRefs| {
            touched_by_member(&by_proxy, &p, p.spec.group_ref.as_ref().map(|r| &r.name))
        })
        .watches_stream(entry_stream, move |e: MCPServerEntry| {
            touched_by_member(&by_entry, &e, Some(&e.spec.group_ref.name))
        })
        .watches_stream(group_stream, move |g| {
            frame::referencing(&by_group, &g.namespace(), |v: &VirtualMCPServer| {
                v.spec.group_ref.name == g.name_any()
            })
        })
        .watches_stream(tool_config_stream, move |tc| {
            frame::referencing(&by_tool_config, &tc.namespace(), |v: &VirtualMCPServer| {
                tool_config_names(v).contains(&tc.name_any())
            })
        })
        .watches_stream(auth_streams.oidc, move |c| {
            auth_refs::users_of(&by_oidc, &c, vmcp_auth)
        })
        .watches_stream(auth_streams.authz, move |c| {
            auth_refs::users_of(&by_authz, &c, vmcp_auth)
        })
        .watches_stream(authz_config_map_stream, move |cm| {
            auth_refs::config_map_users(&by_authz_config_map, &cm, vmcp_auth)
        })
        // The MCPExternalAuthConfigs the group's entries name (incoming auth names none).
        .watches_stream(auth_streams.external, move |c| {
            let ns = c.namespace().unwrap_or_default();
            frame::referencing(&by_external, &c.namespace(), |v: &VirtualMCPServer| {
                group_entries(&entries_for_external, &ns, &v.spec.group_ref.name)
                    .iter()
                    .any(|e| {
                        e.spec
                            .external_auth_config_ref
                            .as_ref()
                            .is_some_and(|r| r.name == c.name_any())
                    })
            })
        })
        .watches_stream(secret_stream, move |secret| {
            let name = secret.name_any();
            let ns = secret.namespace().unwrap_or_default();
            frame::referencing(&by_secret, &secret.namespace(), |v: &VirtualMCPServer| {
                let looked = auth.look_up(&ns, &vmcp_auth(v));
                let entry_uses = |e: &Arc<MCPServerEntry>| {
                    let external = e.spec.external_auth_config_ref.as_ref().and_then(|r| {
                        external_for_secrets.get(&ObjectRef::new(&r.name).within(&ns))
                    });
                    let found = auth_refs::Found {
                        external: external.as_deref(),
                        ..auth_refs::Found::default()
                    };
                    header_secret_names(e).contains(&name.as_str())
                        || auth_refs::secret_names(found).contains(&name)
                };
                auth_refs::secret_names(looked.found()).contains(&name)
                    || group_entries(&entries_for_secrets, &ns, &v.spec.group_ref.name)
                        .iter()
                        .any(entry_uses)
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The VirtualMCPServers a member's event concerns: those of the group it names now, and those
/// that list it among their backends (it left the group, or was deleted).
fn touched_by_member<M: Resource>(
    vmcps: &Store<VirtualMCPServer>,
    member: &M,
    group: Option<&String>,
) -> Vec<ObjectRef<VirtualMCPServer>> {
    let ns = member.meta().namespace.clone();
    let name = member.meta().name.clone().unwrap_or_default();
    frame::referencing(vmcps, &ns, |v: &VirtualMCPServer| {
        let listed = v
            .status
            .as_ref()
            .and_then(|s| s.discovered_backends.as_ref())
            .is_some_and(|l| l.iter().any(|b| b.name == name));
        listed || group == Some(&v.spec.group_ref.name)
    })
}

/// The MCPToolConfigs `spec.config.aggregation.tools[]` names.
fn tool_config_names(v: &VirtualMCPServer) -> Vec<String> {
    v.spec
        .config
        .as_ref()
        .and_then(|c| c.aggregation.as_ref())
        .and_then(|a| a.tools.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|t| t.tool_config_ref.as_ref().map(|r| r.name.clone()))
        .collect()
}

fn header_secret_names(e: &MCPServerEntry) -> Vec<&str> {
    e.spec
        .header_forward
        .iter()
        .flat_map(|h| h.add_headers_from_secret.iter().flatten())
        .map(|h| h.value_secret_ref.name.as_str())
        .collect()
}

/// The MCPServerEntries of group `group` in `ns`, sorted by name.
fn group_entries(store: &Store<MCPServerEntry>, ns: &str, group: &str) -> Vec<Arc<MCPServerEntry>> {
    let mut out: Vec<Arc<MCPServerEntry>> = store
        .state()
        .into_iter()
        .filter(|e| e.namespace().as_deref() == Some(ns) && e.spec.group_ref.name == group)
        .collect();
    out.sort_by_key(|e| e.name_any());
    out
}

/// One pass over one VirtualMCPServer.
pub async fn reconcile(vmcp: Arc<VirtualMCPServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let managed = ctx.stores.vmcps.len();
    ctx.frame
        .observe(&vmcp, managed, reconcile_inner(&vmcp, &ctx))
        .await
}

/// Why the object is not rolled out this time: the condition that says so besides Ready
/// (empty: Ready alone), its reason and message.
struct Refusal {
    condition: &'static str,
    reason: &'static str,
    why: String,
}

impl Refusal {
    fn new(condition: &'static str, reason: &'static str, why: String) -> Self {
        Refusal {
            condition,
            reason,
            why,
        }
    }
}

/// What a pass found, for the status.
#[derive(Default)]
struct Found {
    /// The rendered config, when there is one.
    config: Option<FileConfig>,
    /// The runtime's report, or why it could not be read (`None`: not asked: no ready pod).
    report: Option<Result<StatusReport, String>>,
    /// Spec names of backends that are not members.
    strangers: Vec<String>,
    members: usize,
}

async fn reconcile_inner(vmcp: &VirtualMCPServer, ctx: &Context) -> Result<Action, Error> {
    let ns = vmcp.namespace().ok_or(Error::NoNamespace)?;
    let skips_before = ctx.frame.lag_skips();
    if vmcp.meta().deletion_timestamp.is_some() {
        // Children go with the owner references.
        return Ok(Action::await_change());
    }
    // The webhook may be off or bypassed: the spec is checked again before anything runs.
    if let Some(message) = ctx.frame.spec_errors(vmcp) {
        let refusal = Refusal::new("", "InvalidSpec", message);
        report_without_rollout(vmcp, ctx, &ns, refusal, &[]).await?;
        return Ok(Action::await_change());
    }
    if let Some(why) = held_for_inline_oidc(vmcp) {
        stop_serving(vmcp, ctx, &ns).await?;
        let refusal = Refusal::new(auth_refs::AUTH_CONDITION, "AuthNotEnforced", why);
        report_without_rollout(vmcp, ctx, &ns, refusal, &[]).await?;
        return Ok(Action::await_change());
    }
    if !ctx.stores.auth.ready().await {
        return Ok(Action::requeue(AUTH_CACHE_RECHECK));
    }
    // Incoming auth resolved as an MCPServer's is: one that cannot be resolved takes the
    // endpoint down (it would serve everyone).
    let auth = resolve_auth(vmcp, ctx, &ns).await?;
    let findings = auth.findings.as_slice();
    let resolved_auth = match auth.outcome.clone() {
        Ok(resolved) => resolved,
        Err(problem) => {
            stop_serving(vmcp, ctx, &ns).await?;
            let refusal = Refusal::new("", problem.reason, problem.message);
            report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
            return Ok(Action::await_change());
        }
    };
    let group = &vmcp.spec.group_ref.name;
    let _ = tokio::time::timeout(
        frame::STORE_READY_WAIT,
        ctx.stores.groups.wait_until_ready(),
    )
    .await;
    if ctx
        .stores
        .groups
        .get(&ObjectRef::new(group).within(&ns))
        .is_none()
    {
        let why = format!("MCPGroup {group:?} does not exist in namespace {ns}; create it or change spec.groupRef");
        let refusal = Refusal::new("GroupRefValidated", "GroupRefNotFound", why);
        report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
        return Ok(Action::await_change());
    }
    let members = match members(vmcp, ctx, &ns).await {
        Ok(m) => m,
        Err(refusal) => {
            report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
            return Ok(Action::await_change());
        }
    };
    let tool_configs = match referenced_tool_configs(vmcp, ctx, &ns).await {
        Ok(t) => t,
        Err(refusal) => {
            report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
            return Ok(Action::await_change());
        }
    };
    let uses: Vec<frame::SecretUse> = members
        .iter()
        .flat_map(|m| m.secret_env.iter())
        .map(|s| (s.field.clone(), s.secret.clone(), s.key.clone()))
        .collect();
    if let Some(why) = ctx
        .secret_keys
        .first_missing(&ctx.frame.client, &ctx.stores.secrets, &ns, &uses)
        .await
    {
        let refusal = Refusal::new("BackendsDiscovered", "BackendSecretNotFound", why);
        report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
        return Ok(Action::await_change());
    }
    let config =
        match children::file_config(vmcp, &members, &tool_configs, resolved_auth.block.as_ref()) {
            Ok(c) => c,
            Err(why) => {
                let refusal = Refusal::new("BackendsDiscovered", "BackendDiscoveryFailed", why);
                report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
                return Ok(Action::await_change());
            }
        };
    let inputs = Inputs {
        image: ctx.frame.settings.bridge_image.clone(),
        secret_versions: secret_versions(ctx, &ns, &members, &resolved_auth),
        members: members.clone(),
        default_pull_secrets: ctx.frame.settings.default_pull_secrets.clone(),
        auth: resolved_auth.clone(),
    };
    let desired = children::desired(vmcp, &config, &inputs);
    if let Err(conflict) = apply_children(vmcp, ctx, &desired).await? {
        let refusal = Refusal::new("", Conflict::REASON, conflict.message());
        report_without_rollout(vmcp, ctx, &ns, refusal, findings).await?;
        // The object in the way is not in our (labelled) caches: look again soon.
        return Ok(Action::requeue(
            CONFLICT_RECHECK.min(ctx.frame.settings.resync()),
        ));
    }
    let observed = observe(vmcp, ctx, &ns);
    let ready = ready_replicas(observed.deployment.as_ref()) > 0;
    let report = if ready {
        Some(runtime_report(vmcp, ctx, &ns).await)
    } else {
        None
    };
    let found = Found {
        strangers: children::names_without_member(vmcp, &members),
        members: members.len(),
        config: Some(config),
        report,
    };
    let mut status = status_for(vmcp, &observed, None, &found);
    status.oidc_config_hash = resolved_auth.oidc_hash.clone();
    status.authz_config_hash = resolved_auth.authz_hash.clone();
    announce_backends(vmcp, ctx, &status).await;
    write_status(vmcp, ctx, status, findings).await?;
    // The runtime's report is read again while the endpoint exists; sooner when a write was
    // skipped because the cache lagged (as `Frame::settled` does).
    let mut next = children::status_interval(vmcp).min(ctx.frame.settings.resync());
    if ctx.frame.lag_skips() != skips_before {
        next = next.min(frame::CACHE_LAG_WINDOW);
    }
    Ok(Action::requeue(next))
}

/// The runtime's report: read from its `/status`, or the one read less than [`REPORT_REUSE`]
/// ago.
async fn runtime_report(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    ns: &str,
) -> Result<StatusReport, String> {
    let key = format!("{ns}/{}", vmcp.name_any());
    {
        let mut reports = ctx.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.retain(|_, (at, _)| at.elapsed() < REPORT_REUSE);
        if let Some((_, report)) = reports.get(&key) {
            return report.clone();
        }
    }
    let address = vmcp_status::status_address(&ctx.status_address, &vmcp.name_any(), ns);
    let report = vmcp_status::read_status(&ctx.http, &address).await;
    ctx.reports
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (Instant::now(), report.clone()));
    report
}

/// The group's members as backends, sorted by name; or why the endpoint is held: an entry whose
/// outgoing credentials (`externalAuthConfigRef`) mcp-operator does not render for the runtime,
/// or `outgoingAuth` asking for an MCPExternalAuthConfig.
async fn members(vmcp: &VirtualMCPServer, ctx: &Context, ns: &str) -> Result<Vec<Member>, Refusal> {
    let s = &ctx.stores;
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, async {
        let _ = s.servers.wait_until_ready().await;
        let _ = s.proxies.wait_until_ready().await;
        let _ = s.entries.wait_until_ready().await;
    })
    .await;
    if let Some(field) = outgoing_auth_asked(vmcp) {
        return Err(Refusal::new(
            auth_refs::AUTH_CONDITION,
            "OutgoingAuthNotSupported",
            format!(
                "{field} asks for credentials from an MCPExternalAuthConfig towards the backends, which mcp-operator does not render \
                 for a VirtualMCPServer yet; the endpoint is held so that it never calls the backends without them. \
                 Remove it (the members' own proxies still add their externalAuthConfigRef)"
            ),
        ));
    }
    let group = &vmcp.spec.group_ref.name;
    let in_group = |m: &Option<crate::api::shared::NameRef>, mns: Option<&str>| {
        mns == Some(ns) && m.as_ref().is_some_and(|r| &r.name == group)
    };
    let servers: Vec<Arc<ServerRefs>> = s
        .servers
        .state()
        .into_iter()
        .filter(|x| in_group(&x.spec.group_ref, x.metadata.namespace.as_deref()))
        .collect();
    let proxies: Vec<Arc<ProxyRefs>> = s
        .proxies
        .state()
        .into_iter()
        .filter(|x| in_group(&x.spec.group_ref, x.metadata.namespace.as_deref()))
        .collect();
    let entries = group_entries(&s.entries, ns, group);
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, s.auth.external.wait_until_ready()).await;
    let external: Vec<Option<Arc<MCPExternalAuthConfig>>> = entries
        .iter()
        .map(|e| {
            let r = e.spec.external_auth_config_ref.as_ref()?;
            s.auth.external.get(&ObjectRef::new(&r.name).within(ns))
        })
        .collect();
    let mut found: Vec<children::Candidate<'_>> = Vec::new();
    for x in &servers {
        found.push(children::Candidate::Server {
            name: x.metadata.name.as_deref().unwrap_or_default(),
            transport: x.spec.transport.as_deref(),
            proxy_mode: x.spec.proxy_mode.as_deref(),
            proxy_port: x.spec.proxy_port,
        });
    }
    for x in &proxies {
        found.push(children::Candidate::Proxy {
            name: x.metadata.name.as_deref().unwrap_or_default(),
            transport: x.spec.transport.as_deref(),
            proxy_port: x.spec.proxy_port,
        });
    }
    for (e, x) in entries.iter().zip(&external) {
        found.push(children::Candidate::Entry(e, x.as_deref()));
    }
    children::members(ns, found)
        .map_err(|why| Refusal::new(auth_refs::AUTH_CONDITION, "BackendAuthNotRendered", why))
}

/// The `outgoingAuth` field that asks for an MCPExternalAuthConfig, if one does.
pub fn outgoing_auth_asked(vmcp: &VirtualMCPServer) -> Option<String> {
    let o = vmcp.spec.outgoing_auth.as_ref()?;
    let asks = |b: &crate::api::v1beta1::BackendAuth| b.type_ == "externalAuthConfigRef";
    if o.default.as_ref().is_some_and(asks) {
        return Some("spec.outgoingAuth.default".into());
    }
    o.backends
        .iter()
        .flatten()
        .find(|(_, b)| asks(b))
        .map(|(name, _)| format!("spec.outgoingAuth.backends.{name}"))
}

/// The MCPToolConfigs `tools[]` names, by name; or why the endpoint is not rolled out: one does
/// not exist or admission refuses it (a missing allow-list must never mean every tool).
async fn referenced_tool_configs(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<String, MCPToolConfigSpec>, Refusal> {
    let names = tool_config_names(vmcp);
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let store = &ctx.stores.tool_configs;
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, store.wait_until_ready()).await;
    for name in names {
        let Some(config) = store.get(&ObjectRef::new(&name).within(ns)) else {
            return Err(Refusal::new(
                "ToolConfigValidated",
                "ToolConfigNotFound",
                format!("MCPToolConfig {name:?} (spec.config.aggregation.tools[].toolConfigRef) does not exist in namespace {ns}"),
            ));
        };
        let object = serde_json::to_value(config.as_ref()).unwrap_or(Value::Null);
        if let Ok(verdict) = admission::admit(&object, None, Operation::Create) {
            if !verdict.allowed() {
                return Err(Refusal::new(
                    "ToolConfigValidated",
                    "ToolConfigInvalid",
                    format!("MCPToolConfig {name:?} is not valid: {}", verdict.errors),
                ));
            }
        }
        out.insert(name, config.spec.clone());
    }
    Ok(out)
}

/// The incoming auth resolved against the caches, held when a Secret key it makes the pods
/// read is missing.
async fn resolve_auth(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    ns: &str,
) -> Result<auth_refs::Resolution, Error> {
    let looked = ctx.stores.auth.look_up(ns, &vmcp_auth(vmcp));
    let authz_data =
        auth_refs::read_authz_config_map(&ctx.frame.client, ns, &vmcp_auth(vmcp)).await?;
    let found = auth_refs::Found {
        authz_config_map: authz_data.as_ref(),
        ..looked.found()
    };
    let workload = auth_refs::Workload {
        auth: vmcp_auth(vmcp),
        name: vmcp.meta().name.as_deref().unwrap_or_default(),
        namespace: ns,
        service_url: children::url(vmcp),
        http_backend: true,
        own_headers: Vec::new(),
    };
    let mut auth = auth_refs::resolve(&workload, found);
    if let Ok(resolved) = &auth.outcome {
        let uses = auth_refs::secret_uses(resolved);
        if let Some(why) = ctx
            .secret_keys
            .first_missing(&ctx.frame.client, &ctx.stores.secrets, ns, &uses)
            .await
        {
            auth.hold_for_secret(why);
        }
    }
    Ok(auth)
}

/// Why the endpoint must not run, if it asks for the old inline OIDC (kept in the stash).
fn held_for_inline_oidc(vmcp: &VirtualMCPServer) -> Option<String> {
    let key = format!("{}incomingAuth.oidcConfig", crate::api::ALPHA_STASH_PREFIX);
    let inline = vmcp
        .annotations()
        .get(&key)
        .is_some_and(|v| v != crate::api::ABSENT && !v.trim().is_empty() && v != "null");
    inline.then(|| {
        format!(
            "spec.incomingAuth.oidcConfig (kept from v1alpha1 in the {key} annotation): {}",
            crate::admission::VMCP_OIDC_NOT_ENFORCED
        )
    })
}

/// Removes our Deployment and Service (deleting, not scaling to zero: `replicas` may belong
/// to an HPA); only children whose controller owner reference is this object go.
async fn stop_serving(vmcp: &VirtualMCPServer, ctx: &Context, ns: &str) -> Result<(), Error> {
    let name = vmcp.name_any();
    let d = at(ns, children::deployment_name(&name));
    ctx.frame
        .delete(vmcp, ctx.stores.children.deployments.get(&d))
        .await?;
    let s = at(ns, children::service_name(&name));
    ctx.frame
        .delete(vmcp, ctx.stores.children.services.get(&s))
        .await
}

/// `resourceVersion` of every Secret the pod reads, so a rotation rolls it.
fn secret_versions(
    ctx: &Context,
    ns: &str,
    members: &[Member],
    auth: &auth_refs::Resolved,
) -> BTreeMap<String, String> {
    members
        .iter()
        .flat_map(|m| m.secret_env.iter())
        .chain(auth.secret_env.iter())
        .map(|s| {
            let version = ctx
                .stores
                .secrets
                .get(&ObjectRef::new(&s.secret).within(ns))
                .and_then(|m| m.resource_version())
                .unwrap_or_else(|| "missing".into());
            (s.secret.clone(), version)
        })
        .collect()
}

async fn apply_children(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    desired: &children::Children,
) -> Result<Result<(), Conflict>, Error> {
    let name = vmcp.name_any();
    let names = workload::Names {
        config_map: children::config_map_name(&name),
        service_account: children::service_account_name(&name),
        service: children::service_name(&name),
        deployment: children::deployment_name(&name),
    };
    let applied = workload::apply(&ctx.frame, vmcp, &ctx.stores.children, &names, desired).await?;
    Ok(applied.map(|_service| ()))
}

fn observe(vmcp: &VirtualMCPServer, ctx: &Context, ns: &str) -> Observed {
    let name = vmcp.name_any();
    let uid = vmcp.meta().uid.clone().unwrap_or_default();
    ctx.stores.children.observe(
        ns,
        &children::deployment_name(&name),
        &children::service_name(&name),
        &uid,
    )
}

fn ready_replicas(deployment: Option<&Value>) -> i64 {
    deployment
        .and_then(|d| d.pointer("/status/readyReplicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

async fn report_without_rollout(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    ns: &str,
    refusal: Refusal,
    auth: &[Finding],
) -> Result<(), Error> {
    let observed = observe(vmcp, ctx, ns);
    let mut status = status_for(vmcp, &observed, Some(&refusal), &Found::default());
    let old = vmcp.status.clone().unwrap_or_default();
    // What the running pods have, until a roll-out says otherwise.
    status.oidc_config_hash = old.oidc_config_hash;
    status.authz_config_hash = old.authz_config_hash;
    write_status(vmcp, ctx, status, auth).await
}

fn at<C: Resource<DynamicType = ()>>(ns: &str, name: String) -> ObjectRef<C> {
    ObjectRef::new(&name).within(ns)
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The status the object should have. An unchanged world yields an identical status
/// (transition times kept, per-check fields of unchanged backends kept), so nothing is written
/// at steady state.
fn status_for(
    vmcp: &VirtualMCPServer,
    observed: &Observed,
    refusal: Option<&Refusal>,
    found: &Found,
) -> VirtualMCPServerStatus {
    let old = vmcp.status.clone().unwrap_or_default();
    let generation = vmcp.meta().generation;
    let mut conditions: Vec<Condition> = Vec::new();
    let mut cond = |type_: &str, ok: bool, reason: &str, message: String| {
        conditions.push(frame::condition(
            old.conditions.as_deref(),
            generation,
            type_,
            ok,
            reason,
            message,
        ));
    };
    let group = &vmcp.spec.group_ref.name;
    let ready_replicas = ready_replicas(observed.deployment.as_ref());
    let scaled_to_zero = observed
        .deployment
        .as_ref()
        .and_then(|d| d.pointer("/spec/replicas"))
        .and_then(Value::as_i64)
        == Some(0);
    if let Some(r) = refusal {
        if r.condition == "GroupRefValidated" {
            cond("GroupRefValidated", false, r.reason, r.why.clone());
        } else if r.reason != "InvalidSpec" {
            cond(
                "GroupRefValidated",
                true,
                "GroupRefValid",
                format!("MCPGroup {group} exists"),
            );
        }
        if matches!(
            r.condition,
            "BackendsDiscovered" | "ToolConfigValidated" | auth_refs::AUTH_CONDITION
        ) {
            cond(r.condition, false, r.reason, r.why.clone());
        }
        cond("Ready", false, r.reason, r.why.clone());
        let discovered = old.discovered_backends.clone();
        let count = count_routable(discovered.as_deref());
        return VirtualMCPServerStatus {
            conditions: Some(conditions),
            observed_generation: generation,
            phase: Some("Failed".into()),
            message: Some(r.why.clone()),
            url: observed.service.then(|| children::url(vmcp)),
            // What the endpoint last reported stays: it may still be running.
            discovered_backends: discovered,
            backend_count: Some(count),
            oidc_config_hash: None,
            authz_config_hash: None,
        };
    }
    cond(
        "GroupRefValidated",
        true,
        "GroupRefValid",
        format!("MCPGroup {group} exists"),
    );
    let config = found.config.as_ref();
    let backends = config.map(|c| c.backends.as_slice()).unwrap_or_default();
    let mut discovered_message = format!(
        "{} member(s) of MCPGroup {group} rendered into the endpoint's configuration",
        found.members
    );
    if !found.strangers.is_empty() {
        discovered_message.push_str(&format!(
            "; these name no member and apply to nothing until one joins: {}",
            frame::name_list(&found.strangers, 10)
        ));
    }
    cond(
        "BackendsDiscovered",
        true,
        "BackendsDiscoveredSuccessfully",
        discovered_message,
    );
    if !tool_config_names(vmcp).is_empty() {
        cond(
            "ToolConfigValidated",
            true,
            "ToolConfigValid",
            "the referenced MCPToolConfigs are valid and merged into the configuration".into(),
        );
    }
    let report = found.report.as_ref().and_then(|r| r.as_ref().ok());
    let old_list = old.discovered_backends.clone().unwrap_or_default();
    let mut list = vmcp_status::discovered(backends, report, &old_list);
    if let Some(Err(why)) = &found.report {
        // No report: what is known of each backend is that nothing is known.
        for b in &mut list {
            b.message = Some(format!(
                "the endpoint's health report could not be read: {why}"
            ));
        }
    }
    let count = count_routable(Some(&list));
    let unhealthy: Vec<String> = list
        .iter()
        .filter(|b| matches!(b.status.as_deref(), Some("unavailable" | "degraded")))
        .map(|b| b.name.clone())
        .collect();
    let (phase, message) = if scaled_to_zero {
        cond("Ready", false, "Stopped", "scaled to zero".into());
        (
            "Pending",
            Some("the Deployment is scaled to zero".to_string()),
        )
    } else if ready_replicas == 0 {
        cond(
            "Ready",
            false,
            "DeploymentNotReady",
            "waiting for a ready pod of the endpoint".into(),
        );
        ("Pending", None)
    } else if !unhealthy.is_empty() {
        let m = format!(
            "{} of {} backend(s) unavailable or degraded: {}",
            unhealthy.len(),
            list.len(),
            frame::name_list(&unhealthy, 10)
        );
        cond(
            "Ready",
            true,
            "DeploymentReady",
            format!("{ready_replicas} pod(s) ready; {m}"),
        );
        ("Degraded", Some(m))
    } else {
        cond(
            "Ready",
            true,
            "DeploymentReady",
            format!("{ready_replicas} pod(s) ready"),
        );
        let m = match &found.report {
            Some(Err(why)) => Some(format!(
                "the endpoint's health report could not be read: {why}"
            )),
            _ => None,
        };
        ("Ready", m)
    };
    VirtualMCPServerStatus {
        conditions: Some(conditions),
        observed_generation: generation,
        phase: Some(phase.into()),
        message,
        url: observed.service.then(|| children::url(vmcp)),
        discovered_backends: Some(list),
        backend_count: Some(count),
        oidc_config_hash: None,
        authz_config_hash: None,
    }
}

fn count_routable(list: Option<&[DiscoveredBackend]>) -> i32 {
    let n = list
        .into_iter()
        .flatten()
        .filter(|b| vmcp_status::routable(b.status.as_deref()))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Events for backends whose reported status changed (the phase's own Event comes with the
/// status write).
async fn announce_backends(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    status: &VirtualMCPServerStatus,
) {
    let old = vmcp
        .status
        .as_ref()
        .and_then(|s| s.discovered_backends.clone())
        .unwrap_or_default();
    for b in status.discovered_backends.iter().flatten() {
        let before = old.iter().find(|o| o.name == b.name);
        let (Some(now), Some(was)) = (
            b.status.as_deref(),
            before.and_then(|o| o.status.as_deref()),
        ) else {
            continue;
        };
        if now == was || now == "unknown" {
            continue;
        }
        let warning = !vmcp_status::routable(Some(now));
        let mut note = format!("backend {} is now {now} (was {was})", b.name);
        if let Some(m) = &b.message {
            note.push_str(&format!(": {m}"));
        }
        ctx.frame
            .record(
                vmcp,
                warning,
                if warning {
                    "BackendUnavailable"
                } else {
                    "BackendReady"
                },
                &note,
            )
            .await;
    }
}

async fn write_status(
    vmcp: &VirtualMCPServer,
    ctx: &Context,
    mut status: VirtualMCPServerStatus,
    auth: &[Finding],
) -> Result<(), Error> {
    let old = vmcp.status.as_ref().and_then(|s| s.conditions.as_deref());
    let extra = auth_refs::conditions(old, vmcp.meta().generation, auth);
    let list = status.conditions.get_or_insert_with(Vec::new);
    for c in extra {
        // A refusal's own condition of the same type says more.
        if !list.iter().any(|x| x.type_ == c.type_) {
            list.push(c);
        }
    }
    ctx.frame.write_status(vmcp, to_json(&status)).await
}

/// Exponential backoff with jitter, per object; the error also goes out as a Warning Event.
pub fn error_policy(vmcp: Arc<VirtualMCPServer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.frame.backoff(&vmcp, error)
}
