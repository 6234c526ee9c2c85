//! The MCPRegistry reconciler: re-validate, apply the registry API server's children (only when
//! they differ), and report status (only when it changes).

use super::child_cache::Slim;
use super::frame::{self, Applied, Conflict, Error, Frame, Settings};
use super::mcpregistry_children::{self as children, Children, Inputs};
use super::mcpserver::namespaced_or_all;
use super::metrics::ControllerMetrics;
use crate::api::v1beta1::{MCPRegistry, MCPRegistryStatus};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The child watches of this kind: our label, and the kind's own name label (the children of
/// other kinds are theirs to cache).
const CHILD_SELECTOR: &str =
    "app.kubernetes.io/managed-by=mcp-operator,app.kubernetes.io/name=mcpregistry";

/// How soon a registry whose child name is taken looks again: the object in the way is not in
/// our (labelled) caches, so its removal brings no event.
const CONFLICT_RECHECK: Duration = Duration::from_secs(30);

/// Everything a reconcile needs besides the object.
pub struct Context {
    pub frame: Frame<MCPRegistry>,
    stores: Stores,
}

/// Caches fed by the same watches that trigger reconciles.
#[derive(Clone)]
struct Stores {
    config_maps: Store<Slim<ConfigMap>>,
    service_accounts: Store<Slim<ServiceAccount>>,
    roles: Store<Role>,
    role_bindings: Store<RoleBinding>,
    deployments: Store<Slim<Deployment>>,
    services: Store<Slim<Service>>,
    secrets: Store<PartialObjectMeta<Secret>>,
    registries: Store<MCPRegistry>,
}

