//! Telemetry types, the same at both served versions (upstream's v1alpha1 and v1beta1 schemas of
//! them are identical): the parts of MCPTelemetryConfig's spec, and the `telemetryConfigRef` of
//! MCPServer and MCPRemoteProxy.
//!
//! The rules upstream checks in CEL or in Go (a header both plain and from a Secret, an endpoint
//! with no signal to send, a CA bundle with `insecure`) are checked by the admission core, which
//! names the field that is wrong.

use super::auth::CaBundleSource;
use super::schema::string_map;
use super::shared::SecretKeyRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;
use std::collections::BTreeMap;

/// The CA bundle ConfigMap is mounted as a volume named with this prefix.
pub const CA_BUNDLE_VOLUME_PREFIX: &str = "otel-ca-bundle-";
/// The longest ConfigMap name whose volume name still fits a 63-character DNS label.
pub const MAX_CA_BUNDLE_CONFIG_MAP_NAME: usize = 63 - CA_BUNDLE_VOLUME_PREFIX.len();

/// `telemetryConfigRef`: a shared MCPTelemetryConfig, plus the one value that must differ per
/// workload.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryConfigRef {
    /// The MCPTelemetryConfig, same namespace.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The service name this workload's traces and metrics carry; the workload's own name when
    /// unset. Distinct per workload, so workloads sharing a collector can be told apart.
    pub service_name: Option<String>,
}

/// OTLP export settings shared by the workloads that reference the config.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenTelemetrySettings {
    /// Turns OpenTelemetry on.
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    /// The OTLP collector traces and metrics are sent to.
    pub endpoint: Option<String>,
    /// Plain HTTP towards the collector instead of HTTPS.
    #[schemars(extend("default" = false))]
    pub insecure: Option<bool>,
    /// Headers sent with every export, values in the clear; credentials belong in
    /// `sensitiveHeaders`.
    #[serde(default)]
    #[schemars(schema_with = "string_map")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Headers whose values are read from Secrets.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub sensitive_headers: Option<Vec<SensitiveHeader>>,
    /// Resource attributes added to every signal (`service.name` is per workload, see
    /// `telemetryConfigRef.serviceName`).
    #[serde(default)]
    #[schemars(schema_with = "string_map")]
    pub resource_attributes: Option<BTreeMap<String, String>>,
    /// OTLP metrics.
    pub metrics: Option<SignalSettings>,
    /// OTLP traces.
    pub tracing: Option<TracingSettings>,
    /// Also emit the attribute names used before the MCP semantic conventions.
    #[schemars(extend("default" = true))]
    pub use_legacy_attributes: Option<bool>,
    /// A ConfigMap with the CA certificates the collector's TLS certificate is checked against.
    pub ca_bundle_ref: Option<CaBundleSource>,
}

/// One export header whose value is a Secret key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SensitiveHeader {
    /// The header name, e.g. `Authorization`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The Secret key holding its value.
    pub secret_key_ref: SecretKeyRef,
}

/// One signal, on or off.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SignalSettings {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
}

/// OTLP traces and how many of them are kept.
#[skip_serializing_none]
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSettings {
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    /// The share of traces kept, from 0 to 1, written as a string.
    #[schemars(
        regex(pattern = r"^(0(\.\d+)?|1(\.0+)?)$"),
        extend("default" = "0.05")
    )]
    pub sampling_rate: Option<String>,
}

impl OpenTelemetrySettings {
    /// Whether any OTLP signal would be sent.
    pub fn sends_a_signal(&self) -> bool {
        let on = |s: Option<bool>| s.unwrap_or(false);
        on(self.tracing.as_ref().and_then(|t| t.enabled))
            || on(self.metrics.as_ref().and_then(|m| m.enabled))
    }
}
