//! The in-pod MCP proxy (`mcp-operator bridge`).
//!
//! The bridge is PID 1 of an MCP server's container (DESIGN.md §6). With the stdio transport it
//! spawns the server as its child and serves many HTTP clients over the one process:
//!
//! ```text
//!  clients ──HTTP──▶ front (streamable HTTP /mcp, legacy SSE /sse) ──▶ hub ──stdin/stdout──▶ server
//! ```
//!
//! - [`hub`] owns the handshake, rewrites ids and routes what the server sends;
//! - [`front`] speaks both HTTP transports, with the checks and error table of `docs/bridge.md`;
//! - [`filter`] is the tools allow-list and the tool overrides (MCPToolConfig);
//! - [`reverse`] forwards to servers that speak HTTP themselves (`--transport sse|streamable-http`),
//!   in the pod or, with [`remote`], elsewhere (`remoteUrl`, MCPRemoteProxy);
//! - [`stdio`] spawns, signals and reaps the server;
//! - [`serve`] is the listener of both modes, bounded against slow and idle clients;
//! - [`origin`] decides which browser pages may call (Origin and Host, against DNS rebinding).
//! - [`guard`] is the door of the MCP routes: bearer tokens ([`auth`]), Cedar policies
//!   ([`authz`]) and the audit trail ([`audit`]), as the config file's `auth` block asks;
//! - [`outgoing`] adds the configured headers and credentials (a static bearer token, or the
//!   caller's token exchanged, RFC 8693) to every request to an HTTP backend or remote.
//!
//! When the server exits (or closes its stdout), the bridge answers what is in flight with errors
//! and exits with the server's status (1 when it had to kill a server that closed its stdout), so
//! Kubernetes restarts the container.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod config;
pub mod filter;
pub mod front;
pub mod guard;
pub mod hub;
pub mod jsonrpc;
pub mod metrics;
pub mod origin;
pub mod outgoing;
pub mod remote;
pub mod reverse;
pub mod serve;
pub mod stdio;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use self::config::{Config, FileConfig, Transport};

/// Command-line arguments of `mcp-operator bridge`. Flags override the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// JSON config file written by the operator (camelCase fields; see docs/bridge.md).
    #[arg(long, env = "MCP_BRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to serve on: HOST:PORT, :PORT or PORT (default :8080).
    #[arg(long)]
    pub listen: Option<String>,
    /// How to reach the server: stdio (spawn the command), sse or streamable-http (--target).
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// URL of an HTTP server to reverse-proxy to, e.g. http://127.0.0.1:8080/mcp.
    #[arg(long)]
    pub target: Option<String>,
    /// URL of a remote MCP server to proxy to (http:// or https://), e.g.
    /// https://mcp.example.com/mcp; its addresses pass the guard at every connect.
    #[arg(long)]
    pub remote_url: Option<String>,
    /// For tests and local development only (the operator never sets it): let the remote
    /// mode reach loopback addresses. Link-local and metadata addresses stay refused.
    #[arg(long)]
    pub insecure_allow_loopback_remote: bool,
    /// Tools allow-list (the names clients see, after `toolOverrides` in the config file); every
    /// other tool is hidden and its calls fail with -32602.
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Path prefix clients use to reach the bridge (for the legacy SSE endpoint URL).
    #[arg(long)]
    pub endpoint_prefix: Option<String>,
    /// Honour X-Forwarded-Prefix from a trusted reverse proxy.
    #[arg(long)]
    pub trust_proxy_headers: bool,
    /// Extra Origins allowed to call the bridge (besides loopback and the request's own host).
    #[arg(long, value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Host names served to browser pages besides the bridge's own (`.suffix` for every name
    /// under one, `*` for any); see docs/bridge.md.
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Per-request timeout in seconds (504 after it).
    #[arg(long)]
    pub request_timeout: Option<u64>,
    /// Largest accepted request body in bytes (413 above it).
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Log format: text or json.
    #[arg(long, default_value = "json")]
    pub log_format: String,
    /// The server command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

