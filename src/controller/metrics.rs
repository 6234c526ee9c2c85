//! Controller metrics: reconciles by kind and result, their duration, applies, leadership.

use crate::api::v1beta1::MCPServer;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
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
    /// The MCPServer cache, once the controller runs: the per-phase gauges are counted from it
    /// at scrape time (a deleted object leaves no stale count behind).
    servers: Arc<OnceLock<Store<MCPServer>>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

/// Phases always exported, at 0 when no object is in them, so an alert on
/// `mcp_operator_mcpservers{phase="Failed"} > 0` has a series to look at.
const PHASES: &[&str] = &["Pending", "Ready", "Failed", "Stopped"];

/// `mcp_operator_mcpservers{phase}`: MCPServers by `status.phase` (`Unknown` before the first
/// status), counted from the cache on each scrape.
#[derive(Debug)]
struct PhaseCollector {
    servers: Arc<OnceLock<Store<MCPServer>>>,
}

impl PhaseCollector {
    /// Nothing on a replica whose controller does not run (not the leader): its zeros would
    /// hide the leader's count from a `max` over replicas.
    fn counts(&self) -> BTreeMap<String, i64> {
        let Some(servers) = self.servers.get() else {
            return BTreeMap::new();
        };
        let mut counts: BTreeMap<String, i64> = PHASES.iter().map(|p| (p.to_string(), 0)).collect();
        for s in servers.state() {
            let phase = s.status.as_ref().and_then(|st| st.phase.clone());
            *counts
                .entry(phase.unwrap_or_else(|| "Unknown".into()))
                .or_default() += 1;
        }
        counts
    }
}

impl Collector for PhaseCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "mcp_operator_mcpservers",
            "MCPServers by status.phase (a Failed one is worth an alert)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (phase, n) in self.counts() {
            let gauge = ConstGauge::new(n);
            gauge.encode(family.encode_family(&PhaseLabel { phase })?)?;
        }
        Ok(())
    }
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
            servers: Arc::default(),
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
        registry.register_collector(Box::new(PhaseCollector {
            servers: self.servers.clone(),
        }));
    }

    /// Gives the per-phase gauges the controller's MCPServer cache (the first one given wins).
    pub fn watch_servers(&self, servers: Store<MCPServer>) {
        let _ = self.servers.set(servers);
    }

    /// MCPServers by phase, as the gauges show them (for tests).
    pub fn servers_by_phase(&self) -> BTreeMap<String, i64> {
        PhaseCollector {
            servers: self.servers.clone(),
        }
        .counts()
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
