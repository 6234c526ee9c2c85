//! The MCPServerEntry reconciler: validation only (an entry has no children; the
//! VirtualMCPServers of its group render it as a backend). Its status says whether what it
//! names exists: the group, the MCPExternalAuthConfig, the CA bundle's ConfigMap and key, the
//! header Secrets and keys; and whether the spec itself (the address guard on `remoteUrl`
//! included) passes admission. Phase `Valid` when all do, `Failed` otherwise.

use super::frame::{self, Error, Frame, Settings};
use super::mcpserver::namespaced_or_all;
use super::metrics::ControllerMetrics;
use crate::api::v1beta1::{MCPExternalAuthConfig, MCPGroup, MCPServerEntry};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use std::sync::Arc;

pub struct Context {
    frame: Frame<MCPServerEntry>,
    entries: Store<MCPServerEntry>,
    groups: Store<MCPGroup>,
    external: Store<MCPExternalAuthConfig>,
    config_maps: Store<PartialObjectMeta<ConfigMap>>,
    secrets: Store<PartialObjectMeta<Secret>>,
    secret_keys: frame::SecretKeys,
}

/// Runs the MCPServerEntry controller over `namespace` (all when `None`) until dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
) {
    let frame = Frame::<MCPServerEntry>::new(client.clone(), settings, metrics);
    let all = watcher::Config::default;
    let (groups, group_stream) = frame.reflect::<MCPGroup>(&namespace, all());
    let (external, external_stream) = frame.reflect::<MCPExternalAuthConfig>(&namespace, all());
    // ConfigMaps and Secrets by metadata only: their contents never enter the cache.
    let (config_maps, cm_writer) = reflector::store::<PartialObjectMeta<ConfigMap>>();
    let cm_stream = watcher(namespaced_or_all(&client, &namespace), all())
        .default_backoff()
        .reflect(cm_writer)
        .touched_objects();
    let (secrets, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secret_stream = watcher(namespaced_or_all(&client, &namespace), all())
        .default_backoff()
        .reflect(secret_writer)
        .touched_objects();
    let (entries, entry_writer) = reflector::store::<MCPServerEntry>();
    let entry_stream = watcher(
        namespaced_or_all::<MCPServerEntry>(&client, &namespace),
        all(),
    )
    .default_backoff()
    .modify(super::frame::trim_cached)
    .reflect(entry_writer)
    .applied_objects();
    let controller = Controller::for_stream(entry_stream, entries.clone())
        .with_config(frame.settings.controller_config());
    let ctx = Arc::new(Context {
        frame,
        entries: entries.clone(),
        groups,
        external,
        config_maps,
        secrets,
        secret_keys: frame::SecretKeys::default(),
    });
    let e = || entries.clone();
    let (by_group, by_external, by_cm, by_secret) = (e(), e(), e(), e());
    controller
        .watches_stream(group_stream, move |g| {
            frame::referencing(&by_group, &g.namespace(), |x: &MCPServerEntry| {
                x.spec.group_ref.name == g.name_any()
            })
        })
        .watches_stream(external_stream, move |c| {
            frame::referencing(&by_external, &c.namespace(), |x: &MCPServerEntry| {
                x.spec
                    .external_auth_config_ref
                    .as_ref()
                    .is_some_and(|r| r.name == c.name_any())
            })
        })
        .watches_stream(cm_stream, move |cm| {
            frame::referencing(&by_cm, &cm.namespace(), |x: &MCPServerEntry| {
                ca_bundle(x).is_some_and(|(name, _)| name == cm.name_any())
            })
        })
        .watches_stream(secret_stream, move |s| {
            frame::referencing(&by_secret, &s.namespace(), |x: &MCPServerEntry| {
                header_secrets(x).iter().any(|(_, n, _)| *n == s.name_any())
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The CA bundle's ConfigMap and key, when one is named.
fn ca_bundle(e: &MCPServerEntry) -> Option<(String, String)> {
    let r = e.spec.ca_bundle_ref.as_ref()?.config_map_ref.as_ref()?;
    Some((r.name.clone().filter(|n| !n.is_empty())?, r.key.clone()))
}

/// `(header, secret, key)` of every header from a Secret.
fn header_secrets(e: &MCPServerEntry) -> Vec<(&str, &str, &str)> {
    e.spec
        .header_forward
        .iter()
        .flat_map(|h| h.add_headers_from_secret.iter().flatten())
        .map(|h| {
            (
                h.header_name.as_str(),
                h.value_secret_ref.name.as_str(),
                h.value_secret_ref.key.as_str(),
            )
        })
        .collect()
}

pub async fn reconcile(entry: Arc<MCPServerEntry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let managed = ctx.entries.len();
    ctx.frame
        .observe(&entry, managed, reconcile_inner(&entry, &ctx))
        .await
}

/// One check's verdict: the condition type, whether it holds, its reason and message.
type Check = (&'static str, bool, &'static str, String);

async fn reconcile_inner(entry: &MCPServerEntry, ctx: &Context) -> Result<Action, Error> {
    let skips_before = ctx.frame.lag_skips();
    if entry.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = entry.namespace().ok_or(Error::NoNamespace)?;
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, async {
        let _ = ctx.groups.wait_until_ready().await;
        let _ = ctx.external.wait_until_ready().await;
        let _ = ctx.config_maps.wait_until_ready().await;
    })
    .await;
    let mut checks: Vec<Check> = Vec::new();
    checks.push(spec_check(entry, ctx));
    checks.push(group_check(entry, ctx, &ns));
    checks.push(external_auth_check(entry, ctx, &ns));
    checks.push(ca_bundle_check(entry, ctx, &ns).await);
    checks.push(header_secrets_check(entry, ctx, &ns).await);
    let status = status_for(entry, &checks);
    ctx.frame.write_status(entry, status).await?;
    Ok(ctx.frame.settled(skips_before))
}

/// `Valid` and `RemoteURLValidated`: the admission core's verdict on the spec (the address
/// guard on `remoteUrl`, judged as written, is part of it).
fn spec_check(entry: &MCPServerEntry, ctx: &Context) -> Check {
    match ctx.frame.spec_errors(entry) {
        None => ("Valid", true, "ConfigValid", "the spec is valid".into()),
        Some(errors) => ("Valid", false, "ConfigInvalid", errors),
    }
}

fn group_check(entry: &MCPServerEntry, ctx: &Context, ns: &str) -> Check {
    let group = &entry.spec.group_ref.name;
    if ctx.groups.get(&ObjectRef::new(group).within(ns)).is_some() {
        (
            "GroupRefValidated",
            true,
            "GroupRefValid",
            format!("MCPGroup {group} exists"),
        )
    } else {
        (
            "GroupRefValidated",
            false,
            "GroupRefNotFound",
            format!("MCPGroup {group:?} does not exist in namespace {ns}"),
        )
    }
}

fn external_auth_check(entry: &MCPServerEntry, ctx: &Context, ns: &str) -> Check {
    let c = "ExternalAuthConfigValidated";
    let Some(r) = &entry.spec.external_auth_config_ref else {
        return (
            c,
            true,
            "AuthConfigNotConfigured",
            "no externalAuthConfigRef".into(),
        );
    };
    if ctx
        .external
        .get(&ObjectRef::new(&r.name).within(ns))
        .is_some()
    {
        (
            c,
            true,
            "AuthConfigValid",
            format!("MCPExternalAuthConfig {} exists", r.name),
        )
    } else {
        (
            c,
            false,
            "AuthConfigNotFound",
            format!(
                "spec.externalAuthConfigRef: MCPExternalAuthConfig {:?} does not exist in namespace {ns}",
                r.name
            ),
        )
    }
}

/// The CA bundle's ConfigMap exists (metadata cache) and holds the key (one read of it, only
/// when it exists: the cache keeps no contents).
async fn ca_bundle_check(entry: &MCPServerEntry, ctx: &Context, ns: &str) -> Check {
    let c = "CABundleRefValidated";
    let Some((name, key)) = ca_bundle(entry) else {
        return (c, true, "CABundleRefNotConfigured", "no caBundleRef".into());
    };
    let field = "spec.caBundleRef.configMapRef";
    if ctx
        .config_maps
        .get(&ObjectRef::new(&name).within(ns))
        .is_none()
    {
        return (
            c,
            false,
            "CABundleRefNotFound",
            format!("{field}: ConfigMap {name:?} does not exist in namespace {ns}"),
        );
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.frame.client.clone(), ns);
    match api.get_opt(&name).await {
        Ok(Some(cm)) => {
            let has = cm.data.as_ref().is_some_and(|d| d.contains_key(&key))
                || cm
                    .binary_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&key));
            if has {
                (
                    c,
                    true,
                    "CABundleRefValid",
                    format!("ConfigMap {name} has key {key}"),
                )
            } else {
                (
                    c,
                    false,
                    "CABundleRefInvalid",
                    format!("{field}: ConfigMap {name:?} has no key {key:?}"),
                )
            }
        }
        // Gone since, or unreadable now: the cache's word stands until the next pass.
        _ => (
            c,
            true,
            "CABundleRefValid",
            format!("ConfigMap {name} exists"),
        ),
    }
}

async fn header_secrets_check(entry: &MCPServerEntry, ctx: &Context, ns: &str) -> Check {
    let c = "HeaderSecretRefsValidated";
    let uses: Vec<frame::SecretUse> = header_secrets(entry)
        .into_iter()
        .enumerate()
        .map(|(i, (header, name, key))| {
            (
                format!("spec.headerForward.addHeadersFromSecret[{i}] ({header})"),
                name.to_string(),
                key.to_string(),
            )
        })
        .collect();
    if uses.is_empty() {
        return (
            c,
            true,
            "HeaderSecretsNotConfigured",
            "no headers from Secrets".into(),
        );
    }
    match ctx
        .secret_keys
        .first_missing(&ctx.frame.client, &ctx.secrets, ns, &uses)
        .await
    {
        None => (
            c,
            true,
            "HeaderSecretsValid",
            "every header Secret has its key".into(),
        ),
        Some(why) => (c, false, "HeaderSecretNotFound", why),
    }
}

/// The entry's status from its checks; `RemoteURLValidated` follows `Valid` on the
/// `spec.remoteUrl` errors. Identical checks give an identical status (no write).
fn status_for(entry: &MCPServerEntry, checks: &[Check]) -> Value {
    let old = entry.status.clone().unwrap_or_default();
    let generation = entry.meta().generation;
    let cond = |(type_, ok, reason, message): &Check| -> Condition {
        frame::condition(
            old.conditions.as_deref(),
            generation,
            type_,
            *ok,
            reason,
            message.clone(),
        )
    };
    let mut conditions: Vec<Condition> = checks.iter().map(cond).collect();
    let url_bad = checks
        .iter()
        .find(|c| c.0 == "Valid" && !c.1)
        .filter(|c| c.3.contains("spec.remoteUrl"));
    let url_check: Check = match url_bad {
        Some(c) => ("RemoteURLValidated", false, "RemoteURLInvalid", c.3.clone()),
        None => (
            "RemoteURLValidated",
            true,
            "RemoteURLValid",
            format!("{} may be reached", entry.spec.remote_url),
        ),
    };
    conditions.push(cond(&url_check));
    // The status has no message field: the failing conditions carry theirs.
    let phase = if checks.iter().all(|c| c.1) {
        "Valid"
    } else {
        "Failed"
    };
    json!({
        "observedGeneration": generation,
        "phase": phase,
        "conditions": conditions,
    })
}

fn error_policy(entry: Arc<MCPServerEntry>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.frame.backoff(&entry, error)
}
