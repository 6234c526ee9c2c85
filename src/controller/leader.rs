//! Leader election on a `coordination.k8s.io/v1` Lease: controllers run only on the holder;
//! webhooks run everywhere.
//!
//! Timing (the same reasoning as client-go's defaults, scaled down): the holder renews every
//! `renew_every`; others take over once `lease_duration` has passed without a renewal. A holder
//! that cannot renew for `lease_duration` stops its controllers before anyone else may start
//! theirs, so two replicas never reconcile at once (clock skew aside).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::json;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How one replica takes part in the election.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// Unique per replica (the pod name, plus a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

impl LeaseSettings {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseSettings {
            namespace: namespace.into(),
            name: "mcp-operator-leader".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// Runs `work` while this replica holds the lease, stops it the moment the lease is lost, and
/// starts it again when the lease comes back. Returns when `shutdown` resolves; the lease is
/// then released so another replica takes over at once.
pub async fn run_while_leader<W, Fut>(
    client: Client,
    settings: LeaseSettings,
    on_change: impl Fn(bool) + Send,
    work: W,
    shutdown: impl Future<Output = ()>,
) where
    W: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut running: Option<JoinHandle<()>> = None;
    let mut last_renewed: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let held = match try_acquire_or_renew(&api, &settings).await {
            Ok(h) => {
                if h {
                    last_renewed = Some(tokio::time::Instant::now());
                }
                h
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %settings.name, "cannot reach the lease");
                // Keep leading only while the last renewal is still within the lease.
                last_renewed.is_some_and(|t| t.elapsed() < settings.lease_duration.mul_f32(0.8))
            }
        };
        match (held, running.is_some()) {
            (true, false) => {
                tracing::info!(identity = %settings.identity, "became the leader: starting controllers");
                on_change(true);
                running = Some(tokio::spawn(work()));
            }
            (false, true) => {
                tracing::warn!(identity = %settings.identity, "lost the lease: stopping controllers");
                if let Some(task) = running.take() {
                    task.abort();
                }
                last_renewed = None;
                on_change(false);
            }
            _ => {}
        }
        let pause = if held {
            settings.renew_every
        } else {
            settings.renew_every.min(Duration::from_secs(2))
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut shutdown => break,
        }
    }
    if let Some(task) = running.take() {
        task.abort();
        on_change(false);
        release(&api, &settings).await;
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// True when this replica holds the lease after the call.
async fn try_acquire_or_renew(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
    let duration_secs = s.lease_duration.as_secs().max(1) as i32;
    let Some(mut lease) = api.get_opt(&s.name).await? else {
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": duration_secs,
                "acquireTime": now(),
                "renewTime": now(),
                "leaseTransitions": 0,
            }
        }))
        .expect("a Lease we built");
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let mine = spec.holder_identity.as_deref() == Some(s.identity.as_str());
    if !mine && !expired(spec) {
        return Ok(false);
    }
    if !mine {
        spec.holder_identity = Some(s.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(duration_secs);
    // Optimistic concurrency: the resourceVersion we read makes a racing replica's write fail.
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

fn expired(spec: &k8s_openapi::api::coordination::v1::LeaseSpec) -> bool {
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref() else {
        return true;
    };
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15) as i64);
    match renewed.0.checked_add(duration) {
        Ok(until) => until < Timestamp::now(),
        Err(_) => true,
    }
}

/// Gives the lease up on a clean shutdown, so the next replica need not wait it out.
async fn release(api: &Api<Lease>, s: &LeaseSettings) {
    let Ok(Some(mut lease)) = api.get_opt(&s.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    if let Err(e) = api.replace(&s.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %e, "could not release the lease");
    } else {
        tracing::info!(identity = %s.identity, "released the lease");
    }
}
