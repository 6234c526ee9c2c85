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
    "tasks/list",
    "tasks/get",
    "tasks/result",
    "tasks/cancel",
];

/// Why a connection, session or message was given up; bounded to the constants the bridge uses.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

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
    /// `maxSessions`, so that an alert can compare `sessions` with it.
    pub sessions_limit: Gauge,
    sessions_refused: Family<ReasonLabels, Counter>,
    sessions_ended: Family<ReasonLabels, Counter>,
    pub connections: Gauge,
    connections_shed: Family<ReasonLabels, Counter>,
    pub bodies_refused: Counter,
    /// Bytes of request bodies being read (the `maxBodyBytesInFlight` budget in use).
    pub body_bytes_in_flight: Gauge,
    pub stream_messages_dropped: Counter,
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
        let sessions_limit = Gauge::default();
        registry.register(
            "sessions_limit",
            "The most sessions the bridge holds (maxSessions)",
            sessions_limit.clone(),
        );
        let sessions_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sessions_refused",
            "Sessions refused: max_sessions (the bridge is full) or per_client (one client \
             address holds maxSessionsPerClient)",
            sessions_refused.clone(),
        );
        let sessions_ended = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "sessions_expired",
            "Sessions ended by the bridge: handshake (no request within \
             sessionHandshakeSeconds) or idle (sessionTtlSeconds)",
            sessions_ended.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        let connections_shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "connections_shed",
            "Connections closed at maxConnections: evicted (had sent no request) or refused",
            connections_shed.clone(),
        );
        let bodies_refused = Counter::default();
        registry.register(
            "bodies_refused",
            "Requests refused with 503 because maxBodyBytesInFlight was reached",
            bodies_refused.clone(),
        );
        let body_bytes_in_flight = Gauge::default();
        registry.register(
            "body_bytes_in_flight",
            "Bytes of request bodies being read now (bounded by maxBodyBytesInFlight)",
            body_bytes_in_flight.clone(),
        );
        let stream_messages_dropped = Counter::default();
        registry.register(
            "stream_messages_dropped",
            "Messages dropped because an SSE stream's queue was full (maxStreamQueueBytes)",
            stream_messages_dropped.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            sessions,
            server_up,
            sessions_limit,
            sessions_refused,
            sessions_ended,
            connections,
            connections_shed,
            bodies_refused,
            body_bytes_in_flight,
            stream_messages_dropped,
        }
    }

    pub fn session_refused(&self, reason: &'static str) {
        self.sessions_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn sessions_expired(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.sessions_ended
                .get_or_create(&ReasonLabels { reason })
                .inc_by(n);
        }
    }

    pub fn connections_shed(&self, reason: &'static str) {
        self.connections_shed
            .get_or_create(&ReasonLabels { reason })
            .inc();
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
