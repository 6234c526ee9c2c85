//! The in-pod MCP proxy (`mcp-operator bridge`).

/// Command-line arguments of `mcp-operator bridge`.
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// The server command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs the bridge until the server exits; returns the process exit code.
pub async fn run(_args: BridgeArgs) -> anyhow::Result<i32> {
    anyhow::bail!("the bridge is not built yet")
}