impl BridgeArgs {
    /// The effective configuration: defaults, then the file, then the flags.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let mut cfg = Config::default();
        let secs = Duration::from_secs;
        if let Some(v) = self.listen.as_ref().or(file.listen.as_ref()) {
            cfg.listen = config::parse_listen(v)?;
        }
        cfg.target = self.target.clone().or(file.target);
        cfg.remote_url = self.remote_url.clone().or(file.remote_url);
        cfg.allow_private_endpoint = file.allow_private_endpoint.unwrap_or(false);
        cfg.allow_loopback_remote = self.insecure_allow_loopback_remote;
        cfg.ca_bundle = file.ca_bundle.map(PathBuf::from);
        cfg.headers = file.headers.unwrap_or_default();
        cfg.headers_from_env = file.headers_from_env.unwrap_or_default();
        cfg.auth = file.auth.unwrap_or_default();
        cfg.transport = self.transport.or(file.transport).unwrap_or(
            if (cfg.target.is_some() || cfg.remote_url.is_some()) && self.command.is_empty() {
                Transport::StreamableHttp
            } else {
                Transport::Stdio
            },
        );
        cfg.tools = self.tools.clone().or(file.tools).unwrap_or_default();
        cfg.tool_overrides = file.tool_overrides.unwrap_or_default();
        cfg.endpoint_prefix = config::normalize_prefix(
            self.endpoint_prefix
                .as_deref()
                .or(file.endpoint_prefix.as_deref())
                .unwrap_or(""),
        );
        cfg.trust_proxy_headers =
            self.trust_proxy_headers || file.trust_proxy_headers.unwrap_or(false);
        cfg.allowed_origins = self
            .allowed_origins
            .clone()
            .or(file.allowed_origins)
            .unwrap_or_default();
        cfg.allowed_hosts = self
            .allowed_hosts
            .clone()
            .or(file.allowed_hosts)
            .unwrap_or_default();
        if let Some(v) = self.request_timeout.or(file.request_timeout_seconds) {
            cfg.request_timeout = secs(v);
        }
        if let Some(v) = self.max_body_bytes.or(file.max_body_bytes) {
            cfg.max_body_bytes = v;
        }
        if let Some(v) = file.max_line_bytes {
            cfg.max_line_bytes = v;
        }
        if let Some(v) = file.keep_alive_seconds {
            cfg.keep_alive = secs(v);
        }
        if let Some(v) = file.session_ttl_seconds {
            cfg.session_ttl = secs(v);
        }
        if let Some(v) = file.max_sessions {
            cfg.max_sessions = v;
        }
        if let Some(v) = file.ping_interval_seconds {
            cfg.ping_interval = secs(v);
        }
        if let Some(v) = file.metrics {
            cfg.metrics = v;
        }
        if let Some(v) = file.header_read_timeout_seconds {
            cfg.header_read_timeout = secs(v);
        }
        if let Some(v) = file.max_connections {
            cfg.max_connections = v;
        }
        if let Some(v) = file.max_body_bytes_in_flight {
            cfg.max_body_bytes_in_flight = v;
        }
        if let Some(v) = file.session_handshake_seconds {
            cfg.session_handshake = secs(v);
        }
        if let Some(v) = file.max_sessions_per_client {
            cfg.max_sessions_per_client = v;
        }
        if let Some(v) = file.max_stream_queue_bytes {
            cfg.max_stream_queue_bytes = v;
        }
        cfg.command = if self.command.is_empty() {
            file.command.unwrap_or_default()
        } else {
            self.command.clone()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs the bridge until the server exits; returns the process exit code.
pub async fn run(args: BridgeArgs) -> anyhow::Result<i32> {
    init_logging(&args.log_format);
    let cfg = Arc::new(args.resolve()?);
    if !cfg.secret_env_vars().is_empty() {
        keep_environment_private();
    }
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    tracing::info!(listen = %listener.local_addr()?, transport = ?cfg.transport, "bridge listening");
    match cfg.transport {
        Transport::Stdio => run_stdio(cfg, listener).await,
        Transport::Sse | Transport::StreamableHttp => reverse::run(cfg, listener).await,
    }
}

/// Makes the bridge's memory and `/proc/<pid>/environ` unreadable to processes of the same
/// non-root user — the MCP server it starts runs as that user in the same container, and the
/// variables removed from the server's environment must not be one `cat` away in the bridge's.
fn keep_environment_private() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE) only changes this process's dumpable flag.
    unsafe {
        if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot make the bridge non-dumpable");
        }
    }
}

/// How long in-flight answers get to reach their clients after the server died.
const DRAIN_GRACE: Duration = Duration::from_millis(200);
/// How long the server has to answer the bridge's `initialize`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a server that closed its stdout gets to exit on its own before it is killed.
const STDOUT_EOF_GRACE: Duration = Duration::from_secs(1);

/// The listener's bounds from `cfg`.
fn serve_limits(cfg: &Config) -> serve::Limits {
    serve::Limits {
        max_connections: cfg.max_connections,
        header_read_timeout: cfg.header_read_timeout,
    }
}

