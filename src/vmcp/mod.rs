//! The `vmcp` runtime: one MCP endpoint aggregating the backends of a VirtualMCPServer.
//!
//! ```text
//!  clients ──streamable HTTP /mcp──▶ front ──▶ aggregator ──guarded client──▶ backend 1..n
//!                                               │  (one backend session per client session)
//!                                   health ─────┘  checks, circuit breakers, /status
//! ```
//!
//! - [`config`]: the file the reconciler renders and the health report it reads back;
//! - [`settings`]: that file checked, defaults filled in, errors naming the field;
//! - [`backend`]: one backend over streamable HTTP, through the bridge's guarded client;
//! - [`sse`]: the same over the legacy HTTP+SSE transport;
//! - [`breaker`]: a backend's circuit breaker and health, shared by all sessions;
//! - [`merge`]: the conflict strategies and tool selection (pure);
//! - [`aggregator`]: client sessions, the fan-out under the deadline, routing;
//! - [`health`]: the periodic checks and `GET /status`;
//! - [`front`]: the HTTP side, on the bridge's listener and request checks.
//!
//! See docs/vmcp.md.

pub mod aggregator;
pub mod backend;
pub mod breaker;
pub mod config;
pub mod front;
pub mod health;
pub mod merge;
pub mod settings;
pub mod sse;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

/// Command-line arguments of `mcp-operator vmcp`.
#[derive(Debug, Clone, clap::Args)]
pub struct VmcpArgs {
    /// The JSON config file the operator renders (ConfigMap `<name>-vmcp-config`, key
    /// `vmcp.json`; see docs/vmcp.md).
    #[arg(long, env = "MCP_VMCP_CONFIG")]
    pub config: PathBuf,
    /// Address to serve on: HOST:PORT, :PORT or PORT (default: the file's, else :4483).
    #[arg(long)]
    pub listen: Option<String>,
    /// For tests and local development only (the operator never sets it): let backends be
    /// reached on loopback addresses. Link-local and metadata addresses stay refused.
    #[arg(long)]
    pub insecure_allow_loopback_backends: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "json")]
    pub log_format: String,
    /// The most client sessions held at once; each holds a session with every backend. A
    /// member's bridge admits 1000 sessions from one address (its `maxSessionsPerClient`),
    /// and this runtime is one address to it; the default leaves room below that for the
    /// health checks' sessions and sessions being reopened, so backends never have to refuse.
    #[arg(long, env = "MCP_VMCP_MAX_SESSIONS", default_value_t = 900,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,
    /// The most client sessions one client address holds (the TCP peer), so that one client
    /// cannot take every session.
    #[arg(long, env = "MCP_VMCP_MAX_SESSIONS_PER_CLIENT", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions_per_client: u32,
    /// Count sessions against the address a trusted proxy appended to `X-Forwarded-For`
    /// rather than the TCP peer (behind an Ingress, every client's peer is the Ingress).
    #[arg(long, env = "MCP_VMCP_TRUST_PROXY_HEADERS")]
    pub trust_proxy_headers: bool,
}

/// Runs the runtime until SIGTERM or SIGINT.
pub async fn run(args: VmcpArgs) -> anyhow::Result<i32> {
    init_logging(&args.log_format);
    let mut settings = settings::load(&args.config, |v| std::env::var_os(v))?;
    if let Some(l) = &args.listen {
        settings.listen =
            crate::bridge::config::parse_listen(l).map_err(|e| anyhow::anyhow!("--listen: {e}"))?;
    }
    let settings = Arc::new(settings);
    let front_cfg = Arc::new(crate::bridge::config::Config {
        listen: settings.listen,
        auth: settings.auth.clone(),
        max_sessions: args.max_sessions as usize,
        max_sessions_per_client: args.max_sessions_per_client as usize,
        trust_proxy_headers: args.trust_proxy_headers,
        ..Default::default()
    });
    let guard = crate::bridge::guard::Guard::of(&front_cfg)?;
    if let Some(g) = &guard {
        g.warm_up();
    }
    let policy = breaker::Policy {
        breaker_enabled: settings.breaker_enabled,
        failure_threshold: settings.breaker_threshold,
        open_for: settings.breaker_open,
        unhealthy_threshold: settings.unhealthy_threshold,
    };
    let links = settings
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            backend::Link::new(i, b.clone(), args.insecure_allow_loopback_backends, policy)
                .map(Arc::new)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.insecure_allow_loopback_backends {
        tracing::warn!("--insecure-allow-loopback-backends: backends may be reached on loopback");
    }
    let metrics = Arc::new(crate::bridge::metrics::Metrics::new());
    metrics.sessions_limit.set(front_cfg.max_sessions as i64);
    let agg = Arc::new(aggregator::Aggregator::new(
        settings.clone(),
        links,
        metrics.clone(),
        aggregator::SessionLimits {
            max_sessions: front_cfg.max_sessions,
            max_per_client: front_cfg.max_sessions_per_client,
        },
    ));
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let app = front::router(
        front::FrontState {
            agg: agg.clone(),
            cfg: front_cfg.clone(),
            access: Arc::new(crate::bridge::origin::Access::of(&front_cfg)),
            bodies: Arc::new(crate::bridge::serve::BodyBudget::new(
                front_cfg.max_body_bytes_in_flight,
                metrics.clone(),
            )),
            guard: guard.clone(),
        },
        guard,
    );
    tracing::info!(
        listen = %listener.local_addr()?,
        backends = agg.links.len(),
        config_hash = %settings.config_hash,
        "vmcp listening"
    );
    let limits = crate::bridge::serve::Limits {
        max_connections: front_cfg.max_connections,
        header_read_timeout: front_cfg.header_read_timeout,
    };
    let http = tokio::spawn(crate::bridge::serve::serve(listener, app, limits, metrics));
    let checks = tokio::spawn(health::run(agg.clone()));
    let watches: Vec<_> = (0..agg.links.len())
        .map(|b| tokio::spawn(health::watch(agg.clone(), b)))
        .collect();
    let expiry = tokio::spawn(expire(
        agg.clone(),
        front_cfg.session_ttl,
        front_cfg.session_handshake,
    ));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    http.abort();
    checks.abort();
    expiry.abort();
    for w in watches {
        w.abort();
    }
    Ok(0)
}

async fn expire(agg: Arc<aggregator::Aggregator>, ttl: Duration, handshake: Duration) {
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    loop {
        ticker.tick().await;
        agg.expire(ttl, handshake);
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "text" {
        builder.try_init()
    } else {
        builder.json().try_init()
    };
}
