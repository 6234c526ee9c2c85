//! Telemetry: MCPTelemetryConfig, and the `telemetryConfigRef` of MCPServer and MCPRemoteProxy.
//! Upstream's CEL rule (a header both plain and from a Secret) and its Go checks (an endpoint
//! needs a signal, Secret references need both parts, a CA bundle is not for `insecure` and its
//! ConfigMap name must fit a volume name) are here, with the field each one is about.

use super::auth::check_header_name;
use super::common::*;
use super::field::{FieldError, Path};
use crate::api::telemetry::{OpenTelemetrySettings, TelemetryConfigRef, CA_BUNDLE_VOLUME_PREFIX};

/// What a workload's `telemetryConfigRef` does today, for the admission warning.
pub const REF_NOT_EXPORTED: &str = "accepted and checked (condition TelemetryConfigRefValidated), but no telemetry is exported yet: the bridge has no OpenTelemetry or Prometheus exporter";

/// An MCPTelemetryConfig spec (both versions).
pub fn check_config(otel: Option<&OpenTelemetrySettings>, f: &mut Findings) {
    let Some(o) = otel else { return };
    let p = Path::root("spec.openTelemetry");
    check_endpoint_has_a_signal(o, &p, f);
    check_plain_headers(o, &p, f);
    check_sensitive_headers(o, &p, f);
    check_ca_bundle(o, &p, f);
}

/// An endpoint with neither traces nor metrics turned on has nothing to receive; upstream's
/// exporter refuses to start on it, so it is refused here, where it is written.
fn check_endpoint_has_a_signal(o: &OpenTelemetrySettings, p: &Path, f: &mut Findings) {
    let Some(endpoint) = o.endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return;
    };
    if !o.sends_a_signal() {
        f.error(FieldError::invalid(
            p.child("endpoint"),
            endpoint,
            "nothing would be sent to it: set tracing.enabled or metrics.enabled, or remove the endpoint",
        ));
    }
}

fn check_plain_headers(o: &OpenTelemetrySettings, p: &Path, f: &mut Findings) {
    for name in o.headers.iter().flatten().map(|(k, _)| k) {
        check_header_name(f, &p.child("headers").key(name), name);
    }
}

/// Each sensitive header: a valid name, a Secret name and key, and not also a plain header
/// (both would be sent, one of them in the clear in the spec).
fn check_sensitive_headers(o: &OpenTelemetrySettings, p: &Path, f: &mut Findings) {
    let plain = o.headers.as_ref();
    for (i, h) in o.sensitive_headers.iter().flatten().enumerate() {
        let hp = p.child("sensitiveHeaders").index(i);
        // An empty name is the schema's (minLength) to refuse.
        if !h.name.is_empty() {
            check_header_name(f, &hp.child("name"), &h.name);
        }
        let secret = hp.child("secretKeyRef");
        if h.secret_key_ref.name.is_empty() {
            f.error(FieldError::required(
                secret.child("name"),
                "the Secret holding the header's value",
            ));
        } else {
            check_object_name(f, &secret.child("name"), &h.secret_key_ref.name);
        }
        if h.secret_key_ref.key.is_empty() {
            f.error(FieldError::required(
                secret.child("key"),
                "the key of the Secret holding the header's value",
            ));
        }
        if plain.is_some_and(|p| p.contains_key(&h.name)) {
            f.error(FieldError::invalid(
                hp.child("name"),
                h.name.as_str(),
                format!(
                    "also set in {}: a header comes either from a Secret or in the clear, not both",
                    p.child("headers")
                ),
            ));
        } else if let Some(other) = plain
            .into_iter()
            .flat_map(|p| p.keys())
            .find(|k| k.eq_ignore_ascii_case(&h.name))
        {
            f.warn(
                &hp.child("name"),
                format!("{other:?} in {} is the same header (names are case-insensitive): both would be sent", p.child("headers")),
            );
        }
    }
}

fn check_ca_bundle(o: &OpenTelemetrySettings, p: &Path, f: &mut Findings) {
    let Some(cm) = &o.ca_bundle_ref else { return };
    let at = p.child("caBundleRef");
    if o.insecure.unwrap_or(false) {
        f.error(FieldError::forbidden(
            &at,
            "must not be set when insecure is true: the CA bundle verifies the collector's TLS certificate, and insecure turns TLS off",
        ));
    }
    check_ca_bundle_ref(f, &at, cm, CA_BUNDLE_VOLUME_PREFIX);
}

/// A workload's `telemetryConfigRef` (both versions, both kinds).
pub fn check_workload_ref(reference: Option<&TelemetryConfigRef>, f: &mut Findings) {
    let Some(r) = reference else { return };
    let p = Path::root("spec.telemetryConfigRef");
    check_object_name(f, &p.child("name"), &r.name);
    f.warn(&p, REF_NOT_EXPORTED);
}

/// ToolHive v0.15 – v0.20 served the inline `telemetry` beside `telemetryConfigRef` at
/// v1alpha1 and refused the two together. The error names the inline block, the one to remove
/// (at v1beta1 it lives in the conversion stash, and the error then names that annotation).
pub fn inline_xor_ref(inline: bool, reference: bool, f: &mut Findings) {
    if inline && reference {
        f.error(FieldError::forbidden(
            "spec.telemetry",
            "telemetry and telemetryConfigRef are mutually exclusive: move these settings into the MCPTelemetryConfig that telemetryConfigRef names, and remove telemetry",
        ));
    }
}
