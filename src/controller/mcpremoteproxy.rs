//! The MCPRemoteProxy reconciler: re-validate (the address guard included, no DNS), check the
//! references (MCPToolConfig, header Secrets), apply the children (only when they differ) and
//! report status (only when it changes). Readiness comes from the pods, which turn ready only
//! when their bridge's own MCP `initialize` against the remote succeeded.

use super::auth_refs::{self, AuthStores, Finding};
use super::frame::{self, Conflict, Frame};
use super::mcpremoteproxy_children::{self as children, Children, Inputs};
use super::mcpserver::namespaced_or_all;
use super::metrics::ControllerMetrics;
use super::telemetry_ref;
use super::workload::{self, Observed};
use crate::admission::{self, Operation};
use crate::api::v1beta1::{
    MCPGroup, MCPRemoteProxy, MCPRemoteProxyStatus, MCPTelemetryConfig, MCPToolConfig,
    MCPToolConfigSpec,
};
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
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use super::frame::{Error, Settings};

/// How soon a proxy whose child name is taken looks again.
const CONFLICT_RECHECK: Duration = Duration::from_secs(30);

/// Everything a reconcile needs besides the object.
pub struct Context {
    pub frame: Frame<MCPRemoteProxy>,
    stores: Stores,
    /// Key names of referenced Secrets by `ns/name`, with the resourceVersion they were read at.
    secret_keys: frame::SecretKeys,
}

/// Caches fed by the same watches that trigger reconciles.
#[derive(Clone)]
struct Stores {
    children: workload::Stores,
    secrets: Store<PartialObjectMeta<Secret>>,
    tool_configs: Store<MCPToolConfig>,
    groups: Store<MCPGroup>,
    telemetry_configs: Store<MCPTelemetryConfig>,
    auth: AuthStores,
    proxies: Store<MCPRemoteProxy>,
}

