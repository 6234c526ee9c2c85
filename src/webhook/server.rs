//! The servers: admission over TLS, metrics and probes over plain HTTP, graceful shutdown.

use super::handlers::{admission_endpoint, floor_endpoint, json_error, AppState, Readiness};
use super::lookup::ObjectLookup;
use super::metrics::Metrics;
use super::routes::{routes, CONVERT_PATH, FLOOR_PATH, HEALTHZ_PATH, METRICS_PATH, READYZ_PATH};
use super::tls::{self, CertStore, CertWatcher};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// A TLS handshake must finish within this time, or the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this time (slow-loris guard).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections beyond this many are closed at once; the API server keeps only a few open.
pub const MAX_CONNECTIONS: usize = 4096;
/// Concurrent HTTP/2 streams per connection.
pub const MAX_H2_STREAMS: u32 = 256;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no usable serving certificate in {dir}: {source}")]
    Certificate {
        dir: String,
        #[source]
        source: tls::CertError,
    },
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the {0} server task failed: {1}")]
    Task(&'static str, String),
}

/// A handler for the CRD conversion route (`/convert`), filled in by the conversion issue,
/// e.g. `axum::routing::post(my_handler)`. [`super::handlers::read_json_body`] gives it the
/// same content-type and size checks as the admission routes.
pub type ConversionHandler = MethodRouter;

/// Adds metrics to a registry served on the same `/metrics`.
pub type RegisterMetrics = Arc<dyn Fn(&mut prometheus_client::registry::Registry) + Send + Sync>;

/// How to run the webhook server.
pub struct ServerOptions {
    /// Where the admission (TLS) server listens, e.g. `0.0.0.0:9443`.
    pub listen: SocketAddr,
    /// Where the plain-HTTP metrics and probe server listens; `None` for none.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory holding `tls.crt` and `tls.key`.
    pub cert_dir: PathBuf,
    /// How often the certificate directory is re-read.
    pub reload_interval: Duration,
    /// After a shutdown is asked for, how long to keep accepting while reporting not ready, so
    /// that the Service's endpoints drop this pod before its listener closes.
    pub shutdown_delay: Duration,
    /// How long in-flight requests may take to finish after the listener closes.
    pub drain_timeout: Duration,
    /// The longest one admission request may take, body included.
    pub request_timeout: Duration,
    /// Cross-object lookups; `None` skips them with a warning.
    pub lookup: Option<Arc<dyn ObjectLookup>>,
    /// The conversion route; `None` leaves `/convert` unrouted (404).
    pub conversion: Option<ConversionHandler>,
    /// Mount the benchmark floor route ([`super::routes::FLOOR_PATH`]).
    pub benchmark_floor: bool,
    /// Registers the rest of the process's metrics (the controllers, in `run`) on the same
    /// `/metrics`.
    pub extra_metrics: Option<RegisterMetrics>,
}

impl ServerOptions {
    /// Options with the defaults of `mcp-operator webhook`.
    pub fn new(cert_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        ServerOptions {
            listen,
            metrics_listen: None,
            cert_dir: cert_dir.into(),
            reload_interval: tls::RELOAD_INTERVAL,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(20),
            request_timeout: super::handlers::REQUEST_TIMEOUT,
            lookup: None,
            conversion: None,
            benchmark_floor: false,
            extra_metrics: None,
        }
    }
}

/// The router of the TLS port: every admission route of [`routes`], `/convert` when given,
/// and the probes. Exposed so tests build exactly what production serves.
pub fn admission_router(state: AppState, conversion: Option<ConversionHandler>) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let state = state.clone();
        router = router.route(
            &route.path(),
            post(move |request: Request| admission_endpoint(state, route, request)),
        );
    }
    if let Some(conversion) = conversion {
        router = router.route(CONVERT_PATH, conversion);
    }
    router
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz).with_state(state.readiness.clone()))
        .fallback(not_found)
}

/// The router of the plain-HTTP port: metrics and probes.
pub fn metrics_router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(serve_metrics).with_state(metrics))
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz).with_state(readiness))
        .fallback(not_found)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> Response {
    if readiness.is_ready() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such path")
}

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub certs: Arc<CertStore>,
    shutdown: watch::Sender<bool>,
    shutdown_delay: Duration,
    tasks: JoinSet<Result<(), ServeError>>,
}

impl RunningServer {
    /// The bound TLS address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops gracefully: not ready at once, keeps serving for the shutdown delay, then stops
    /// accepting and lets in-flight requests finish (up to the drain timeout).
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.readiness.draining.store(true, Ordering::Release);
        tokio::time::sleep(self.shutdown_delay).await;
        let _ = self.shutdown.send(true);
        self.join().await
    }

    /// Waits until a server task ends on its own (it only does on error).
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        match self.tasks.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(e)) => Err(ServeError::Task("webhook", e.to_string())),
            None => Ok(()),
        }
    }

    async fn join(mut self) -> Result<(), ServeError> {
        let mut first_error = Ok(());
        while let Some(done) = self.tasks.join_next().await {
            let result = done.unwrap_or_else(|e| Err(ServeError::Task("webhook", e.to_string())));
            if first_error.is_ok() {
                first_error = result;
            }
        }
        first_error
    }
}

