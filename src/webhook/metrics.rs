//! Prometheus metrics of the webhook server (prometheus-client), served on the plain-HTTP port.
//!
//! Every label value comes from a bounded set (our route table, the four operations, fixed
//! reasons), never from the request body, so a hostile client cannot blow up cardinality.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicI64;

/// Labels of one answered admission review.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    /// `validate` or `mutate`.
    pub webhook: &'static str,
    /// The route's kind (`MCPServer`), not the request's: bounded by [`crate::api::SERVED`].
    pub kind: &'static str,
    /// The route's version.
    pub version: &'static str,
    pub operation: OperationLabel,
    /// `true` / `false`.
    pub allowed: &'static str,
}

/// `request.operation`, as a bounded label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum OperationLabel {
    CREATE,
    UPDATE,
    DELETE,
    CONNECT,
}

impl OperationLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationLabel::CREATE => "CREATE",
            OperationLabel::UPDATE => "UPDATE",
            OperationLabel::DELETE => "DELETE",
            OperationLabel::CONNECT => "CONNECT",
        }
    }
}

/// `"true"` / `"false"` as a label value.
pub fn bool_label(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Labels of a request refused before it became a review (HTTP 4xx/5xx).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

/// Labels of a review for an object the route does not admit (another group or kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: &'static str,
}

/// Labels of a certificate reload attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `success` or `error`.
    pub result: &'static str,
}

/// All metrics of the webhook server, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// Metrics of the rest of the process (the controllers, in `run`), served on the same port.
    extra: Option<Registry>,
    pub reviews: Family<ReviewLabels, Counter>,
    pub review_duration: Family<WebhookLabels, Histogram>,
    pub rejected: Family<RejectLabels, Counter>,
    pub unexpected_kinds: Family<WebhookLabels, Counter>,
    pub lookups_skipped: Counter,
    pub cert_reloads: Family<ReloadLabels, Counter>,
    /// Unix time at which the served certificate expires.
    pub cert_not_after: Gauge<i64, AtomicI64>,
    /// Seconds until the served certificate expires (negative once expired), refreshed by the
    /// certificate watcher at each poll.
    pub cert_expires_in: Gauge<i64, AtomicI64>,
}

fn duration_histogram() -> Histogram {
    // 50 µs .. ~1.6 s: the interesting range is well under the API server's 5 s timeout.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_operator_webhook");
        let reviews = Family::<ReviewLabels, Counter>::default();
        let review_duration = Family::<WebhookLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        let unexpected_kinds = Family::<WebhookLabels, Counter>::default();
        let lookups_skipped = Counter::default();
        let cert_reloads = Family::<ReloadLabels, Counter>::default();
        let cert_not_after = Gauge::<i64, AtomicI64>::default();
        let cert_expires_in = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "admission_requests",
            "Admission reviews answered, by webhook, route kind and version, operation and outcome",
            reviews.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time from the first byte of the body to the answer",
            review_duration.clone(),
        );
        registry.register(
            "rejected_requests",
            "Requests refused before they became a review (malformed, too large, wrong content type, timeout)",
            rejected.clone(),
        );
        registry.register(
            "unexpected_kind_requests",
            "Reviews of an object of another group or kind, allowed unchecked with a warning",
            unexpected_kinds.clone(),
        );
        registry.register(
            "cross_object_checks_skipped",
            "Reviews whose cross-object checks were skipped because no cluster client is configured",
            lookups_skipped.clone(),
        );
        registry.register(
            "cert_reloads",
            "Attempts to load a changed serving certificate, by result",
            cert_reloads.clone(),
        );
        registry.register(
            "cert_not_after_seconds",
            "Unix time at which the served certificate expires",
            cert_not_after.clone(),
        );
        registry.register(
            "cert_expires_in_seconds",
            "Seconds until the served certificate expires",
            cert_expires_in.clone(),
        );
        Metrics {
            registry,
            reviews,
            review_duration,
            rejected,
            unexpected_kinds,
            lookups_skipped,
            cert_reloads,
            cert_not_after,
            cert_expires_in,
            extra: None,
        }
    }

    /// These metrics plus whatever `register` adds to a registry of its own (unprefixed).
    pub fn with_extra(register: &(dyn Fn(&mut Registry) + Send + Sync)) -> Self {
        let mut metrics = Self::new();
        let mut extra = Registry::default();
        register(&mut extra);
        metrics.extra = Some(extra);
        metrics
    }

    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        if let Some(extra) = &self.extra {
            let _ = encode_registry(&mut out, extra);
        }
        let _ = encode_eof(&mut out);
        out
    }

    /// Counts a request refused at the HTTP edge.
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&RejectLabels { reason }).inc();
    }
}
