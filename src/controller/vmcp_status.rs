//! The VirtualMCPServer's health as its runtime reports it: a bounded `GET /status` against the
//! endpoint's Service, and the pure merge of that report into `status.discoveredBackends`.
//!
//! The request is the operator's own, to an address the operator builds from its own setting
//! and the object's name (a DNS label) and namespace: no part of it comes from a user's URL.

use crate::api::v1beta1::DiscoveredBackend;
use crate::vmcp::config::{Backend, StatusReport, STATUS_PATH};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use std::time::Duration;

/// Where the reconciler reads a VirtualMCPServer's `/status`: `{name}` and `{namespace}` stand
/// for the object's. The Service's DNS name in the cluster; `run --vmcp-status-address`
/// overrides it (tests, an operator run outside the cluster through a port-forward).
pub const DEFAULT_STATUS_ADDRESS: &str = "vmcp-{name}.{namespace}.svc.cluster.local:4483";
/// The whole request (connect, headers, body) must finish within this.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// A report larger than this is refused (a thousand backends fit in a fraction of it).
pub const STATUS_LIMIT: usize = 1024 * 1024;

/// The `host:port` of one object's endpoint from the address `pattern`.
pub fn status_address(pattern: &str, name: &str, namespace: &str) -> String {
    pattern
        .replace("{name}", name)
        .replace("{namespace}", namespace)
}

pub type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

/// A plain-HTTP client for the reports (the endpoint serves plain HTTP inside the cluster).
pub fn client() -> Client {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// Reads the report at `address` (`host:port`), bounded in time and size; the error says what
/// failed, without the body.
pub async fn read_status(client: &Client, address: &str) -> Result<StatusReport, String> {
    let uri: hyper::Uri = format!("http://{address}{STATUS_PATH}")
        .parse()
        .map_err(|e| format!("the status address {address:?} is not usable: {e}"))?;
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let read = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("GET {STATUS_PATH}: {}", error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {STATUS_PATH} answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), STATUS_LIMIT)
            .collect()
            .await
            .map_err(|e| format!("GET {STATUS_PATH}: the report could not be read ({e})"))?
            .to_bytes();
        serde_json::from_slice::<StatusReport>(&body)
            .map_err(|e| format!("GET {STATUS_PATH}: the report is not one: {e}"))
    };
    tokio::time::timeout(STATUS_TIMEOUT, read)
        .await
        .map_err(|_| format!("GET {STATUS_PATH}: no answer within {STATUS_TIMEOUT:?}"))?
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Statuses a backend can be routed to (upstream's `backendCount`).
pub fn routable(status: Option<&str>) -> bool {
    matches!(status, Some("ready" | "unauthenticated"))
}

/// `status.discoveredBackends`: every backend of the rendered config, in its order, with what
/// the report says of it (`unknown` when it says nothing). `old` is the current list: a
/// backend's `lastHealthCheck` and `consecutiveFailures` move on every check, so they are
/// copied only when something else about the backend changed; a steady endpoint causes no
/// status write at every poll.
pub fn discovered(
    backends: &[Backend],
    report: Option<&StatusReport>,
    old: &[DiscoveredBackend],
) -> Vec<DiscoveredBackend> {
    backends
        .iter()
        .map(|b| {
            let seen = report.and_then(|r| r.backends.iter().find(|x| x.name == b.name));
            let fresh = DiscoveredBackend {
                name: b.name.clone(),
                url: Some(b.url.clone()),
                status: Some(seen.map_or("unknown", |s| s.status.as_str()).to_string()),
                auth_type: Some(auth_type(b).into()),
                auth_config_ref: None,
                last_health_check: seen.and_then(|s| s.last_health_check.clone()),
                consecutive_failures: seen
                    .and_then(|s| s.consecutive_failures)
                    .and_then(|n| i32::try_from(n).ok()),
                circuit_breaker_state: seen.and_then(|s| s.circuit_breaker_state.clone()),
                circuit_last_changed: seen.and_then(|s| s.circuit_last_changed.clone()),
                mcp_revision: seen.and_then(|s| s.mcp_revision.clone()),
                message: seen.and_then(|s| s.message.clone()).map(|m| bounded(&m)),
            };
            match old.iter().find(|o| o.name == b.name) {
                Some(o) if same_but_volatile(o, &fresh) => o.clone(),
                _ => fresh,
            }
        })
        .collect()
}

/// Whether two entries differ at most in the fields every check moves.
fn same_but_volatile(a: &DiscoveredBackend, b: &DiscoveredBackend) -> bool {
    let strip = |d: &DiscoveredBackend| DiscoveredBackend {
        last_health_check: None,
        consecutive_failures: None,
        ..d.clone()
    };
    strip(a) == strip(b)
}

/// What the runtime sends the backend: upstream's strategy names.
fn auth_type(b: &Backend) -> &'static str {
    if b.bearer_token_env.is_some() || b.headers_from_env.is_some() || b.headers.is_some() {
        "header_injection"
    } else {
        "unauthenticated"
    }
}

/// A runtime's message, bounded for the status.
fn bounded(m: &str) -> String {
    super::frame::truncate(m, 512)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmcp::config::{BackendReport, VMCP_PORT};

    fn backend(name: &str) -> Backend {
        Backend {
            name: name.into(),
            url: format!("http://{name}.example/mcp"),
            ..Backend::default()
        }
    }

    fn report(name: &str, status: &str, check: &str, failures: u32) -> BackendReport {
        BackendReport {
            name: name.into(),
            status: status.into(),
            last_health_check: Some(check.into()),
            consecutive_failures: Some(failures),
            circuit_breaker_state: Some("closed".into()),
            ..BackendReport::default()
        }
    }

    #[test]
    fn the_address_pattern_takes_the_name_and_namespace() {
        assert_eq!(
            status_address(DEFAULT_STATUS_ADDRESS, "agg", "team"),
            format!("vmcp-agg.team.svc.cluster.local:{VMCP_PORT}")
        );
        assert_eq!(status_address("127.0.0.1:9", "agg", "team"), "127.0.0.1:9");
    }

    #[test]
    fn backends_the_report_omits_are_unknown_and_checks_alone_change_nothing() {
        let backends = [backend("a"), backend("b")];
        let first = StatusReport {
            config_hash: None,
            backends: vec![report("a", "ready", "2026-01-01T00:00:00Z", 0)],
        };
        let list = discovered(&backends, Some(&first), &[]);
        assert_eq!(list[0].status.as_deref(), Some("ready"));
        assert_eq!(list[1].status.as_deref(), Some("unknown"));
        // A later check, nothing else new: the list stays as it was (no status write).
        let later = StatusReport {
            config_hash: None,
            backends: vec![report("a", "ready", "2026-01-01T00:00:30Z", 0)],
        };
        assert_eq!(discovered(&backends, Some(&later), &list), list);
        // The backend goes down: everything of it is new.
        let down = StatusReport {
            config_hash: None,
            backends: vec![report("a", "unavailable", "2026-01-01T00:01:00Z", 3)],
        };
        let now = discovered(&backends, Some(&down), &list);
        assert_eq!(now[0].status.as_deref(), Some("unavailable"));
        assert_eq!(now[0].consecutive_failures, Some(3));
        assert!(routable(Some("unauthenticated")) && !routable(Some("degraded")));
    }
}