async fn run_stdio(cfg: Arc<Config>, listener: TcpListener) -> anyhow::Result<i32> {
    let tools = tool_policy(&cfg)?;
    let guard = guard::Guard::of(&cfg)?;
    if let Some(g) = &guard {
        g.warm_up();
    }
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.sessions_limit.set(cfg.max_sessions as i64);
    let mut server = stdio::spawn(&cfg.command, &cfg.secret_env_vars())?;
    let hub = hub::Hub::start(
        server.stdin,
        server.stdout,
        hub::HubLimits {
            max_line_bytes: cfg.max_line_bytes,
            max_stream_queue_bytes: cfg.max_stream_queue_bytes,
        },
        tools,
        metrics.clone(),
    );
    let app = front::router(front::FrontState {
        hub: hub.clone(),
        cfg: cfg.clone(),
        access: Arc::new(origin::Access::of(&cfg)),
        bodies: Arc::new(serve::BodyBudget::new(
            cfg.max_body_bytes_in_flight,
            metrics.clone(),
        )),
        guard: guard.clone(),
    });
    let http = tokio::spawn(serve::serve(
        listener,
        app,
        serve_limits(&cfg),
        metrics.clone(),
    ));
    let (handshake_failed_tx, mut handshake_failed) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(maintain(hub.clone(), cfg.clone(), handshake_failed_tx));
    tokio::spawn(expire_sessions(hub.clone(), cfg.clone()));

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut handshake_pending = true;
    let status = loop {
        tokio::select! {
            status = server.child.wait() => break status?,
            // The server closed its stdout: nothing it says can reach a client any more, even
            // if it keeps running. Waiting requests were already answered; end it.
            _ = hub.wait_closed() => {
                match tokio::time::timeout(STDOUT_EOF_GRACE, server.child.wait()).await {
                    Ok(status) => break status?,
                    Err(_) => {
                        tracing::error!(
                            "the MCP server closed its stdout but keeps running; killing it, \
                             the bridge exits 1"
                        );
                        let _ = server.child.start_kill();
                        let _ = server.child.wait().await;
                        tokio::time::sleep(DRAIN_GRACE).await;
                        http.abort();
                        return Ok(1);
                    }
                }
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: forwarding to the MCP server");
                stdio::signal(&server.child, libc::SIGTERM);
            }
            _ = sigint.recv() => {
                tracing::info!("SIGINT: forwarding to the MCP server");
                stdio::signal(&server.child, libc::SIGINT);
            }
            result = &mut handshake_failed, if handshake_pending => {
                handshake_pending = false;
                // A server that exited during the handshake is reaped by the branch above, and
                // its status is what the bridge reports.
                if result.is_ok() && !hub.is_closed() {
                    let _ = server.child.start_kill();
                    let _ = server.child.wait().await;
                    http.abort();
                    return Ok(1);
                }
            }
        }
    };
    metrics.server_up.set(0);
    let code = stdio::exit_code(status);
    tracing::warn!(
        code,
        "the MCP server exited; the bridge exits with its status"
    );
    // The reader sees EOF on the server's stdout at about the same time; it then answers every
    // waiting request with an error. A grandchild may hold the pipe open, so do not wait for EOF
    // long, then give the answers a moment to reach their clients.
    let eof_deadline = tokio::time::Instant::now() + DRAIN_GRACE;
    while !hub.is_closed() && tokio::time::Instant::now() < eof_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub.shut_down();
    tokio::time::sleep(DRAIN_GRACE).await;
    http.abort();
    Ok(code)
}

/// The allow-list and overrides of `cfg`, with a warning for allow-list entries that name a
/// renamed tool by its old name (upstream accepts them; they are rarely what was meant).
fn tool_policy(cfg: &Config) -> Result<Option<filter::ToolPolicy>, filter::ToolsError> {
    let policy = filter::ToolPolicy::new(&cfg.tools, &cfg.tool_overrides)?;
    for (old, new) in policy.iter().flat_map(|p| p.allowed_old_names()) {
        tracing::warn!(
            tool = old,
            renamed = new,
            "the tools allow-list names a renamed tool by its old name; it matches the names \
             clients see, so the tool is not listed (list its new name instead)"
        );
    }
    Ok(policy)
}

/// Handshake, then periodic pings (readiness) and session expiry.
async fn maintain(
    hub: Arc<hub::Hub>,
    cfg: Arc<Config>,
    handshake_failed: tokio::sync::oneshot::Sender<()>,
) {
    if let Err(e) = hub.handshake(HANDSHAKE_TIMEOUT).await {
        tracing::error!(error = %e, "the MCP handshake failed");
        let _ = handshake_failed.send(());
        return;
    }
    hub.metrics.server_up.set(1);
    tracing::info!("the MCP server is initialized; ready");
    let mut ticker = tokio::time::interval(cfg.ping_interval);
    ticker.tick().await;
    while !hub.is_closed() {
        ticker.tick().await;
        let timeout = cfg.ping_interval.min(Duration::from_secs(10));
        if !hub.ping(timeout).await && !hub.is_closed() {
            tracing::warn!("the MCP server did not answer a ping; not ready");
        }
    }
}

/// Ends sessions that were opened and never used (within `sessionHandshakeSeconds`) and idle
/// ones (`sessionTtlSeconds`), checking several times per handshake period.
async fn expire_sessions(hub: Arc<hub::Hub>, cfg: Arc<Config>) {
    let period =
        (cfg.session_handshake / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !hub.is_closed() {
        ticker.tick().await;
        hub.expire_sessions(cfg.session_ttl, cfg.session_handshake);
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
