//! Controller metrics: reconciles by kind and result, their duration, applies, leadership.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct ControllerMetrics {
    reconciles: Family<ReconcileLabels, Counter>,
    duration: Family<KindLabel, Histogram>,
    applies: Family<KindLabel, Counter>,
    managed: Family<KindLabel, Gauge>,
    pub leader: Gauge,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        ControllerMetrics {
            reconciles: Family::default(),
            // 1 ms .. ~16 s
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            applies: Family::default(),
            managed: Family::default(),
            leader: Gauge::default(),
        }
    }
}

impl ControllerMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mcp_operator_reconciles",
            "Reconciles by kind and result (error variant)",
            self.reconciles.clone(),
        );
        registry.register(
            "mcp_operator_reconcile_duration_seconds",
            "Time spent in one reconcile",
            self.duration.clone(),
        );
        registry.register(
            "mcp_operator_child_applies",
            "Server-side applies of child objects, by child kind",
            self.applies.clone(),
        );
        registry.register(
            "mcp_operator_leader",
            "1 while this replica holds the controller lease",
            self.leader.clone(),
        );
    }

    pub fn observe_reconcile(&self, kind: &str, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .inc();
        self.duration
            .get_or_create(&KindLabel { kind: kind.into() })
            .observe(took.as_secs_f64());
    }

    /// Reconciles of `kind` that succeeded so far (for tests and benchmarks).
    pub fn successful_reconciles(&self, kind: &str) -> u64 {
        self.reconciles(kind, "success")
    }

    /// Reconciles of `kind` that ended with `result` (`success` or an error variant).
    pub fn reconciles(&self, kind: &str, result: &str) -> u64 {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.into(),
                result: result.into(),
            })
            .get()
    }

    pub fn set_managed(&self, kind: &str, count: usize) {
        self.managed
            .get_or_create(&KindLabel { kind: kind.into() })
            .set(count as i64);
    }

    pub fn count_apply(&self, kind: &str) {
        self.applies
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }
}
