//! `mcp-operator run`: webhooks on every replica, controllers on the lease holder.

use crate::cli::render::default_bridge_image;
use crate::cli::webhook::{
    init_logging, missing_certificates, our_crd_names, start_self_managed, terminated, LogFormat,
};
use crate::controller::leader::{run_while_leader, LeaseSettings};
use crate::controller::mcpserver::{self, Settings};
use crate::controller::metrics::ControllerMetrics;
use crate::controller::migrate::{migrate_all, MigrationMetrics};
use crate::controller::registry::RegistryResolver;
use crate::controller::resolve::{Chain, CommandResolver, StaticResolver};
use crate::webhook::lookup::KubeLookup;
use crate::webhook::selfmanaged::SelfManagedCerts;
use crate::webhook::server::{start, ServerOptions};
use anyhow::Context;
use axum::routing::get;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Run the operator: admission and conversion webhooks (every replica), the MCPServer
/// controller and the storage-version migrator (the lease holder only), metrics and probes.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Directory holding the webhook's tls.crt and tls.key (cert-manager's Secret, mounted).
    #[arg(
        long,
        value_name = "DIR",
        env = "MCP_OPERATOR_CERT_DIR",
        default_value = "/tmp/k8s-webhook-server/serving-certs"
    )]
    pub cert_dir: PathBuf,
    /// Address of the webhook (HTTPS) server.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9443")]
    pub webhook_bind_address: SocketAddr,
    /// Address of /metrics (plain HTTP), as upstream's flag: `:8080` or `HOST:PORT`.
    #[arg(long, value_name = "ADDR", default_value = ":8080")]
    pub metrics_bind_address: String,
    /// Address of /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = ":8081")]
    pub health_probe_bind_address: String,
    /// Run controllers only while holding the Lease --lease-name in --pod-namespace.
    #[arg(long)]
    pub leader_elect: bool,
    /// The Lease (in --pod-namespace) the replicas of one install share; two installs in one
    /// namespace need two names, or only one of them ever reconciles.
    #[arg(long, value_name = "NAME", default_value = "mcp-operator-leader")]
    pub lease_name: String,
    /// Seconds without renewal after which another replica takes the lease.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// The operator's own namespace (Lease, events).
    #[arg(long, env = "POD_NAMESPACE", default_value = "mcp-operator-system")]
    pub pod_namespace: String,
    /// Namespaces to reconcile, comma-separated; empty means all.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// Image of the init container that puts the bridge into every MCP server pod.
    #[arg(long, env = "MCP_OPERATOR_BRIDGE_IMAGE", default_value_t = default_bridge_image())]
    pub bridge_image: String,
    /// Image of the MCPRegistry API server (upstream's setting of the same name).
    #[arg(long, env = "TOOLHIVE_REGISTRY_API_IMAGE", default_value = crate::controller::mcpregistry_children::DEFAULT_API_IMAGE)]
    pub registry_api_image: String,
    /// Pull secrets added to every MCP server pod, comma-separated.
    #[arg(
        long,
        env = "TOOLHIVE_DEFAULT_IMAGE_PULL_SECRETS",
        value_delimiter = ','
    )]
    pub default_image_pull_secrets: Vec<String>,
    /// The command of an image, for images whose registry cannot be read (repeatable):
    /// `--image-command 'docker.io/mcp/fetch=mcp-server-fetch'`.
    #[arg(long = "image-command", value_name = "IMAGE=COMMAND")]
    pub image_commands: Vec<String>,
    /// Never read entrypoints from registries (air-gapped clusters: use --image-command).
    #[arg(long)]
    pub no_registry_lookup: bool,
    /// Re-write objects stored at old versions and trim the CRDs' storedVersions (leader only).
    #[arg(long, env = "MCP_OPERATOR_STORAGE_MIGRATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub storage_migration: bool,
    /// After SIGTERM, seconds to keep serving webhooks while reporting not ready.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub shutdown_delay: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// MCPServer reconciles in flight at once (0: unbounded).
    #[arg(long, value_name = "N", default_value_t = mcpserver::DEFAULT_CONCURRENCY)]
    pub max_concurrent_reconciles: u16,
    /// Without cert-manager: keep a CA and serving certificate in a Secret of --pod-namespace
    /// (shared by all replicas), write the pair into --cert-dir, patch the caBundle of the
    /// webhook configurations and of our CRDs' conversion webhooks, and renew before expiry.
    #[arg(long)]
    pub self_signed: bool,
    /// The webhook Service, whose DNS names the self-managed certificate carries.
    #[arg(long, value_name = "NAME", default_value = "mcp-operator-webhook")]
    pub webhook_service_name: String,
    /// The Secret holding the self-managed CA and serving pair.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "mcp-operator-webhook-certs"
    )]
    pub webhook_secret_name: String,
    /// Where the reconciler reads each VirtualMCPServer's backend health (`GET /status`):
    /// `HOST:PORT`, with `{name}` and `{namespace}` standing for the object's. The default is
    /// its Service's DNS name; override it when the operator runs outside the cluster (e.g.
    /// through a port-forward: `127.0.0.1:4483`) or in tests.
    #[arg(
        long,
        env = "MCP_OPERATOR_VMCP_STATUS_ADDRESS",
        value_name = "HOST:PORT",
        default_value = crate::controller::vmcp_status::DEFAULT_STATUS_ADDRESS
    )]
    pub vmcp_status_address: String,
    /// Name of the Validating/MutatingWebhookConfiguration whose caBundle --self-signed patches.
    #[arg(long, value_name = "NAME", default_value = "mcp-operator")]
    pub webhook_configuration_name: String,
}

