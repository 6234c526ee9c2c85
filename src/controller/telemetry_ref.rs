//! `telemetryConfigRef` on MCPServer and MCPRemoteProxy, as their status reports it.
//!
//! Telemetry is not a security control, so a missing or refused MCPTelemetryConfig never holds
//! a workload back: `TelemetryConfigRefValidated` says what was found, and
//! `status.telemetryConfigHash` carries the config's hash while the config is usable (the
//! config's own `status.configHash`, or the same hash of its spec before its controller wrote
//! one). Nothing is exported yet — the bridge has no OpenTelemetry or Prometheus exporter — and
//! the condition says that too, so a green condition is not read as "traces are flowing".

use super::frame;
use crate::api::telemetry::TelemetryConfigRef;
use crate::api::v1beta1::MCPTelemetryConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::{ObjectRef, Store};

/// The condition type, upstream's.
pub const CONDITION: &str = "TelemetryConfigRefValidated";

/// Appended to every message: what the reference does today.
const NOT_EXPORTED: &str =
    "no telemetry is exported yet (the bridge has no OpenTelemetry or Prometheus exporter)";

/// What a workload's status says about its telemetry reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub ok: bool,
    pub reason: &'static str,
    pub message: String,
    /// The config's hash, only while the config exists and is valid.
    pub hash: Option<String>,
}

/// Judges the reference against the config the cache holds under its name (`None`: none).
pub fn judge(
    reference: &TelemetryConfigRef,
    ns: &str,
    config: Option<&MCPTelemetryConfig>,
) -> Finding {
    let name = &reference.name;
    let Some(config) = config else {
        return Finding {
            ok: false,
            reason: "TelemetryConfigRefNotFound",
            message: format!(
                "MCPTelemetryConfig {name:?} does not exist in namespace {ns}; the workload runs without it; \
                 create it or remove spec.telemetryConfigRef ({NOT_EXPORTED})"
            ),
            hash: None,
        };
    };
    if let Some(errors) = frame::admission_refusal(config) {
        return Finding {
            ok: false,
            reason: "TelemetryConfigRefInvalid",
            message: frame::truncate(
                &format!(
                    "MCPTelemetryConfig {name:?} is not valid, so the workload runs without it: {errors}"
                ),
                1000,
            ),
            hash: None,
        };
    }
    Finding {
        ok: true,
        reason: "TelemetryConfigRefValid",
        message: format!("MCPTelemetryConfig {name:?} is valid; {NOT_EXPORTED}"),
        hash: Some(hash_of(config)),
    }
}

/// The config's published hash, or the same hash of its spec while none is published.
fn hash_of(config: &MCPTelemetryConfig) -> String {
    frame::published_hash(config.status.as_ref(), &config.spec)
}

/// Looks the reference up once the cache has listed (right after start-up "missing" is not
/// news yet), and judges it.
pub async fn look_up(
    reference: &TelemetryConfigRef,
    ns: &str,
    store: &Store<MCPTelemetryConfig>,
) -> Finding {
    let _ = tokio::time::timeout(frame::STORE_READY_WAIT, store.wait_until_ready()).await;
    let config = store.get(&ObjectRef::new(&reference.name).within(ns));
    judge(reference, ns, config.as_deref())
}

/// The condition for `finding`, keeping the transition time of an unchanged one.
pub fn condition(
    old: Option<&[Condition]>,
    generation: Option<i64>,
    finding: &Finding,
) -> Condition {
    frame::condition(
        old,
        generation,
        CONDITION,
        finding.ok,
        finding.reason,
        finding.message.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn config(spec: Value, status: Value) -> MCPTelemetryConfig {
        serde_json::from_value(json!({
            "apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPTelemetryConfig",
            "metadata": {"name": "otel", "namespace": "ns"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    /// Found, valid: the published hash; before one is published, the same hash of the spec.
    /// Missing or refused: no hash, and a reason that says which.
    #[test]
    fn judges_found_missing_and_refused_configs() {
        let reference = TelemetryConfigRef {
            name: "otel".into(),
            service_name: None,
        };
        let spec =
            json!({"openTelemetry": {"endpoint": "collector:4318", "tracing": {"enabled": true}}});
        let unpublished = config(spec.clone(), json!({}));
        let found = judge(&reference, "ns", Some(&unpublished));
        assert!(found.ok);
        assert_eq!(found.reason, "TelemetryConfigRefValid");
        assert_eq!(found.hash, Some(frame::config_hash(&unpublished.spec)));
        assert!(found.message.contains("no telemetry is exported yet"));

        let published = config(spec, json!({"configHash": "abc"}));
        assert_eq!(
            judge(&reference, "ns", Some(&published)).hash.as_deref(),
            Some("abc")
        );

        let missing = judge(&reference, "ns", None);
        assert_eq!(
            (missing.ok, missing.reason),
            (false, "TelemetryConfigRefNotFound")
        );
        assert_eq!(missing.hash, None);
        assert!(missing.message.contains("runs without it"));

        // An endpoint with no signal to send: refused by admission.
        let refused = config(
            json!({"openTelemetry": {"endpoint": "collector:4318"}}),
            json!({}),
        );
        let invalid = judge(&reference, "ns", Some(&refused));
        assert_eq!(
            (invalid.ok, invalid.reason),
            (false, "TelemetryConfigRefInvalid")
        );
        assert!(
            invalid.message.contains("spec.openTelemetry.endpoint"),
            "{}",
            invalid.message
        );
        assert_eq!(invalid.hash, None);
    }
}
