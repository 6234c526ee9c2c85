//! The subcommands of the `mcp-operator` binary.

use clap::{Parser, Subcommand};

pub mod certs;
pub mod check;
pub mod convert;
pub mod crds;
pub mod install;
pub mod pgpass;
pub mod render;
pub mod run;
pub mod webhook;

/// Kubernetes operator for MCP servers: reconcilers, admission webhooks and offline tools.
#[derive(Debug, Parser)]
#[command(name = "mcp-operator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (what crds/ holds).
    Crds(crds::CrdsArgs),
    /// Offline admission: apply defaults and validate manifests as the webhook would.
    Check(check::CheckArgs),
    /// Rewrite manifests to another API version (v1alpha1 <-> v1beta1), offline.
    Convert(convert::ConvertArgs),
    /// Print the objects the operator would create for each MCPServer, offline.
    Render(render::RenderArgs),
    /// Copy this binary to a path (the init container of every MCP server pod runs this).
    Install(install::InstallArgs),
    /// Copy a pgpass file into place, private to the pod's user (the init container of registry
    /// API pods with a pgpassSecretRef).
    Pgpass(pgpass::PgpassArgs),
    /// Run the operator: webhooks, controllers (leader only), metrics and probes.
    Run(run::RunArgs),
    /// The MCP proxy that runs inside each MCP server pod.
    Bridge(crate::bridge::BridgeArgs),
    /// The aggregating MCP endpoint of a VirtualMCPServer.
    Vmcp(crate::vmcp::VmcpArgs),
    /// Serve only the admission webhooks (validating + defaulting) over TLS.
    Webhook(webhook::WebhookArgs),
    /// Write a development CA and serving certificate.
    Certs(certs::CertsArgs),
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Crds(args) => crds::run(args),
        Command::Check(args) => check::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Render(args) => render::run(args),
        Command::Install(args) => install::run(args),
        Command::Pgpass(args) => pgpass::run(args),
        Command::Run(args) => run_async(run::run(args)),
        Command::Bridge(args) => run_async(crate::bridge::run(args)),
        Command::Vmcp(args) => run_async(crate::vmcp::run(args)),
        Command::Webhook(args) => run_async(webhook::run(args)),
        Command::Certs(args) => certs::run(args),
    }
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<i32>>) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match rt.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}
