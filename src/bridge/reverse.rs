//! The HTTP backends: reverse-proxying to a server that speaks SSE or streamable HTTP itself.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::config::Config;

/// Serves the fronts in front of an HTTP MCP server.
pub async fn run(_cfg: Arc<Config>, _listener: TcpListener) -> anyhow::Result<i32> {
    anyhow::bail!("the HTTP backends (--transport sse|streamable-http) are not built yet")
}
