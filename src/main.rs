use clap::Parser;

/// Many small JSON allocations per review and per reconcile: mimalloc serves them faster than
/// glibc's malloc (measured in benches/README.md, Webhook).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    mcp_operator::crypto::install_provider();
    let cli = mcp_operator::cli::Cli::parse();
    std::process::exit(mcp_operator::cli::run(cli));
}
