//! `test-apiserver`: run the in-memory Kubernetes API server until interrupted.
//!
//! `test-apiserver --listen 127.0.0.1:0 --kubeconfig PATH [--service-map NS/NAME=HOST:PORT ...]`
//! prints `ready <url>` on stdout once it serves.

use clap::Parser;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "test-apiserver",
    about = "In-memory Kubernetes API server for tests (loopback only)"
)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Route webhook Service `NS/NAME` to `HOST:PORT` (repeatable).
    #[arg(long = "service-map", value_name = "NS/NAME=HOST:PORT")]
    service_map: Vec<String>,
    /// Serve HTTPS with a throwaway CA (written into the kubeconfig).
    #[arg(long)]
    https: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut service_map = HashMap::new();
    for m in &args.service_map {
        let (k, v) = m
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--service-map {m:?}: expected NS/NAME=HOST:PORT"))?;
        anyhow::ensure!(
            k.contains('/'),
            "--service-map {m:?}: expected NS/NAME=HOST:PORT"
        );
        service_map.insert(k.to_string(), v.to_string());
    }
    let opts = test_apiserver::Options {
        listen: args.listen,
        https: args.https,
        service_map,
        ..Default::default()
    };
    let server = test_apiserver::TestApiServer::start(opts).await?;
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", server.url())?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
