//! One reconciler for the config kinds that MCPServers and MCPRemoteProxies point at by name
//! (MCPToolConfig with `toolConfigRef`, MCPTelemetryConfig with `telemetryConfigRef`,
//! MCPOIDCConfig, MCPAuthzConfig and MCPExternalAuthConfig with their refs): each kind says
//! which reference names it and what its finalizer is called ([`SharedConfig`]).
//!
//! Status: `configHash` (what workloads copy), `Valid`, and `Referenced`, whose message names
//! the users (bounded, sorted). Deleting a config that is still referenced would pull it from
//! under its users, so a finalizer holds the deletion, `DeletionBlocked` says by whom, and it
//! completes once nothing references it. Events, as upstream's: `ConfigInvalid` when the config
//! turns invalid, `ConfigValid` when it recovers, `DeletionBlocked` when a deletion is first held.

use super::frame::{self, Error, Frame, Owner, Settings};
use super::mcpserver::namespaced_or_all;
use super::metrics::ControllerMetrics;
use super::slim::{ProxyRefs, References, ServerRefs, Subscription};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A config kind workloads reference by name.
pub trait SharedConfig: Owner {
    /// Upstream's finalizer name, so an object moved between the two operators keeps its hold.
    const FINALIZER: &'static str;
    /// The name of the config of this kind a workload references, if it references one.
    fn named_by(refs: &References) -> Option<&str>;
    /// The reasons of `Valid` (true, false): upstream's differ by kind.
    const VALID_REASONS: (&'static str, &'static str) = ("ValidationSucceeded", "ValidationFailed");
    /// What `status.configHash` publishes: the hash of the spec.
    fn spec_hash(&self) -> String;
    /// The conditions stored in the status.
    fn conditions(&self) -> Option<&[Condition]>;
}

/// Implements [`SharedConfig`] for a config kind whose `spec` is hashed and whose `status` has
/// `conditions`: its finalizer, the field of [`References`] that names it, and (optionally)
/// its `Valid` reasons.
macro_rules! shared_config {
    ($kind:ty, $finalizer:expr, $reference:ident $(, $reasons:expr)?) => {
        impl $crate::controller::shared_config::SharedConfig for $kind {
            const FINALIZER: &'static str = $finalizer;
            $(const VALID_REASONS: (&'static str, &'static str) = $reasons;)?
            fn named_by(refs: &$crate::controller::slim::References) -> Option<&str> {
                refs.$reference.as_ref().map(|r| r.name.as_str())
            }
            fn spec_hash(&self) -> String {
                $crate::controller::frame::config_hash(&self.spec)
            }
            fn conditions(
                &self,
            ) -> Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]> {
                self.status.as_ref()?.conditions.as_deref()
            }
        }
    };
}
pub(crate) use shared_config;

/// How many users a condition message names before "and N more".
const NAMED_USERS: usize = 20;

/// How often a held deletion looks again, besides the users' own events.
const HELD_RECHECK: Duration = Duration::from_secs(30);

/// The users each config had at its last reconcile, by `ns/name`: a workload that drops or
/// changes its reference, or goes away, must bring back the config it used to name.
type LastUsers = Arc<Mutex<HashMap<String, BTreeSet<String>>>>;

pub struct Context<C: SharedConfig> {
    frame: Frame<C>,
    configs: Store<C>,
    servers: Store<ServerRefs>,
    proxies: Store<ProxyRefs>,
    last_users: LastUsers,
}