/// Loads the certificate, binds both listeners and starts serving.
pub async fn start(options: ServerOptions) -> Result<RunningServer, ServeError> {
    let ServerOptions {
        listen,
        metrics_listen,
        cert_dir,
        reload_interval,
        shutdown_delay,
        drain_timeout,
        request_timeout,
        lookup,
        conversion,
        benchmark_floor,
        extra_metrics,
    } = options;
    let metrics = Arc::new(match extra_metrics.as_deref() {
        Some(register) => Metrics::with_extra(register),
        None => Metrics::new(),
    });
    let readiness = Arc::new(Readiness::default());
    let cert_error = |source| ServeError::Certificate {
        dir: cert_dir.display().to_string(),
        source,
    };
    let (cert_pem, key_pem) = tls::read_cert_dir(&cert_dir).await.map_err(cert_error)?;
    let first = tls::parse_pem_pair(&cert_pem, &key_pem).map_err(cert_error)?;
    tracing::info!(subject = %first.subject, fingerprint = %first.fingerprint, not_after = first.not_after, "loaded the serving certificate");
    tls::record_expiry(&metrics, &first);
    let certs = Arc::new(CertStore::new(first));
    let acceptor = TlsAcceptor::from(tls::server_config(certs.clone())?);
    readiness.cert_loaded.store(true, Ordering::Release);

    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;
    let metrics_listener = match metrics_listen {
        Some(m) => Some(
            TcpListener::bind(m)
                .await
                .map_err(|source| ServeError::Bind { addr: m, source })?,
        ),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr().map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?),
        None => None,
    };

    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(super::handlers::warm_up)
        .await
        .map_err(|e| ServeError::Task("warm-up", e.to_string()))?;
    tracing::debug!(
        took_ms = started.elapsed().as_millis() as u64,
        "admission warmed up"
    );

    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let watcher = CertWatcher::new(
        cert_dir,
        certs.clone(),
        metrics.clone(),
        (&cert_pem, &key_pem),
    );
    tasks.spawn(watcher_task(watcher, reload_interval, shutdown_rx.clone()));
    if let Some(metrics_listener) = metrics_listener {
        let router = metrics_router(metrics.clone(), readiness.clone());
        tasks.spawn(metrics_task(metrics_listener, router, shutdown_rx.clone()));
    }
    let state = AppState {
        metrics: metrics.clone(),
        lookup,
        readiness: readiness.clone(),
        request_timeout,
    };
    let mut router = admission_router(state.clone(), conversion);
    if benchmark_floor {
        router = router.route(
            FLOOR_PATH,
            post(move |request: Request| floor_endpoint(state, request)),
        );
    }
    tasks.spawn(accept_loop(
        listener,
        acceptor,
        router,
        shutdown_rx,
        drain_timeout,
    ));
    readiness.listening.store(true, Ordering::Release);
    match metrics_addr {
        Some(metrics_addr) => tracing::info!(%addr, %metrics_addr, "webhook server listening"),
        None => tracing::info!(%addr, "webhook server listening"),
    }
    Ok(RunningServer {
        addr,
        metrics_addr,
        metrics,
        readiness,
        certs,
        shutdown,
        shutdown_delay,
        tasks,
    })
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn watcher_task(
    watcher: CertWatcher,
    interval: Duration,
    rx: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    watcher.run(interval, stopped(rx)).await;
    Ok(())
}

async fn metrics_task(
    listener: TcpListener,
    router: Router,
    rx: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stopped(rx))
        .await
        .map_err(|e| ServeError::Task("metrics", e.to_string()))
}

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    rx: watch::Receiver<bool>,
    drain_timeout: Duration,
) -> Result<(), ServeError> {
    let builder = Arc::new(connection_builder());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    let stop = stopped(rx.clone());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many connections; closing the new one");
                    continue;
                };
                let (acceptor, router, builder, rx) = (acceptor.clone(), router.clone(), builder.clone(), rx.clone());
                connections.spawn(async move {
                    serve_connection(tcp, peer, acceptor, router, &builder, rx).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    tracing::info!(
        in_flight = connections.len(),
        "stopped accepting; draining connections"
    );
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "drain timeout reached; closing the remaining connections"
        );
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    rx: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = TowerToHyperService::new(router);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = stopped(rx) => {
            // Finish the requests in flight, then close (HTTP/1.1: after the current response;
            // HTTP/2: GOAWAY, then the open streams complete).
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
