//! Prometheus metrics of the bridge, served on `/metrics`.
//!
//! The method label is bounded to the MCP methods the bridge knows; anything else counts as
//! `other`, so a client cannot blow up the series count.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub outcome: &'static str,
}

/// The bridge's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram>,
    pub sessions: Gauge,
    pub server_up: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_bridge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 100 µs … ~13 s: the bridge itself adds tens of µs, servers take ms to seconds.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 18,
            ))
        });
        let sessions = Gauge::default();
        let server_up = Gauge::default();
        registry.register(
            "requests",
            "Client requests by MCP method and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a client request to its answer",
            latency.clone(),
        );
        registry.register("sessions", "Open client sessions", sessions.clone());
        registry.register(
            "server_up",
            "1 while the MCP server is initialized and running",
            server_up.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            sessions,
            server_up,
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &str, outcome: &'static str, seconds: f64) {
        let labels = RequestLabels {
            method: method_label(method),
            outcome,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}