/// Runs the controller of config kind `C` over `namespace` (all when `None`) until dropped.
pub async fn run<C: SharedConfig>(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    workloads: Subscription,
) {
    let frame = Frame::<C>::new(client.clone(), settings, metrics);
    let all = watcher::Config::default();
    let Subscription {
        servers: (servers, server_stream),
        proxies: (proxies, proxy_stream),
        ..
    } = workloads;
    let (configs, config_writer) = reflector::store::<C>();
    let config_stream = watcher(namespaced_or_all::<C>(&client, &namespace), all)
        .default_backoff()
        .modify(super::frame::trim_cached)
        .reflect(config_writer)
        .applied_objects();
    let controller = Controller::for_stream(config_stream, configs.clone())
        .with_config(frame.settings.controller_config());
    let last_users = LastUsers::default();
    let ctx = Arc::new(Context {
        frame,
        configs,
        servers,
        proxies,
        last_users: last_users.clone(),
    });
    let for_proxies = last_users.clone();
    controller
        .watches_stream(server_stream, move |s: ServerRefs| {
            configs_touched::<C, _>(&last_users, &s, "MCPServer", C::named_by(&s.spec))
        })
        .watches_stream(proxy_stream, move |p: ProxyRefs| {
            configs_touched::<C, _>(&for_proxies, &p, "MCPRemoteProxy", C::named_by(&p.spec))
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The configs a workload's event concerns: the one it names now and any it was a user of.
fn configs_touched<C: SharedConfig, W: Resource>(
    last_users: &LastUsers,
    workload: &W,
    kind: &str,
    reference: Option<&str>,
) -> Vec<ObjectRef<C>> {
    let Some(ns) = workload.meta().namespace.clone() else {
        return Vec::new();
    };
    let user = format!(
        "{kind}/{}",
        workload.meta().name.clone().unwrap_or_default()
    );
    let mut touched: BTreeSet<String> = last_users
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(key, users)| key.starts_with(&format!("{ns}/")) && users.contains(&user))
        .map(|(key, _)| key[ns.len() + 1..].to_string())
        .collect();
    touched.extend(reference.map(str::to_string));
    touched
        .into_iter()
        .map(|name| ObjectRef::new(&name).within(&ns))
        .collect()
}

pub async fn reconcile<C: SharedConfig>(
    config: Arc<C>,
    ctx: Arc<Context<C>>,
) -> Result<Action, Error> {
    let managed = ctx.configs.len();
    ctx.frame
        .observe(
            &config,
            managed,
            reconcile_inner(config.as_ref(), ctx.as_ref()),
        )
        .await
}

async fn reconcile_inner<C: SharedConfig>(config: &C, ctx: &Context<C>) -> Result<Action, Error> {
    let skips_before = ctx.frame.lag_skips();
    let ns = config.namespace().ok_or(Error::NoNamespace)?;
    let name = config.name_any();
    let listed = tokio::time::timeout(frame::STORE_READY_WAIT, async {
        let _ = ctx.servers.wait_until_ready().await;
        let _ = ctx.proxies.wait_until_ready().await;
    })
    .await
    .is_ok();
    let users = users_of(ctx, &ns, &name);
    ctx.last_users
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(format!("{ns}/{name}"), users.iter().cloned().collect());
    let users: Vec<String> = users.into_iter().collect();
    if config.meta().deletion_timestamp.is_some() {
        if !listed {
            // Users unknown: neither release nor claim anyone holds it.
            return Ok(Action::requeue(HELD_RECHECK));
        }
        if users.is_empty() {
            ctx.frame.release_finalizer(config, C::FINALIZER).await?;
            ctx.last_users
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&format!("{ns}/{name}"));
            return Ok(Action::await_change());
        }
        if !config.finalizers().iter().any(|f| f == C::FINALIZER) {
            // Not held by us (created while the operator was away): nothing to hold it with.
            return Ok(Action::await_change());
        }
        let status = status_for(config, ctx.frame.spec_errors(config), &users, true);
        announce_transitions(config, &status, ctx).await;
        ctx.frame.write_status(config, status).await?;
        return Ok(Action::requeue(
            HELD_RECHECK.min(ctx.frame.settings.resync()),
        ));
    }
    ctx.frame.ensure_finalizer(config, C::FINALIZER).await?;
    let status = status_for(config, ctx.frame.spec_errors(config), &users, false);
    announce_transitions(config, &status, ctx).await;
    ctx.frame.write_status(config, status).await?;
    Ok(ctx.frame.settled(skips_before))
}

/// The Events of what changed between the stored conditions and `status`'s (see the module
/// comment); none when nothing did, so a steady state records nothing.
async fn announce_transitions<C: SharedConfig>(config: &C, status: &Value, ctx: &Context<C>) {
    let was = |type_: &str| {
        config
            .conditions()
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.clone())
    };
    let now = |type_: &str| {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .cloned()
    };
    if let Some(valid) = now("Valid") {
        let message = valid["message"].as_str().unwrap_or_default();
        match (was("Valid").as_deref(), valid["status"].as_str()) {
            (Some("False"), Some("True")) => {
                ctx.frame
                    .record(config, false, "ConfigValid", message)
                    .await
            }
            (previous, Some("False")) if previous != Some("False") => {
                ctx.frame
                    .record(config, true, "ConfigInvalid", message)
                    .await
            }
            _ => {}
        }
    }
    if let Some(held) = now("DeletionBlocked") {
        if was("DeletionBlocked").as_deref() != Some("True") {
            let message = held["message"].as_str().unwrap_or_default();
            ctx.frame
                .record(config, true, "DeletionBlocked", message)
                .await;
        }
    }
}

