//! The HTTP listener of both bridge modes, bounded against clients that hold resources without
//! using them (slowloris):
//!
//! - a connection must send a request's headers within `headerReadTimeoutSeconds`, the first
//!   request (TLS-less protocol sniffing included) as well as each next one on a kept-alive
//!   connection;
//! - at most `maxConnections` are open; at the cap the oldest connection that has not sent a
//!   request yet is closed to make room, so a probe's `/health` is still answered while idle
//!   connections pile up; when every open connection has been used, the new one is closed;
//! - request bodies are read under one byte budget shared by all connections
//!   (`maxBodyBytesInFlight`, see [`BodyBudget`]).
//!
//! Each request carries its client's address ([`ClientAddr`]) for the per-client session cap.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::hub::lock;
use super::metrics::Metrics;

/// The address of the client a request came from (the TCP peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// How the listener bounds its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `app` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, metrics: Arc<Metrics>) {
    let limits = Limits {
        max_connections: fit_to_fd_limit(limits.max_connections),
        ..limits
    };
    let conns = Arc::new(Connections {
        next: AtomicU64::new(0),
        open: Mutex::new(BTreeMap::new()),
        max: limits.max_connections,
        metrics,
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait for connections to close instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((id, served, evicted)) = conns.admit() else {
            drop(stream);
            continue;
        };
        tokio::spawn(serve_connection(
            conns.clone(),
            builder.clone(),
            app.clone(),
            stream,
            peer,
            (id, served, evicted),
            limits.header_read_timeout,
        ));
    }
}

async fn serve_connection(
    conns: Arc<Connections>,
    builder: Arc<Builder<TokioExecutor>>,
    app: Router,
    stream: TcpStream,
    peer: SocketAddr,
    (id, served, evicted): (u64, Arc<AtomicBool>, oneshot::Receiver<()>),
    header_read_timeout: Duration,
) {
    let client = ClientAddr(peer.ip());
    let marker = served.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if !marker.load(Ordering::Relaxed) {
            marker.store(true, Ordering::Relaxed);
        }
        req.extensions_mut().insert(client);
        tower::ServiceExt::oneshot(app.clone(), req.map(Body::new))
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // hyper's header timer starts once it reads a request head; the protocol sniffing before
    // the first one is bounded here.
    let first_request = tokio::time::sleep(header_read_timeout);
    tokio::pin!(first_request);
    let mut evicted = evicted;
    let mut watching = true;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = &mut evicted => break,
            _ = &mut first_request, if watching => {
                if !served.load(Ordering::Relaxed) {
                    break;
                }
                watching = false;
            }
        }
    }
    conns.close(id);
}

struct Entry {
    served: Arc<AtomicBool>,
    evict: oneshot::Sender<()>,
}

/// The open connections, oldest first.
struct Connections {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Entry>>,
    max: usize,
    metrics: Arc<Metrics>,
}

type Admitted = (u64, Arc<AtomicBool>, oneshot::Receiver<()>);

impl Connections {
    /// Registers a new connection, making room at the cap by closing the oldest connection that
    /// has not sent a request; `None` when every open connection is in use.
    fn admit(&self) -> Option<Admitted> {
        let mut open = lock(&self.open);
        if open.len() >= self.max {
            let idle = open
                .iter()
                .find(|(_, e)| !e.served.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(victim) = idle.and_then(|id| open.remove(&id)) else {
                self.metrics.connections_shed("refused");
                tracing::warn!(
                    max = self.max,
                    "maxConnections reached and every connection is in use; refused one"
                );
                return None;
            };
            let _ = victim.evict.send(());
            self.metrics.connections_shed("evicted");
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let served = Arc::new(AtomicBool::new(false));
        let (evict, evicted) = oneshot::channel();
        open.insert(
            id,
            Entry {
                served: served.clone(),
                evict,
            },
        );
        self.metrics.connections.set(open.len() as i64);
        Some((id, served, evicted))
    }

    fn close(&self, id: u64) {
        let mut open = lock(&self.open);
        open.remove(&id);
        self.metrics.connections.set(open.len() as i64);
    }
}

/// File descriptors kept for everything but client connections (the server's pipes, the
/// backend's connections, logs).
const FD_RESERVE: u64 = 64;

/// Raises the soft limit on open files to the hard one, and lowers `max` to what fits under it.
fn fit_to_fd_limit(max: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return max;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let fits = lim.rlim_cur.saturating_sub(FD_RESERVE).max(1);
    if (max as u64) > fits {
        tracing::warn!(
            max_connections = max,
            fits,
            "maxConnections is over the open-file limit; lowered"
        );
        return fits as usize;
    }
    max
}

/// The bytes of request bodies being read at once, over every connection: a few slow clients
/// that send nearly complete large bodies cannot hold the memory of many. Lock-free: one atomic
/// add per body chunk, on the `mcp_bridge_body_bytes_in_flight` gauge itself.
#[derive(Debug)]
pub struct BodyBudget {
    in_flight: prometheus_client::metrics::gauge::Gauge,
    cap: i64,
    metrics: Arc<Metrics>,
}

impl BodyBudget {
    pub fn new(cap: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            in_flight: metrics.body_bytes_in_flight.clone(),
            cap: i64::try_from(cap).unwrap_or(i64::MAX),
            metrics,
        }
    }

    /// Counts a request refused for want of budget.
    pub fn refused(&self) {
        self.metrics.bodies_refused.inc();
        tracing::warn!(
            max_bytes = self.cap,
            "maxBodyBytesInFlight reached; a request was refused with 503"
        );
    }

    /// A lease for one body; what it holds is given back when it is dropped.
    pub fn lease(&self) -> BodyLease<'_> {
        BodyLease {
            budget: self,
            held: 0,
        }
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
}

/// The part of the [`BodyBudget`] one body holds.
pub struct BodyLease<'a> {
    budget: &'a BodyBudget,
    held: i64,
}

impl BodyLease<'_> {
    /// Takes `n` more bytes; false (taking nothing) when the budget has no room for them.
    pub fn grow(&mut self, n: usize) -> bool {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let before = self.budget.in_flight.inc_by(n);
        if before.saturating_add(n) > self.budget.cap {
            self.budget.in_flight.dec_by(n);
            return false;
        }
        self.held += n;
        true
    }
}

impl Drop for BodyLease<'_> {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.in_flight.dec_by(self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_budget_is_shared_and_given_back() {
        let budget = BodyBudget::new(100, Arc::new(Metrics::new()));
        let mut a = budget.lease();
        let mut b = budget.lease();
        assert!(a.grow(60));
        assert!(!b.grow(50), "over the shared cap");
        assert!(b.grow(40));
        assert_eq!(budget.in_flight(), 100);
        drop(a);
        assert_eq!(budget.in_flight(), 40);
        drop(b);
        assert_eq!(budget.in_flight(), 0);
    }

    #[test]
    fn at_the_cap_the_oldest_unused_connection_makes_room() {
        let conns = Connections {
            next: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
            max: 2,
            metrics: Arc::new(Metrics::new()),
        };
        let (_, used, _keep) = conns.admit().unwrap();
        used.store(true, Ordering::Relaxed);
        let (_, _, mut idle) = conns.admit().unwrap();
        let (_, newest, _keep2) = conns.admit().expect("room made");
        assert!(idle.try_recv().is_ok(), "the unused connection was evicted");
        newest.store(true, Ordering::Relaxed);
        assert!(conns.admit().is_none(), "every connection is in use");
    }
}
