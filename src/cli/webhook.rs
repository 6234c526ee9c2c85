//! `mcp-operator webhook`: serve only the admission webhooks (no cluster needed).

use crate::api::{GROUP, SERVED};
use crate::webhook::config::{configurations_yaml, ConfigOptions};
use crate::webhook::lookup::KubeLookup;
use crate::webhook::selfmanaged::SelfManagedCerts;
use crate::webhook::server::{start, ServerOptions};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Serve the validating and defaulting admission webhooks, and the CRD conversion webhook, over
/// TLS.
///
/// The certificate is read from `--cert-dir` (`tls.crt`, `tls.key`, as cert-manager writes
/// them) and reloaded when the files change. Without `--cluster-lookups` no cluster is needed:
/// references to other objects are then not checked, and the answer says so in a warning.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Directory holding tls.crt and tls.key.
    #[arg(
        long,
        value_name = "DIR",
        env = "MCP_OPERATOR_CERT_DIR",
        required_unless_present = "print_configurations"
    )]
    pub cert_dir: Option<PathBuf>,
    /// Address of the admission (HTTPS) server.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// Address of the plain-HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_listen: SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Check referenced Secrets, ConfigMaps, MCPToolConfigs and MCPGroups through the API server
    /// (in-cluster config or kubeconfig).
    #[arg(long)]
    pub cluster_lookups: bool,
    /// After SIGTERM, seconds to keep serving while reporting not ready, so that the Service
    /// stops sending new connections before the listener closes.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub shutdown_delay: u64,
    /// Without cert-manager: keep a CA and serving certificate in a Secret of
    /// --service-namespace (shared by all replicas), write the pair into --cert-dir, and patch
    /// the caBundle of the webhook configurations and of our CRDs' conversion webhooks.
    #[arg(long, requires_all = ["service_name", "service_namespace"])]
    pub self_signed: bool,
    /// The Secret holding the self-managed CA and serving pair.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "mcp-operator-webhook-certs"
    )]
    pub secret_name: String,
    /// Name of the Validating/MutatingWebhookConfiguration whose caBundle --self-signed patches.
    #[arg(long, value_name = "NAME", default_value = "mcp-operator")]
    pub webhook_configuration_name: String,
    /// Also serve the benchmark floor route (used by benches/webhook).
    #[arg(long, hide = true)]
    pub benchmark_floor: bool,
    /// Print the Validating/MutatingWebhookConfigurations (YAML) for --service-name and
    /// --service-namespace, and exit.
    #[arg(long, requires_all = ["service_name", "service_namespace"])]
    pub print_configurations: bool,
    /// The webhook Service's name (for --print-configurations).
    #[arg(long, value_name = "NAME")]
    pub service_name: Option<String>,
    /// The webhook Service's namespace (for --print-configurations). Objects of our group in
    /// this namespace go through the webhooks like everywhere else.
    #[arg(long, value_name = "NAMESPACE")]
    pub service_namespace: Option<String>,
}

/// `text` for people, `json` for log pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the process's log subscriber (`RUST_LOG` filters; default `info`). Does nothing when
/// one is already installed.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// Runs the webhook server until SIGTERM or SIGINT; returns the process exit code.
pub async fn run(args: WebhookArgs) -> anyhow::Result<i32> {
    crate::crypto::install_provider();
    if args.print_configurations {
        let (Some(service), Some(namespace)) = (&args.service_name, &args.service_namespace) else {
            anyhow::bail!("--print-configurations needs --service-name and --service-namespace");
        };
        print!(
            "{}",
            configurations_yaml(&ConfigOptions::new(service, namespace))?
        );
        return Ok(0);
    }
    init_logging(args.log_format);
    let cert_dir = args.cert_dir.context("--cert-dir is required")?;
    if !args.self_signed {
        if let Some(message) = missing_certificates(&cert_dir) {
            anyhow::bail!(message);
        }
    }
    let mut options = ServerOptions::new(cert_dir, args.listen);
    options.metrics_listen = Some(args.metrics_listen);
    options.shutdown_delay = Duration::from_secs(args.shutdown_delay);
    options.benchmark_floor = args.benchmark_floor;
    // The CRDs' conversion stanza points at the same Service: serve it here too.
    options.conversion = Some(crate::webhook::conversion::handler());
    if args.cluster_lookups {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!("--cluster-lookups: cannot build a Kubernetes client: {e}")
        })?;
        options.lookup = Some(Arc::new(KubeLookup::new(client)));
    }
    let mut self_managed = None;
    if args.self_signed {
        let (Some(service), Some(namespace)) =
            (args.service_name.clone(), args.service_namespace.clone())
        else {
            anyhow::bail!("--self-signed needs --service-name and --service-namespace");
        };
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("--self-signed: cannot build a Kubernetes client: {e}"))?;
        let certs = SelfManagedCerts {
            client,
            namespace,
            secret_name: args.secret_name.clone(),
            service_name: service,
            webhook_configuration: args.webhook_configuration_name.clone(),
            crds: our_crd_names(),
            cert_dir: options.cert_dir.clone(),
        };
        self_managed = Some(start_self_managed(certs).await?);
    }
    // The error's own text already carries its causes: printed as a chain they would repeat.
    let mut server = start(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the webhook server: {e}"))?;
    tokio::select! {
        result = server.wait() => {
            result?;
            Ok(1)
        }
        signal = terminated() => {
            signal?;
            tracing::info!("shutting down: not ready, draining in-flight reviews");
            if let Some(task) = self_managed {
                task.abort();
            }
            server.shutdown().await?;
            tracing::info!("stopped");
            Ok(0)
        }
    }
}

/// The one line to print when `cert_dir` lacks the serving pair and nothing will write it:
/// what is missing, and the two ways out. `None` when both files are there.
pub fn missing_certificates(cert_dir: &Path) -> Option<String> {
    let missing: Vec<&str> = ["tls.crt", "tls.key"]
        .into_iter()
        .filter(|file| !cert_dir.join(file).exists())
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "no serving certificate: {} has no {}; mount the Secret cert-manager issues there \
         (the Helm chart does), or pass --self-signed to let the operator keep its own CA",
        cert_dir.display(),
        missing.join(" and ")
    ))
}

/// Names of the CRDs whose conversion webhook serves from this process.
pub fn our_crd_names() -> Vec<String> {
    SERVED
        .iter()
        .map(|s| format!("{}.{GROUP}", s.plural))
        .collect()
}

/// Settles the shared CA and serving pair before the server's first load, then keeps renewing
/// it in the background (abort the task to stop).
pub async fn start_self_managed(
    certs: SelfManagedCerts,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    certs
        .reconcile()
        .await
        .context("self-managed certificates")?;
    Ok(tokio::spawn(certs.run(std::future::pending())))
}

/// Resolves on SIGTERM (what the kubelet sends) or SIGINT.
pub async fn terminated() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            result = tokio::signal::ctrl_c() => result,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