/// `Kind/name` of every MCPServer and MCPRemoteProxy in `ns` that names the config `name`.
fn users_of<C: SharedConfig>(ctx: &Context<C>, ns: &str, name: &str) -> BTreeSet<String> {
    let names = |refs: &References| C::named_by(refs) == Some(name);
    let in_ns = |m: &kube::core::ObjectMeta| m.namespace.as_deref() == Some(ns);
    let servers = ctx
        .servers
        .state()
        .into_iter()
        .filter(|s| in_ns(s.meta()) && names(&s.spec))
        .map(|s| format!("MCPServer/{}", s.name_any()));
    let proxies = ctx
        .proxies
        .state()
        .into_iter()
        .filter(|p| in_ns(p.meta()) && names(&p.spec))
        .map(|p| format!("MCPRemoteProxy/{}", p.name_any()));
    servers.chain(proxies).collect()
}

/// The whole status: hash, validity, users and (while deleting) the hold.
fn status_for<C: SharedConfig>(
    config: &C,
    invalid: Option<String>,
    users: &[String],
    deleting: bool,
) -> Value {
    let old = config.conditions();
    let generation = config.meta().generation;
    let (valid_reason, invalid_reason) = C::VALID_REASONS;
    let valid = match &invalid {
        None => frame::condition(
            old,
            generation,
            "Valid",
            true,
            valid_reason,
            "the spec passes every admission rule".into(),
        ),
        Some(why) => frame::condition(
            old,
            generation,
            "Valid",
            false,
            invalid_reason,
            frame::truncate(why, 1000),
        ),
    };
    let referenced = if users.is_empty() {
        frame::condition(
            old,
            generation,
            "Referenced",
            false,
            "NotReferenced",
            "no MCPServer or MCPRemoteProxy in the namespace names this config".into(),
        )
    } else {
        frame::condition(
            old,
            generation,
            "Referenced",
            true,
            "ReferencedByWorkloads",
            format!("used by {}", frame::name_list(users, NAMED_USERS)),
        )
    };
    let mut conditions = vec![valid, referenced];
    if deleting {
        conditions.push(frame::condition(
            old,
            generation,
            "DeletionBlocked",
            true,
            "ReferencedByWorkloads",
            format!(
                "deletion waits until no workload references this config; still used by {}",
                frame::name_list(users, NAMED_USERS)
            ),
        ));
    }
    json!({
        "observedGeneration": generation,
        "configHash": config.spec_hash(),
        "conditions": conditions,
    })
}

fn error_policy<C: SharedConfig>(config: Arc<C>, error: &Error, ctx: Arc<Context<C>>) -> Action {
    ctx.frame.backoff(&config, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1beta1::MCPToolConfig;

    fn config(spec: Value, status: Value) -> MCPToolConfig {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPToolConfig",
            "metadata": {"name": "tc", "namespace": "ns", "generation": 2},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn status_names_users_and_is_stable() {
        let c = config(json!({"toolsFilter": ["a"]}), json!({}));
        let users = vec!["MCPRemoteProxy/p".to_string(), "MCPServer/s".to_string()];
        let s = status_for(&c, None, &users, false);
        assert_eq!(s["configHash"], frame::config_hash(&c.spec));
        assert_eq!(s["conditions"][0]["type"], "Valid");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["conditions"][1]["reason"], "ReferencedByWorkloads");
        assert_eq!(
            s["conditions"][1]["message"],
            "used by MCPRemoteProxy/p, MCPServer/s"
        );
        let again = status_for(
            &config(json!({"toolsFilter": ["a"]}), s.clone()),
            None,
            &users,
            false,
        );
        assert_eq!(again, s);
    }

    #[test]
    fn a_held_deletion_says_by_whom() {
        let c = config(json!({}), json!({}));
        let s = status_for(&c, None, &["MCPServer/s".into()], true);
        let held = &s["conditions"][2];
        assert_eq!(held["type"], "DeletionBlocked");
        assert_eq!(held["reason"], "ReferencedByWorkloads");
        assert!(held["message"].as_str().unwrap().contains("MCPServer/s"));
    }

    #[test]
    fn a_workload_brings_back_the_config_it_left() {
        let last = LastUsers::default();
        last.lock()
            .unwrap()
            .insert("ns/old".into(), ["MCPServer/s".to_string()].into());
        last.lock()
            .unwrap()
            .insert("other/old".into(), ["MCPServer/s".to_string()].into());
        let s: ServerRefs = serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"image": "x", "toolConfigRef": {"name": "new"}},
        }))
        .unwrap();
        let reference = MCPToolConfig::named_by(&s.spec);
        let touched = configs_touched::<MCPToolConfig, _>(&last, &s, "MCPServer", reference);
        let names: Vec<String> = touched
            .iter()
            .map(|r| format!("{}/{}", r.namespace.clone().unwrap(), r.name))
            .collect();
        assert_eq!(names, ["ns/new", "ns/old"]);
    }
}