fn parse_addr(s: &str) -> anyhow::Result<SocketAddr> {
    crate::bridge::config::parse_listen(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn namespaces(watch: &str) -> Vec<Option<String>> {
    let list: Vec<Option<String>> = watch
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Some(s.to_string()))
        .collect();
    if list.is_empty() {
        vec![None]
    } else {
        list
    }
}

fn resolver(args: &RunArgs) -> anyhow::Result<Arc<dyn CommandResolver>> {
    let entries: HashMap<String, Vec<String>> = args
        .image_commands
        .iter()
        .map(|e| StaticResolver::parse_entry(e).map_err(|e| anyhow::anyhow!("--image-command {e}")))
        .collect::<Result<_, _>>()?;
    let mut chain: Vec<Box<dyn CommandResolver>> = vec![Box::new(StaticResolver::new(entries))];
    if !args.no_registry_lookup {
        chain.push(Box::new(RegistryResolver::new()));
    }
    Ok(Arc::new(Chain(chain)))
}

fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "mcp-operator".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Serves /healthz and /readyz; ready once the webhook server is up and until shutdown begins.
async fn serve_probes(addr: SocketAddr, ready: Arc<AtomicBool>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Acquire) {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// Everything only the leader does: migrate stored versions, then reconcile until stopped.
async fn lead(
    client: kube::Client,
    args: RunArgs,
    resolver: Arc<dyn CommandResolver>,
    metrics: ControllerMetrics,
    migration: MigrationMetrics,
) {
    if args.storage_migration {
        match migrate_all(&client, &migration).await {
            Ok(done) => {
                tracing::info!(crds = done.len(), "storage version migration pass finished")
            }
            // The controllers need not wait for it: the next leadership term tries again.
            Err(e) => tracing::warn!(error = %e, "storage version migration failed"),
        }
    }
    let settings = Settings {
        bridge_image: args.bridge_image.clone(),
        registry_api_image: args.registry_api_image.clone(),
        default_pull_secrets: args
            .default_image_pull_secrets
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect(),
        resync: None,
        max_backoff: None,
        concurrency: Some(args.max_concurrent_reconciles),
        vmcp_status_address: Some(args.vmcp_status_address.clone()),
    };
    let controllers = namespaces(&args.watch_namespace).into_iter().map(|ns| {
        crate::controller::run_all(
            client.clone(),
            ns,
            settings.clone(),
            resolver.clone(),
            metrics.clone(),
        )
    });
    futures::future::join_all(controllers).await;
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    crate::crypto::install_provider();
    // Nothing will write the pair: say so once, before anything else starts.
    if !args.self_signed {
        if let Some(message) = missing_certificates(&args.cert_dir) {
            anyhow::bail!(message);
        }
    }
    init_logging(args.log_format);
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("cannot build a Kubernetes client (in-cluster config or KUBECONFIG): {e}")
    })?;
    let resolver = resolver(&args)?;
    let metrics = ControllerMetrics::default();
    let migration = MigrationMetrics::default();

    let mut options = ServerOptions::new(args.cert_dir.clone(), args.webhook_bind_address);
    options.metrics_listen = Some(parse_addr(&args.metrics_bind_address)?);
    options.shutdown_delay = Duration::from_secs(args.shutdown_delay);
    options.lookup = Some(Arc::new(KubeLookup::new(client.clone())));
    options.conversion = Some(crate::webhook::conversion::handler());
    options.extra_metrics = Some(Arc::new({
        let (metrics, migration) = (metrics.clone(), migration.clone());
        move |registry: &mut prometheus_client::registry::Registry| {
            metrics.register(registry);
            migration.register(registry);
        }
    }));
    // Every replica keeps the shared pair current: the webhooks are served by all of them.
    let self_managed = if args.self_signed {
        Some(
            start_self_managed(SelfManagedCerts {
                client: client.clone(),
                namespace: args.pod_namespace.clone(),
                secret_name: args.webhook_secret_name.clone(),
                service_name: args.webhook_service_name.clone(),
                webhook_configuration: args.webhook_configuration_name.clone(),
                crds: our_crd_names(),
                cert_dir: args.cert_dir.clone(),
            })
            .await?,
        )
    } else {
        None
    };
    // The error's own text already carries its causes: printed as a chain they would repeat.
    let mut server = start(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the webhook server: {e}"))?;
    let ready = Arc::new(AtomicBool::new(true));
    let probes = tokio::spawn(serve_probes(
        parse_addr(&args.health_probe_bind_address)?,
        ready.clone(),
    ));
    tracing::info!(webhook = %server.addr(), leader_elect = args.leader_elect, "mcp-operator running");

    let work = {
        let (client, args, resolver, metrics, migration) = (
            client.clone(),
            args.clone(),
            resolver.clone(),
            metrics.clone(),
            migration.clone(),
        );
        move || {
            lead(
                client.clone(),
                args.clone(),
                resolver.clone(),
                metrics.clone(),
                migration.clone(),
            )
        }
    };
    let leader_gauge = metrics.leader.clone();
    let controllers = async {
        if args.leader_elect {
            let mut lease = LeaseSettings::new(args.pod_namespace.clone(), identity());
            lease.name = args.lease_name.clone();
            lease.lease_duration = Duration::from_secs(args.lease_duration_seconds.max(2));
            lease.renew_every = lease.lease_duration / 3;
            let on_change = move |leading: bool| {
                leader_gauge.set(i64::from(leading));
            };
            run_while_leader(client.clone(), lease, on_change, work, async {
                let _ = terminated().await;
            })
            .await;
        } else {
            leader_gauge.set(1);
            tokio::select! {
                _ = work() => {}
                _ = terminated() => {}
            }
        }
    };
    tokio::select! {
        result = server.wait() => {
            result?;
            return Ok(1);
        }
        result = probes => {
            result.context("probe server")??;
            return Ok(1);
        }
        _ = controllers => {}
    }
    tracing::info!("shutting down: not ready, draining in-flight reviews");
    ready.store(false, Ordering::Release);
    if let Some(task) = self_managed {
        task.abort();
    }
    server.shutdown().await?;
    tracing::info!("stopped");
    Ok(0)
}