/// Runs the MCPRegistry controller over `namespace` (all namespaces when `None`) until the
/// returned future is dropped.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    metrics: ControllerMetrics,
    neighbours: super::workload::Neighbourhood,
) {
    let frame = Frame::<MCPRegistry>::new(client.clone(), settings, metrics);
    let cfg = watcher::Config::default().labels(CHILD_SELECTOR);
    let (config_maps, cm_stream) = frame.reflect::<Slim<ConfigMap>>(&namespace, cfg.clone());
    let (service_accounts, sa_stream) =
        frame.reflect::<Slim<ServiceAccount>>(&namespace, cfg.clone());
    let (roles, role_stream) = frame.reflect::<Role>(&namespace, cfg.clone());
    let (role_bindings, binding_stream) = frame.reflect::<RoleBinding>(&namespace, cfg.clone());
    let (deployments, deployment_stream) =
        frame.reflect::<Slim<Deployment>>(&namespace, cfg.clone());
    let (services, service_stream) = frame.reflect::<Slim<Service>>(&namespace, cfg);
    // The kinds' children share names: the workload kinds look here before they create one.
    neighbours.register(
        super::mcpregistry_children::KIND_LABEL,
        super::workload::Labelled {
            deployments: deployments.clone(),
            services: services.clone(),
            service_accounts: service_accounts.clone(),
            config_maps: config_maps.clone(),
        },
    );
    // The pgpass Secret by metadata only: its version rolls the pods, its value is never read.
    let (secrets, secret_writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let secret_stream = watcher(
        namespaced_or_all::<PartialObjectMeta<Secret>>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(secret_writer)
    .touched_objects();
    let (registries, registry_writer) = reflector::store::<MCPRegistry>();
    let registry_stream = watcher(
        namespaced_or_all::<MCPRegistry>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(super::frame::trim_cached)
    .reflect(registry_writer)
    .applied_objects();
    let controller = Controller::for_stream(registry_stream, registries.clone())
        .with_config(frame.settings.controller_config());
    let by_secret = registries.clone();
    let ctx = Arc::new(Context {
        frame,
        stores: Stores {
            config_maps,
            service_accounts,
            roles,
            role_bindings,
            deployments,
            services,
            secrets,
            registries,
        },
    });
    controller
        .owns_stream(cm_stream)
        .owns_stream(sa_stream)
        .owns_stream(role_stream)
        .owns_stream(binding_stream)
        .owns_stream(deployment_stream)
        .owns_stream(service_stream)
        .watches_stream(secret_stream, move |secret| {
            frame::referencing(&by_secret, &secret.namespace(), |r: &MCPRegistry| {
                pgpass_secret(r) == Some(secret.name_any())
            })
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn pgpass_secret(registry: &MCPRegistry) -> Option<String> {
    registry
        .spec
        .pgpass_secret_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .filter(|n| !n.is_empty())
}

/// One pass over one MCPRegistry.
pub async fn reconcile(registry: Arc<MCPRegistry>, ctx: Arc<Context>) -> Result<Action, Error> {
    let managed = ctx.stores.registries.len();
    ctx.frame
        .observe(&registry, managed, reconcile_inner(&registry, &ctx))
        .await
}

async fn reconcile_inner(registry: &MCPRegistry, ctx: &Context) -> Result<Action, Error> {
    let ns = registry.namespace().ok_or(Error::NoNamespace)?;
    let skips_before = ctx.frame.lag_skips();
    if registry.meta().deletion_timestamp.is_some() {
        // Children go with the owner references; nothing outside them needs cleaning.
        return Ok(Action::await_change());
    }
    // The webhook may be off or may have been bypassed: check again before acting. Nothing is
    // applied; pods already running keep serving the previous config.
    if let Some(why) = ctx.frame.spec_errors(registry) {
        let observed = running_deployment(registry, ctx, &ns);
        let status = status_for(registry, observed.as_ref(), Verdict::Invalid(why));
        write_status(registry, ctx, status).await?;
        return Ok(Action::await_change());
    }
    let _ = tokio::time::timeout(
        frame::STORE_READY_WAIT,
        ctx.stores.secrets.wait_until_ready(),
    )
    .await;
    let pgpass = pgpass_secret(registry).map(|name| {
        ctx.stores
            .secrets
            .get(&ObjectRef::new(&name).within(&ns))
            .map(|s| s.resource_version().unwrap_or_default())
    });
    let inputs = Inputs {
        api_image: ctx.frame.settings.registry_api_image.clone(),
        operator_image: ctx.frame.settings.bridge_image.clone(),
        default_pull_secrets: ctx.frame.settings.default_pull_secrets.clone(),
        pgpass_version: pgpass
            .clone()
            .map(|v| v.unwrap_or_else(|| "missing".into())),
    };
    let desired = children::desired(registry, &inputs);
    if let Err(conflict) = apply_children(registry, ctx, &ns, &desired).await? {
        let status = status_for(registry, None, Verdict::Conflict(conflict));
        write_status(registry, ctx, status).await?;
        return Ok(Action::requeue(
            CONFLICT_RECHECK.min(ctx.frame.settings.resync()),
        ));
    }
    let deployment = ctx
        .stores
        .deployments
        .get(&at(&ns, children::api_name(&registry.name_any())))
        .map(|d| to_json(d.as_ref()));
    // A pgpass Secret that does not exist keeps the pods in their init phase: say why.
    let missing = matches!(pgpass, Some(None)) && !pgpass_optional(registry);
    let verdict = match pgpass_secret(registry).filter(|_| missing) {
        Some(name) => Verdict::SecretMissing(name),
        None => Verdict::Applied,
    };
    let status = status_for(registry, deployment.as_ref(), verdict);
    write_status(registry, ctx, status).await?;
    Ok(ctx.frame.settled(skips_before))
}

fn pgpass_optional(registry: &MCPRegistry) -> bool {
    registry
        .spec
        .pgpass_secret_ref
        .as_ref()
        .and_then(|r| r.optional)
        .unwrap_or(false)
}

/// The cache key of a child named `name` in `ns`.
fn at<C: Resource<DynamicType = ()>>(ns: &str, name: String) -> ObjectRef<C> {
    ObjectRef::new(&name).within(ns)
}

fn to_json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The registry API Deployment the cluster runs for this registry, if it is ours.
fn running_deployment(registry: &MCPRegistry, ctx: &Context, ns: &str) -> Option<Value> {
    let live = ctx
        .stores
        .deployments
        .get(&at(ns, children::api_name(&registry.name_any())))?;
    let value = to_json(live.as_ref());
    let uid = registry.meta().uid.clone().unwrap_or_default();
    frame::foreign_holder(&value, &uid)
        .is_none()
        .then_some(value)
}

/// Server-side applies every child that differs from what the cluster has, in order; converged
/// children cost nothing. When a child's name is held by an object that is not ours, the first
/// such conflict is returned and the children after it are not applied (a Deployment must not
/// start on someone else's ConfigMap, nor under someone else's RoleBinding).
async fn apply_children(
    registry: &MCPRegistry,
    ctx: &Context,
    ns: &str,
    desired: &Children,
) -> Result<Result<(), Conflict>, Error> {
    let name = registry.name_any();
    // Right after start-up the child caches may not have listed yet: a child missing from
    // them is not missing from the cluster, and applying it would be a write per child.
    let s = &ctx.stores;
    frame::wait_for_caches(vec![
        Box::pin(async {
            let _ = s.config_maps.wait_until_ready().await;
        }),
        Box::pin(async {
            let _ = s.service_accounts.wait_until_ready().await;
        }),
        Box::pin(async {
            let _ = s.roles.wait_until_ready().await;
        }),
        Box::pin(async {
            let _ = s.role_bindings.wait_until_ready().await;
        }),
        Box::pin(async {
            let _ = s.deployments.wait_until_ready().await;
        }),
        Box::pin(async {
            let _ = s.services.wait_until_ready().await;
        }),
    ])
    .await;
    let f = &ctx.frame;
    let rbac = children::rbac_name(&name);
    let api = children::api_name(&name);
    let config_map = f
        .apply(
            registry,
            &desired.config_map,
            s.config_maps.get(&at(ns, children::config_map_name(&name))),
        )
        .await?;
    if let Applied::Conflict(c) = config_map {
        return Ok(Err(c));
    }
    let service_account = f
        .apply(
            registry,
            &desired.service_account,
            s.service_accounts.get(&at(ns, rbac.clone())),
        )
        .await?;
    if let Applied::Conflict(c) = service_account {
        return Ok(Err(c));
    }
    let role = f
        .apply(registry, &desired.role, s.roles.get(&at(ns, rbac.clone())))
        .await?;
    if let Applied::Conflict(c) = role {
        return Ok(Err(c));
    }
    let binding = f
        .apply(
            registry,
            &desired.role_binding,
            s.role_bindings.get(&at(ns, rbac)),
        )
        .await?;
    if let Applied::Conflict(c) = binding {
        return Ok(Err(c));
    }
    let deployment = f
        .apply(
            registry,
            &desired.deployment,
            s.deployments.get(&at(ns, api.clone())),
        )
        .await?;
    if let Applied::Conflict(c) = deployment {
        return Ok(Err(c));
    }
    let service = f
        .apply(registry, &desired.service, s.services.get(&at(ns, api)))
        .await?;
    if let Applied::Conflict(c) = service {
        return Ok(Err(c));
    }
    Ok(Ok(()))
}

/// What this pass found.
enum Verdict {
    /// The admission core refuses the spec (its errors).
    Invalid(String),
    /// A child's name is held by an object that is not ours.
    Conflict(Conflict),
    /// Applied, but the referenced pgpass Secret does not exist (its name).
    SecretMissing(String),
    /// Applied.
    Applied,
}

/// The status the object should have, from what was found. Transition times of conditions that
/// did not change are kept, so an unchanged world yields an identical status.
fn status_for(
    registry: &MCPRegistry,
    deployment: Option<&Value>,
    verdict: Verdict,
) -> MCPRegistryStatus {
    let old = registry.status.clone().unwrap_or_default();
    let generation = registry.meta().generation;
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
    let ready_replicas = deployment
        .and_then(|d| d.pointer("/status/readyReplicas"))
        .and_then(Value::as_i64)
        .map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX));
    let template_given = registry.spec.pod_template_spec.is_some();
    let (phase, message) = match verdict {
        Verdict::Invalid(why) => {
            if template_given {
                let bad = why.contains("spec.podTemplateSpec");
                let (reason, text) = if bad {
                    ("InvalidPodTemplateSpec", why.clone())
                } else {
                    ("ValidPodTemplateSpec", "the pod template is valid".into())
                };
                cond("PodTemplateValid", !bad, reason, text);
            }
            cond(
                "Ready",
                false,
                "ValidationFailed",
                format!("the spec is not valid; nothing is applied: {why}"),
            );
            ("Failed", Some(format!("spec validation failed: {why}")))
        }
        Verdict::Conflict(c) => {
            valid_template(&mut cond, template_given);
            cond("Ready", false, Conflict::REASON, c.message());
            ("Failed", Some(c.message()))
        }
        Verdict::SecretMissing(name) => {
            valid_template(&mut cond, template_given);
            let ns = registry.namespace().unwrap_or_default();
            let why = format!(
                "spec.pgpassSecretRef: Secret {name:?} does not exist in namespace {ns}; the pods wait for it"
            );
            cond("Ready", false, "NotReady", why.clone());
            ("Pending", Some(why))
        }
        Verdict::Applied => {
            valid_template(&mut cond, template_given);
            if ready_replicas > 0 {
                let why = format!("{ready_replicas} registry API pod(s) ready");
                cond("Ready", true, "Ready", why);
                ("Ready", None)
            } else {
                let why = "waiting for a registry API pod to become ready".to_string();
                cond("Ready", false, "NotReady", why);
                ("Pending", None)
            }
        }
    };
    MCPRegistryStatus {
        conditions: Some(conditions),
        observed_generation: generation,
        phase: Some(phase.into()),
        message,
        // Where clients reach it, once a pod serves (also while Failed with the previous pods
        // still serving).
        url: (ready_replicas > 0).then(|| children::url(registry)),
        ready_replicas: Some(ready_replicas),
    }
}

fn valid_template(cond: &mut impl FnMut(&str, bool, &str, String), given: bool) {
    if given {
        cond(
            "PodTemplateValid",
            true,
            "ValidPodTemplateSpec",
            "the pod template is valid".into(),
        );
    }
}

/// Writes the status when it differs from what is stored (the frame records an Event when the
/// phase changes).
async fn write_status(
    registry: &MCPRegistry,
    ctx: &Context,
    status: MCPRegistryStatus,
) -> Result<(), Error> {
    ctx.frame.write_status(registry, to_json(&status)).await
}

/// Exponential backoff with jitter, per object; the error also goes out as a Warning Event.
pub fn error_policy(registry: Arc<MCPRegistry>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.frame.backoff(&registry, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry(status: Value) -> MCPRegistry {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPRegistry",
            "metadata": {"name": "r", "namespace": "ns", "generation": 3},
            "spec": {"configYAML": "a: 1\n", "podTemplateSpec": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn ready(s: &MCPRegistryStatus) -> (&str, &str) {
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    /// Ready replicas, verdict, phase, Ready (status, reason), url.
    type Row = (
        Option<i64>,
        Verdict,
        &'static str,
        (&'static str, &'static str),
        Option<&'static str>,
    );

    /// Each row: the Deployment's ready replicas (none: no Deployment), the verdict, and the
    /// phase, Ready condition and url the status must have.
    #[test]
    fn status_follows_what_was_found() {
        let conflict = Conflict {
            kind: "Role".into(),
            name: "r-registry-api".into(),
            holder: "it has no controller owner reference".into(),
        };
        let rows: Vec<Row> = vec![
            (
                None,
                Verdict::Applied,
                "Pending",
                ("False", "NotReady"),
                None,
            ),
            (
                Some(0),
                Verdict::Applied,
                "Pending",
                ("False", "NotReady"),
                None,
            ),
            (
                Some(2),
                Verdict::Applied,
                "Ready",
                ("True", "Ready"),
                Some("http://r-api.ns:8080"),
            ),
            (
                Some(1),
                Verdict::Invalid("spec.volumes[0].name: bad".into()),
                "Failed",
                ("False", "ValidationFailed"),
                Some("http://r-api.ns:8080"),
            ),
            (
                None,
                Verdict::Conflict(conflict),
                "Failed",
                ("False", "ChildConflict"),
                None,
            ),
            (
                Some(0),
                Verdict::SecretMissing("db".into()),
                "Pending",
                ("False", "NotReady"),
                None,
            ),
        ];
        for (i, (replicas, verdict, phase, want, url)) in rows.into_iter().enumerate() {
            let d = replicas.map(|n| json!({"status": {"readyReplicas": n}}));
            let s = status_for(&registry(json!({})), d.as_ref(), verdict);
            assert_eq!(s.phase.as_deref(), Some(phase), "row {i}");
            assert_eq!(ready(&s), want, "row {i}");
            assert_eq!(s.url.as_deref(), url, "row {i}");
            assert_eq!(s.observed_generation, Some(3), "row {i}");
        }
    }

    /// A template error names itself in PodTemplateValid; an unchanged world keeps the
    /// condition's transition time, so the status stays byte for byte the same.
    #[test]
    fn pod_template_validity_and_stable_times() {
        let bad = "spec.podTemplateSpec.spec.containers[0].volumeMounts[0].mountPath: reserved";
        let s = status_for(&registry(json!({})), None, Verdict::Invalid(bad.into()));
        let t = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodTemplateValid")
            .unwrap();
        assert_eq!(
            (t.status.as_str(), t.reason.as_str()),
            ("False", "InvalidPodTemplateSpec")
        );
        let again = status_for(
            &registry(serde_json::to_value(&s).unwrap()),
            None,
            Verdict::Invalid(bad.into()),
        );
        // Compared as stored (the API server keeps whole seconds).
        assert_eq!(to_json(&again), to_json(&s));
    }
}
