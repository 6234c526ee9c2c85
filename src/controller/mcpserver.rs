//! The MCPServer reconciler: re-validate, resolve, apply children (only when they differ), and
//! report status (only when it changes).

use super::auth_refs::{self, AuthStores, Finding};
use super::children::{self, Children, Inputs};
use super::credentials::PullCredentials;
use super::frame::{self, Conflict, Frame};
use super::metrics::ControllerMetrics;
use super::resolve::CommandResolver;
use super::telemetry_ref;
use super::workload;
use crate::admission::{self, Operation};
use crate::api::v1beta1::{
    MCPGroup, MCPServer, MCPServerStatus, MCPTelemetryConfig, MCPToolConfig, MCPToolConfigSpec,
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

pub use super::frame::{Error, Settings, DEFAULT_CONCURRENCY, DEFAULT_RESYNC};

/// Everything a reconcile needs besides the object.
pub struct Context {
    pub frame: Frame<MCPServer>,
    pub resolver: Arc<dyn CommandResolver>,
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
    servers: Store<MCPServer>,
}

/// Runs the MCPServer controller over `namespace` (all namespaces when `None`) until the
/// returned future is dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    resolver: Arc<dyn CommandResolver>,
    metrics: ControllerMetrics,
    neighbours: workload::Neighbourhood,
) {
    let frame = Frame::<MCPServer>::new(client.clone(), settings, metrics.clone());
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

    // The MCPServers themselves are cached without managedFields too.
    let (servers, server_writer) = reflector::store::<MCPServer>();
    let server_stream = watcher(
        namespaced_or_all::<MCPServer>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(super::frame::trim_cached)
    .reflect(server_writer)
    .applied_objects();
    metrics.watch_servers(servers.clone());
    let controller = Controller::for_stream(server_stream, servers.clone())
        .with_config(frame.settings.controller_config());
    let ctx = Arc::new(Context {
        frame,
        resolver,
        stores: Stores {
            children: child_stores,
            secrets,
            tool_configs,
            groups,
            telemetry_configs,
            auth: auth.clone(),
            servers: servers.clone(),
        },
        secret_keys: frame::SecretKeys::default(),
    });
    let by_secret = servers.clone();
    let (by_oidc, by_authz, by_external) = (servers.clone(), servers.clone(), servers.clone());
    let by_tool_config = servers.clone();
    let by_authz_config_map = servers.clone();
    let by_group = servers.clone();
    let by_telemetry_config = servers.clone();
    controller
        .owns_stream(child_streams.deployments)
        .owns_stream(child_streams.services)
        .owns_stream(child_streams.service_accounts)
        .owns_stream(child_streams.config_maps)
        .watches_stream(secret_stream, move |secret| {
            frame::referencing(&by_secret, &secret.namespace(), |s: &MCPServer| {
                let ns = s.namespace().unwrap_or_default();
                let looked = auth.look_up(&ns, &children::server_auth(s));
                secret_names(s).contains(&secret.name_any())
                    || auth_refs::secret_names(looked.found()).contains(&secret.name_any())
            })
        })
        .watches_stream(auth_streams.oidc, move |c| {
            auth_refs::users_of(&by_oidc, &c, children::server_auth)
        })
        .watches_stream(auth_streams.authz, move |c| {
            auth_refs::users_of(&by_authz, &c, children::server_auth)
        })
        .watches_stream(auth_streams.external, move |c| {
            auth_refs::users_of(&by_external, &c, children::server_auth)
        })
        .watches_stream(authz_config_map_stream, move |cm| {
            auth_refs::config_map_users(&by_authz_config_map, &cm, children::server_auth)
        })
        .watches_stream(tool_config_stream, move |tc| {
            frame::referencing(&by_tool_config, &tc.namespace(), |s: &MCPServer| {
                s.spec
                    .tool_config_ref
                    .as_ref()
                    .is_some_and(|r| r.name == tc.name_any())
            })
        })
        .watches_stream(group_stream, move |g| {
            frame::referencing(&by_group, &g.namespace(), |s: &MCPServer| {
                s.spec
                    .group_ref
                    .as_ref()
                    .is_some_and(|r| r.name == g.name_any())
            })
        })
        .watches_stream(telemetry_config_stream, move |t| {
            frame::referencing(&by_telemetry_config, &t.namespace(), |s: &MCPServer| {
                s.spec
                    .telemetry_config_ref
                    .as_ref()
                    .is_some_and(|r| r.name == t.name_any())
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// An API over `namespace`, or over all namespaces.
pub(crate) fn namespaced_or_all<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
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
    let managed = ctx.stores.servers.len();
    ctx.frame
        .observe(&server, managed, reconcile_inner(&server, &ctx))
        .await
}

async fn reconcile_inner(server: &MCPServer, ctx: &Context) -> Result<Action, Error> {
    let ns = server.namespace().ok_or(Error::NoNamespace)?;
    let skips_before = ctx.frame.lag_skips();
    if server.meta().deletion_timestamp.is_some() {
        // Children go with the owner references; nothing outside them needs cleaning.
        return Ok(Action::await_change());
    }
    // The webhook may be off or may have been bypassed: check again before acting.
    if let Some(message) = ctx.frame.spec_errors(server) {
        let verdict = Verdict::Refused {
            reason: "InvalidSpec",
            why: message,
        };
        report_without_rollout(server, ctx, &ns, verdict, &[]).await?;
        return Ok(Action::await_change());
    }
    // An inline oidcConfig kept from v1alpha1 is not rendered: running would serve everyone.
    // Nothing of ours may serve it (see `stop_serving`).
    if children::asks_for_inline_oidc(server) {
        stop_serving(server, ctx, &ns).await?;
        let verdict = Verdict::Refused {
            reason: "AuthenticationNotSupported",
            why: INLINE_OIDC_HELD.into(),
        };
        let status = status_for(server, &Observed::default(), verdict, None);
        write_status(server, ctx, with_group(server, ctx, status), &[]).await?;
        return Ok(Action::await_change());
    }
    // The auth references, resolved into what the bridge enforces. One that cannot be resolved
    // (missing, invalid, a type not built) takes the server down: it would serve everyone, or
    // call its backend without the credentials asked for.
    if !ctx.stores.auth.ready().await {
        return Ok(Action::requeue(AUTH_CACHE_RECHECK));
    }
    let looked = ctx.stores.auth.look_up(&ns, &children::server_auth(server));
    let authz_data =
        auth_refs::read_authz_config_map(&ctx.frame.client, &ns, &children::server_auth(server))
            .await?;
    let found = auth_refs::Found {
        authz_config_map: authz_data.as_ref(),
        ..looked.found()
    };
    let mut auth = auth_refs::resolve(&children::auth_workload(server), found);
    if let Ok(resolved) = &auth.outcome {
        let uses = auth_refs::secret_uses(resolved);
        let client = &ctx.frame.client;
        if let Some(why) = ctx
            .secret_keys
            .first_missing(client, &ctx.stores.secrets, &ns, &uses)
            .await
        {
            auth.hold_for_secret(why);
        }
    }
    let findings = auth.findings.as_slice();
    let resolved_auth = match auth.outcome.clone() {
        Ok(resolved) => resolved,
        Err(problem) => {
            stop_serving(server, ctx, &ns).await?;
            let verdict = Verdict::BadReference {
                reason: problem.reason,
                why: problem.message,
            };
            let mut status = status_for(server, &Observed::default(), verdict, None);
            set_auth_hashes(&mut status, None);
            write_status(server, ctx, with_group(server, ctx, status), findings).await?;
            return Ok(Action::await_change());
        }
    };
    // A missing or refused MCPToolConfig must not mean "every tool": nothing is applied (running
    // pods keep their configuration) until it is fixed; its watch brings us back.
    let tool_config = match referenced_tool_config(server, ctx, &ns).await {
        Ok(spec) => spec,
        Err((reason, why)) => {
            let verdict = Verdict::BadReference { reason, why };
            report_without_rollout(server, ctx, &ns, verdict, findings).await?;
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
        report_without_rollout(server, ctx, &ns, verdict, findings).await?;
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
        write_status(server, ctx, status, findings).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    let inputs = Inputs {
        bridge_image: ctx.frame.settings.bridge_image.clone(),
        command,
        tool_config,
        secret_versions: secret_versions(server, ctx, &resolved_auth),
        default_pull_secrets: ctx.frame.settings.default_pull_secrets.clone(),
        auth: resolved_auth,
    };
    let desired = children::desired(server, &inputs);
    let service = match apply_children(server, ctx, &desired).await? {
        Ok(service) => service,
        Err(conflict) => {
            let verdict = Verdict::BadReference {
                reason: Conflict::REASON,
                why: conflict.message(),
            };
            let status = status_for(server, &Observed::default(), verdict, resolved);
            write_status(server, ctx, with_group(server, ctx, status), findings).await?;
            // The object in the way is not in our (labelled) caches: its removal brings no
            // event, so look again soon.
            return Ok(Action::requeue(
                CONFLICT_RECHECK.min(ctx.frame.settings.resync()),
            ));
        }
    };
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
        .children
        .deployments
        .get(&ObjectRef::new(&children::deployment_name(&server.name_any())).within(&ns));
    let observed = Observed {
        deployment: live.as_deref().map(to_json),
        service,
    };
    let mut status = status_for(server, &observed, verdict, resolved);
    // What the pods were rolled out with, as the config's own status.configHash says it.
    status.tool_config_hash = inputs.tool_config.as_ref().map(frame::config_hash);
    set_auth_hashes(&mut status, Some(&inputs.auth));
    write_status(server, ctx, with_group(server, ctx, status), findings).await?;
    Ok(ctx.frame.settled(skips_before))
}

/// How soon a server whose child name is taken looks again.
const CONFLICT_RECHECK: Duration = Duration::from_secs(30);

/// How soon a server looks again when the auth configs' caches have not listed yet.
const AUTH_CACHE_RECHECK: Duration = Duration::from_secs(5);

/// The auth configs' hashes the pods run with (`None`: none runs).
fn set_auth_hashes(status: &mut MCPServerStatus, auth: Option<&auth_refs::Resolved>) {
    status.oidc_config_hash = auth.and_then(|a| a.oidc_hash.clone());
    status.authz_config_hash = auth.and_then(|a| a.authz_hash.clone());
    status.external_auth_config_hash = auth.and_then(|a| a.external_hash.clone());
}

/// What to do instead of inline OIDC, for the condition and the Event.
const INLINE_OIDC_HELD: &str = "spec.oidcConfig (kept from v1alpha1) asks for authentication in the old inline shape, which this operator does not enforce; \
     nothing is deployed and any workload of ours is removed so the server never runs unauthenticated. \
     Move the settings to an MCPOIDCConfig and reference it with spec.oidcConfigRef (v1beta1); \
     to run it without authentication knowingly, remove oidcConfig (at v1alpha1) or the toolhive.stacklok.dev/v1alpha1-oidcConfig annotation";

/// Writes the status of a server that is not rolled out this time, from what the cluster still
/// runs of it: its Service (for `status.url`) and Deployment.
async fn report_without_rollout(
    server: &MCPServer,
    ctx: &Context,
    ns: &str,
    verdict: Verdict,
    auth: &[Finding],
) -> Result<(), Error> {
    let name = server.name_any();
    let deployment = ctx
        .stores
        .children
        .deployments
        .get(&ObjectRef::new(&children::deployment_name(&name)).within(ns));
    let service = ctx
        .stores
        .children
        .services
        .get(&ObjectRef::new(&children::service_name(&name)).within(ns));
    let observed = Observed {
        deployment: ours(server, deployment.as_deref()),
        service: ours(server, service.as_deref()),
    };
    let status = status_for(server, &observed, verdict, None);
    write_status(server, ctx, with_group(server, ctx, status), auth).await
}

/// Removes the Deployment and Service of ours, if any: a server that must not serve (its auth
/// cannot be resolved, or is of a kind the data path cannot give) keeps no pods and no door. Deleting is chosen
/// over scaling to zero because `replicas` may belong to an HPA, which would scale it up again;
/// the ConfigMap and ServiceAccount hold nothing that serves and stay. Nothing the user owns is
/// touched: the frame deletes only children whose controller owner reference is this server.
async fn stop_serving(server: &MCPServer, ctx: &Context, ns: &str) -> Result<(), Error> {
    let name = server.name_any();
    let deployment = ObjectRef::new(&children::deployment_name(&name)).within(ns);
    ctx.frame
        .delete(server, ctx.stores.children.deployments.get(&deployment))
        .await?;
    let service = ObjectRef::new(&children::service_name(&name)).within(ns);
    ctx.frame
        .delete(server, ctx.stores.children.services.get(&service))
        .await
}

/// The child as JSON, if it is this server's own (a labelled object someone else controls is
/// not what the server runs on).
fn ours<T: serde::Serialize>(server: &MCPServer, child: Option<&T>) -> Option<Value> {
    let value = to_json(child?);
    let uid = server.meta().uid.clone().unwrap_or_default();
    frame::foreign_holder(&value, &uid)
        .is_none()
        .then_some(value)
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
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, store.wait_until_ready()).await;
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
    let secrets: Api<Secret> = Api::namespaced(ctx.frame.client.clone(), ns);
    for name in children::pull_secret_names(server, &ctx.frame.settings.default_pull_secrets) {
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

/// `resourceVersion` of every Secret the pods read (the spec's and the auth configs'), so a
/// rotation rolls them.
fn secret_versions(
    server: &MCPServer,
    ctx: &Context,
    auth: &auth_refs::Resolved,
) -> BTreeMap<String, String> {
    let ns = server.namespace().unwrap_or_default();
    secret_names(server)
        .into_iter()
        .chain(auth.secret_env.iter().map(|s| s.secret.clone()))
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

/// Applies the children (see [`workload::apply`]) and returns the Service as the cluster has it
/// now, for the status; or the first conflict with an object that is not ours.
async fn apply_children(
    server: &MCPServer,
    ctx: &Context,
    desired: &Children,
) -> Result<Result<Option<Value>, Conflict>, Error> {
    let name = server.name_any();
    let names = workload::Names {
        config_map: children::config_map_name(&name),
        service_account: children::service_account_name(&name),
        service: children::service_name(&name),
        deployment: children::deployment_name(&name),
    };
    let applied =
        workload::apply(&ctx.frame, server, &ctx.stores.children, &names, desired).await?;
    Ok(applied.map(Some))
}

/// Why the pods cannot get the Secrets of `spec.secrets`, if they cannot: a Secret that does
/// not exist, or lacks the key (the auth configs' Secrets were checked before).
async fn missing_secret(server: &MCPServer, ctx: &Context, ns: &str) -> Option<String> {
    let uses: Vec<frame::SecretUse> = server
        .spec
        .secrets
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| (format!("spec.secrets[{i}]"), r.name.clone(), r.key.clone()))
        .collect();
    ctx.secret_keys
        .first_missing(&ctx.frame.client, &ctx.stores.secrets, ns, &uses)
        .await
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
                (why.clone(), why.clone())
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
        // Filled in by `write_status`, from the referenced config as it is now.
        telemetry_config_hash: None,
        // What the running pods have, until a roll-out or a hold says otherwise.
        oidc_config_hash: old.oidc_config_hash,
        authz_config_hash: old.authz_config_hash,
        external_auth_config_hash: old.external_auth_config_hash,
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
    frame::condition(
        old.conditions.as_deref(),
        generation,
        type_,
        ok,
        reason,
        message,
    )
}

/// Writes the status when it differs from what is stored (the frame records an Event when the
/// phase changes).
async fn write_status(
    server: &MCPServer,
    ctx: &Context,
    mut status: MCPServerStatus,
    auth: &[Finding],
) -> Result<(), Error> {
    let old = server.status.as_ref().and_then(|s| s.conditions.as_deref());
    let conditions = auth_refs::conditions(old, server.meta().generation, auth);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .extend(conditions);
    add_telemetry_ref(server, ctx, &mut status).await;
    let status = serde_json::to_value(&status).unwrap_or(Value::Null);
    ctx.frame.write_status(server, status).await
}

/// `TelemetryConfigRefValidated` and `telemetryConfigHash`, on every status written whatever
/// else happened: advisory, never a reason to hold the server (see [`telemetry_ref`]).
async fn add_telemetry_ref(server: &MCPServer, ctx: &Context, status: &mut MCPServerStatus) {
    let Some(reference) = &server.spec.telemetry_config_ref else {
        return;
    };
    let ns = server.namespace().unwrap_or_default();
    let finding = telemetry_ref::look_up(reference, &ns, &ctx.stores.telemetry_configs).await;
    let old = server.status.as_ref().and_then(|s| s.conditions.as_deref());
    let c = telemetry_ref::condition(old, server.meta().generation, &finding);
    status.conditions.get_or_insert_with(Vec::new).push(c);
    status.telemetry_config_hash = finding.hash;
}

/// Exponential backoff with jitter, per object; the error also goes out as a Warning Event.
pub fn error_policy(server: Arc<MCPServer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.frame.backoff(&server, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