/// Runs the MCPRemoteProxy controller over `namespace` (all namespaces when `None`) until the
/// returned future is dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    neighbours: workload::Neighbourhood,
) {
    let frame = Frame::<MCPRemoteProxy>::new(client.clone(), settings, metrics);
    let (child_stores, child_streams) =
        workload::Stores::reflect(&frame, &namespace, children::KIND_LABEL, &neighbours);
    let (tool_configs, tool_config_stream) =
        frame.reflect::<MCPToolConfig>(&namespace, watcher::Config::default());
    let (groups, group_stream) = frame.reflect::<MCPGroup>(&namespace, watcher::Config::default());
    let (telemetry_configs, telemetry_config_stream) =
        frame.reflect::<MCPTelemetryConfig>(&namespace, watcher::Config::default());
    let (auth, auth_streams) = AuthStores::reflect(&frame, &namespace);
    // Secrets by metadata only: their values never enter the operator's memory.
    let (secrets, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secret_api: Api<PartialObjectMeta<Secret>> = namespaced_or_all(&client, &namespace);
    let secret_stream = watcher(secret_api, watcher::Config::default())
        .default_backoff()
        .reflect(secret_writer)
        .touched_objects();
    let authz_config_map_stream = auth_refs::watch_authz_config_maps(&client, &namespace);
    let (proxies, proxy_writer) = reflector::store::<MCPRemoteProxy>();
    let proxy_stream = watcher(
        namespaced_or_all::<MCPRemoteProxy>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(super::frame::trim_cached)
    .reflect(proxy_writer)
    .applied_objects();
    let controller = Controller::for_stream(proxy_stream, proxies.clone())
        .with_config(frame.settings.controller_config());
    let ctx = Arc::new(Context {
        frame,
        stores: Stores {
            children: child_stores,
            secrets,
            tool_configs,
            groups,
            telemetry_configs,
            auth: auth.clone(),
            proxies: proxies.clone(),
        },
        secret_keys: frame::SecretKeys::default(),
    });
    let by_secret = proxies.clone();
    let (by_oidc, by_authz, by_external) = (proxies.clone(), proxies.clone(), proxies.clone());
    let by_tool_config = proxies.clone();
    let by_authz_config_map = proxies.clone();
    let by_group = proxies.clone();
    let by_telemetry_config = proxies.clone();
    controller
        .owns_stream(child_streams.deployments)
        .owns_stream(child_streams.services)
        .owns_stream(child_streams.service_accounts)
        .owns_stream(child_streams.config_maps)
        .watches_stream(secret_stream, move |secret| {
            frame::referencing(&by_secret, &secret.namespace(), |p: &MCPRemoteProxy| {
                let ns = p.namespace().unwrap_or_default();
                let looked = auth.look_up(&ns, &children::proxy_auth(p));
                children::header_secrets(p)
                    .iter()
                    .any(|(_, name, _)| *name == secret.name_any())
                    || auth_refs::secret_names(looked.found()).contains(&secret.name_any())
            })
        })
        .watches_stream(auth_streams.oidc, move |c| {
            auth_refs::users_of(&by_oidc, &c, children::proxy_auth)
        })
        .watches_stream(auth_streams.authz, move |c| {
            auth_refs::users_of(&by_authz, &c, children::proxy_auth)
        })
        .watches_stream(auth_streams.external, move |c| {
            auth_refs::users_of(&by_external, &c, children::proxy_auth)
        })
        .watches_stream(authz_config_map_stream, move |cm| {
            auth_refs::config_map_users(&by_authz_config_map, &cm, children::proxy_auth)
        })
        .watches_stream(tool_config_stream, move |tc| {
            frame::referencing(&by_tool_config, &tc.namespace(), |p: &MCPRemoteProxy| {
                p.spec
                    .tool_config_ref
                    .as_ref()
                    .is_some_and(|r| r.name == tc.name_any())
            })
        })
        .watches_stream(group_stream, move |g| {
            frame::referencing(&by_group, &g.namespace(), |p: &MCPRemoteProxy| {
                p.spec
                    .group_ref
                    .as_ref()
                    .is_some_and(|r| r.name == g.name_any())
            })
        })
        .watches_stream(telemetry_config_stream, move |t| {
            frame::referencing(
                &by_telemetry_config,
                &t.namespace(),
                |p: &MCPRemoteProxy| {
                    p.spec
                        .telemetry_config_ref
                        .as_ref()
                        .is_some_and(|r| r.name == t.name_any())
                },
            )
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// One pass over one MCPRemoteProxy.
pub async fn reconcile(proxy: Arc<MCPRemoteProxy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let managed = ctx.stores.proxies.len();
    ctx.frame
        .observe(&proxy, managed, reconcile_inner(&proxy, &ctx))
        .await
}

/// Why a proxy is not rolled out this time; `condition` is the condition that says so besides
/// Ready (upstream's names).
struct Refusal {
    condition: &'static str,
    reason: &'static str,
    why: String,
}

async fn reconcile_inner(proxy: &MCPRemoteProxy, ctx: &Context) -> Result<Action, Error> {
    let ns = proxy.namespace().ok_or(Error::NoNamespace)?;
    let skips_before = ctx.frame.lag_skips();
    if proxy.meta().deletion_timestamp.is_some() {
        // Children go with the owner references.
        return Ok(Action::await_change());
    }
    // The webhook may be off or bypassed: the spec (and the address guard on remoteUrl, judged
    // as written) is checked again before anything is deployed.
    if let Some(message) = ctx.frame.spec_errors(proxy) {
        let reason = if message.contains("spec.remoteUrl") {
            "RemoteURLInvalid"
        } else {
            "InvalidSpec"
        };
        let refusal = Refusal {
            condition: "ConfigurationValid",
            reason,
            why: message,
        };
        report_without_rollout(proxy, ctx, &ns, refusal, &[]).await?;
        return Ok(Action::await_change());
    }
    // An inline oidcConfig kept from v1alpha1 is not rendered: running would serve everyone
    // (and send nothing the remote expects). Nothing of ours may serve it.
    if let Some(why) = held_for_inline_oidc(proxy) {
        stop_serving(proxy, ctx, &ns).await?;
        let refusal = Refusal {
            condition: "AuthConfigured",
            reason: "AuthNotEnforced",
            why,
        };
        let kept = proxy
            .status
            .as_ref()
            .and_then(|s| s.tool_config_hash.clone());
        let status = status_for(proxy, &Observed::default(), Some(&refusal), kept);
        write_status(proxy, ctx, status, &[]).await?;
        return Ok(Action::await_change());
    }
    // The auth references, resolved into what the bridge enforces. One that cannot be resolved
    // takes the proxy down: it would serve everyone, or call the remote without the
    // credentials asked for.
    if !ctx.stores.auth.ready().await {
        return Ok(Action::requeue(AUTH_CACHE_RECHECK));
    }
    let auth = resolve_auth(proxy, ctx, &ns).await?;
    let findings = auth.findings.as_slice();
    let resolved_auth = match auth.outcome.clone() {
        Ok(resolved) => resolved,
        Err(problem) => {
            stop_serving(proxy, ctx, &ns).await?;
            // The finding's own condition says it; Ready carries its reason.
            let refusal = Refusal {
                condition: "",
                reason: problem.reason,
                why: problem.message,
            };
            let mut status = status_for(proxy, &Observed::default(), Some(&refusal), None);
            set_auth_hashes(&mut status, None);
            write_status(proxy, ctx, status, findings).await?;
            return Ok(Action::await_change());
        }
    };
    // A missing or refused MCPToolConfig must not mean "every tool": nothing is applied (running
    // pods keep their configuration) until it is fixed; its watch brings us back.
    let tool_config = match referenced_tool_config(proxy, ctx, &ns).await {
        Ok(spec) => spec,
        Err(refusal) => {
            report_without_rollout(proxy, ctx, &ns, refusal, findings).await?;
            return Ok(Action::await_change());
        }
    };
    // Neither is a proxy rolled out whose header Secret is missing: its pods could not start.
    if let Some(why) = missing_header_secret(proxy, ctx, &ns).await {
        let refusal = Refusal {
            condition: "ConfigurationValid",
            reason: "HeaderSecretNotFound",
            why,
        };
        report_without_rollout(proxy, ctx, &ns, refusal, findings).await?;
        return Ok(Action::await_change());
    }
    let inputs = Inputs {
        bridge_image: ctx.frame.settings.bridge_image.clone(),
        tool_config: tool_config.clone(),
        secret_versions: secret_versions(proxy, ctx, &ns, &resolved_auth),
        default_pull_secrets: ctx.frame.settings.default_pull_secrets.clone(),
        auth: resolved_auth,
    };
    let desired = children::desired(proxy, &inputs);
    // The config's own status.configHash, so the two can be compared by eye and by tools.
    let hash = tool_config.as_ref().map(frame::config_hash);
    if let Err(conflict) = apply_children(proxy, ctx, &desired).await? {
        let refusal = Refusal {
            condition: "",
            reason: Conflict::REASON,
            why: conflict.message(),
        };
        let mut status = status_for(proxy, &Observed::default(), Some(&refusal), hash);
        set_auth_hashes(&mut status, Some(&inputs.auth));
        write_status(proxy, ctx, status, findings).await?;
        // The object in the way is not in our (labelled) caches: look again soon.
        return Ok(Action::requeue(
            CONFLICT_RECHECK.min(ctx.frame.settings.resync()),
        ));
    }
    let observed = observe(proxy, ctx, &ns);
    let mut status = status_for(proxy, &observed, None, hash);
    set_auth_hashes(&mut status, Some(&inputs.auth));
    write_status(proxy, ctx, status, findings).await?;
    Ok(ctx.frame.settled(skips_before))
}

/// How soon a proxy looks again when the auth configs' caches have not listed yet.
const AUTH_CACHE_RECHECK: Duration = Duration::from_secs(5);

/// The proxy's auth references resolved against the caches, held when a Secret key they make
/// the pods read is missing.
async fn resolve_auth(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    ns: &str,
) -> Result<auth_refs::Resolution, Error> {
    let looked = ctx.stores.auth.look_up(ns, &children::proxy_auth(proxy));
    let authz_data =
        auth_refs::read_authz_config_map(&ctx.frame.client, ns, &children::proxy_auth(proxy))
            .await?;
    let found = auth_refs::Found {
        authz_config_map: authz_data.as_ref(),
        ..looked.found()
    };
    let mut auth = auth_refs::resolve(&children::auth_workload(proxy), found);
    if let Ok(resolved) = &auth.outcome {
        let uses = auth_refs::secret_uses(resolved);
        let client = &ctx.frame.client;
        if let Some(why) = ctx
            .secret_keys
            .first_missing(client, &ctx.stores.secrets, ns, &uses)
            .await
        {
            auth.hold_for_secret(why);
        }
    }
    Ok(auth)
}

/// The auth configs' hashes the pods run with (`None`: none runs).
fn set_auth_hashes(status: &mut MCPRemoteProxyStatus, auth: Option<&auth_refs::Resolved>) {
    status.oidc_config_hash = auth.and_then(|a| a.oidc_hash.clone());
    status.authz_config_hash = auth.and_then(|a| a.authz_hash.clone());
    status.external_auth_config_hash = auth.and_then(|a| a.external_hash.clone());
}

/// Why the proxy must not run, if it asks for inline OIDC: an `oidcConfig` kept from v1alpha1
/// in the stash, which is not rendered (`<absent>` marks a field that was not there; anything
/// else is a request, never fail open).
fn held_for_inline_oidc(proxy: &MCPRemoteProxy) -> Option<String> {
    let key = format!("{}oidcConfig", crate::api::ALPHA_STASH_PREFIX);
    let inline = proxy
        .annotations()
        .get(&key)
        .is_some_and(|v| v != crate::api::ABSENT && !v.trim().is_empty() && v != "null");
    inline.then(|| {
        format!(
            "spec.oidcConfig (kept from v1alpha1 in the {key} annotation) asks for authentication in the old inline shape, \
             which mcp-operator does not enforce: the MCPRemoteProxy is held (no Deployment, no Service; Ready=False, reason \
             AuthNotEnforced) so that it never serves unauthenticated; move the settings to an MCPOIDCConfig and reference it \
             with spec.oidcConfigRef (v1beta1), or remove oidcConfig (at v1alpha1) or the annotation to run it without authentication knowingly"
        )
    })
}

/// Removes the Deployment and Service of ours, if any, as for a held MCPServer: deleting, not
/// scaling to zero, because `replicas` may belong to an HPA; the ConfigMap and ServiceAccount
/// serve nothing and stay; only children whose controller owner reference is this proxy go.
async fn stop_serving(proxy: &MCPRemoteProxy, ctx: &Context, ns: &str) -> Result<(), Error> {
    let name = proxy.name_any();
    let deployment = at(ns, children::deployment_name(&name));
    ctx.frame
        .delete(proxy, ctx.stores.children.deployments.get(&deployment))
        .await?;
    let service = at(ns, children::service_name(&name));
    ctx.frame
        .delete(proxy, ctx.stores.children.services.get(&service))
        .await
}

fn observe(proxy: &MCPRemoteProxy, ctx: &Context, ns: &str) -> Observed {
    let name = proxy.name_any();
    let uid = proxy.meta().uid.clone().unwrap_or_default();
    ctx.stores.children.observe(
        ns,
        &children::deployment_name(&name),
        &children::service_name(&name),
        &uid,
    )
}

/// Writes the status of a proxy that is not rolled out this time, from what the cluster still
/// runs of it.
async fn report_without_rollout(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    ns: &str,
    refusal: Refusal,
    auth: &[Finding],
) -> Result<(), Error> {
    let observed = observe(proxy, ctx, ns);
    // The hash the running pods were made with stays until a new one is rolled out.
    let kept = proxy
        .status
        .as_ref()
        .and_then(|s| s.tool_config_hash.clone());
    let status = status_for(proxy, &observed, Some(&refusal), kept);
    write_status(proxy, ctx, status, auth).await
}

fn at<C: Resource<DynamicType = ()>>(ns: &str, name: String) -> ObjectRef<C> {
    ObjectRef::new(&name).within(ns)
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The referenced MCPToolConfig's spec (none referenced: `None`), or why the proxy must not be
/// rolled out: it does not exist, or admission refuses it (the bridge would refuse it too).
async fn referenced_tool_config(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    ns: &str,
) -> Result<Option<MCPToolConfigSpec>, Refusal> {
    let Some(reference) = &proxy.spec.tool_config_ref else {
        return Ok(None);
    };
    let name = &reference.name;
    let store = &ctx.stores.tool_configs;
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, store.wait_until_ready()).await;
    let Some(config) = store.get(&ObjectRef::new(name).within(ns)) else {
        return Err(Refusal {
            condition: "ToolConfigValidated",
            reason: "ToolConfigNotFound",
            why: format!(
                "MCPToolConfig {name:?} does not exist in namespace {ns}; create it or remove spec.toolConfigRef"
            ),
        });
    };
    let object = serde_json::to_value(config.as_ref()).unwrap_or(Value::Null);
    match admission::admit(&object, None, Operation::Create) {
        Ok(verdict) if !verdict.allowed() => Err(Refusal {
            condition: "ToolConfigValidated",
            reason: "ToolConfigInvalid",
            why: format!("MCPToolConfig {name:?} is not valid: {}", verdict.errors),
        }),
        _ => Ok(Some(config.spec.clone())),
    }
}

/// Why the pods could not get a header's value, if they could not: a Secret that does not
/// exist, or lacks the key.
async fn missing_header_secret(proxy: &MCPRemoteProxy, ctx: &Context, ns: &str) -> Option<String> {
    let uses: Vec<frame::SecretUse> = children::header_secrets(proxy)
        .into_iter()
        .enumerate()
        .map(|(i, (header, name, key))| {
            let field = format!("spec.headerForward.addHeadersFromSecret[{i}] ({header})");
            (field, name.to_string(), key.to_string())
        })
        .collect();
    ctx.secret_keys
        .first_missing(&ctx.frame.client, &ctx.stores.secrets, ns, &uses)
        .await
}

/// `resourceVersion` of every Secret the pods read (headers and auth configs), so a rotation
/// rolls the pods.
fn secret_versions(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    ns: &str,
    auth: &auth_refs::Resolved,
) -> BTreeMap<String, String> {
    let auth_secrets = auth.secret_env.iter().map(|s| s.secret.as_str());
    children::header_secrets(proxy)
        .into_iter()
        .map(|(_, name, _)| name)
        .chain(auth_secrets)
        .map(|name| {
            let version = ctx
                .stores
                .secrets
                .get(&ObjectRef::new(name).within(ns))
                .and_then(|s| s.resource_version())
                .unwrap_or_else(|| "missing".into());
            (name.to_string(), version)
        })
        .collect()
}

/// Applies the children (see [`workload::apply`]); or returns the first conflict with an
/// object that is not ours.
async fn apply_children(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    desired: &Children,
) -> Result<Result<(), Conflict>, Error> {
    let name = proxy.name_any();
    let names = workload::Names {
        config_map: children::config_map_name(&name),
        service_account: children::service_account_name(&name),
        service: children::service_name(&name),
        deployment: children::deployment_name(&name),
    };
    let applied = workload::apply(&ctx.frame, proxy, &ctx.stores.children, &names, desired).await?;
    Ok(applied.map(|_service| ()))
}

/// The status the object should have, from what was found. An unchanged world yields an
/// identical status (transition times kept), so nothing is written at steady state.
fn status_for(
    proxy: &MCPRemoteProxy,
    observed: &Observed,
    refusal: Option<&Refusal>,
    tool_config_hash: Option<String>,
) -> MCPRemoteProxyStatus {
    let old = proxy.status.clone().unwrap_or_default();
    let generation = proxy.meta().generation;
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
    let deployment = observed.deployment.as_ref();
    let ready_replicas = deployment
        .and_then(|d| d.pointer("/status/readyReplicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let scaled_to_zero = deployment
        .and_then(|d| d.pointer("/spec/replicas"))
        .and_then(Value::as_i64)
        == Some(0);
    let (phase, message) = match refusal {
        Some(r) => {
            if r.condition == "ConfigurationValid" {
                cond("ConfigurationValid", false, r.reason, r.why.clone());
            } else {
                cond(
                    "ConfigurationValid",
                    true,
                    "Valid",
                    "the spec is valid".into(),
                );
            }
            if matches!(r.condition, "ToolConfigValidated" | "AuthConfigured") {
                cond(r.condition, false, r.reason, r.why.clone());
            }
            cond("Ready", false, r.reason, r.why.clone());
            ("Failed", Some(r.why.clone()))
        }
        None => {
            cond(
                "ConfigurationValid",
                true,
                "Valid",
                "the spec is valid".into(),
            );
            if let Some(tc) = &proxy.spec.tool_config_ref {
                cond(
                    "ToolConfigValidated",
                    true,
                    "ToolConfigValid",
                    format!("MCPToolConfig {:?} is valid", tc.name),
                );
            }
            if scaled_to_zero {
                cond("Ready", false, "Stopped", "scaled to zero".into());
                ("Pending", Some("the Deployment is scaled to zero".into()))
            } else if ready_replicas > 0 {
                cond(
                    "Ready",
                    true,
                    "DeploymentReady",
                    format!("{ready_replicas} pod(s) ready"),
                );
                ("Ready", None)
            } else {
                cond(
                    "Ready",
                    false,
                    "DeploymentNotReady",
                    "waiting for a pod whose bridge has initialized an MCP session with the remote"
                        .into(),
                );
                ("Pending", None)
            }
        }
    };
    // A pod is ready only once its bridge's own initialize against the remote succeeded (its
    // readiness probe), so ready pods mean the remote answers; without them nothing is known.
    let available = refusal.is_none() && ready_replicas > 0 && !scaled_to_zero;
    let (reason, message_ra) = if available {
        (
            "RemoteReachable",
            format!("{ready_replicas} pod(s) completed an MCP initialize with the remote"),
        )
    } else {
        (
            "RemoteNotConfirmed",
            "no ready pod has completed an MCP initialize with the remote (see the pods' logs)"
                .to_string(),
        )
    };
    cond("RemoteAvailable", available, reason, message_ra);
    MCPRemoteProxyStatus {
        conditions: Some(conditions),
        observed_generation: generation,
        phase: Some(phase.into()),
        message,
        url: observed.service.then(|| children::url(proxy)),
        external_url: None,
        tool_config_hash,
        // Filled in by `write_status`, from the referenced config as it is now.
        telemetry_config_hash: None,
        // What the running pods have, until a roll-out or a hold says otherwise.
        oidc_config_hash: old.oidc_config_hash,
        authz_config_hash: old.authz_config_hash,
        external_auth_config_hash: old.external_auth_config_hash,
    }
}

async fn write_status(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    mut status: MCPRemoteProxyStatus,
    auth: &[Finding],
) -> Result<(), Error> {
    let old = proxy.status.as_ref().and_then(|s| s.conditions.as_deref());
    let conditions = auth_refs::conditions(old, proxy.meta().generation, auth);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .extend(conditions);
    if let Some(c) = group_condition(proxy, ctx) {
        status.conditions.get_or_insert_with(Vec::new).push(c);
    }
    add_telemetry_ref(proxy, ctx, &mut status).await;
    ctx.frame.write_status(proxy, to_json(&status)).await
}

/// `TelemetryConfigRefValidated` and `telemetryConfigHash`: advisory, never a reason to hold
/// the proxy (see [`telemetry_ref`]).
async fn add_telemetry_ref(
    proxy: &MCPRemoteProxy,
    ctx: &Context,
    status: &mut MCPRemoteProxyStatus,
) {
    let Some(reference) = &proxy.spec.telemetry_config_ref else {
        return;
    };
    let ns = proxy.namespace().unwrap_or_default();
    let finding = telemetry_ref::look_up(reference, &ns, &ctx.stores.telemetry_configs).await;
    let old = proxy.status.as_ref().and_then(|s| s.conditions.as_deref());
    let c = telemetry_ref::condition(old, proxy.meta().generation, &finding);
    status.conditions.get_or_insert_with(Vec::new).push(c);
    status.telemetry_config_hash = finding.hash;
}

/// `GroupRefValidated`, as for MCPServers: advisory, never blocking; a deleted group turns it
/// False and leaves the proxy running.
fn group_condition(proxy: &MCPRemoteProxy, ctx: &Context) -> Option<Condition> {
    let group = &proxy.spec.group_ref.as_ref()?.name;
    let ns = proxy.namespace().unwrap_or_default();
    let found = ctx.stores.groups.get(&at(&ns, group.clone())).is_some();
    let (reason, message) = if found {
        ("GroupRefIsValid", format!("MCPGroup {group} exists"))
    } else {
        (
            "GroupRefNotFound",
            format!("MCPGroup {group} does not exist in namespace {ns}"),
        )
    };
    let old = proxy.status.as_ref().and_then(|s| s.conditions.as_deref());
    Some(frame::condition(
        old,
        proxy.meta().generation,
        "GroupRefValidated",
        found,
        reason,
        message,
    ))
}

/// Exponential backoff with jitter, per object; the error also goes out as a Warning Event.
pub fn error_policy(proxy: Arc<MCPRemoteProxy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.frame.backoff(&proxy, error)
}
