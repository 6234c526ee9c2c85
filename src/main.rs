use clap::Parser;

fn main() {
    mcp_operator::crypto::install_provider();
    let cli = mcp_operator::cli::Cli::parse();
    std::process::exit(mcp_operator::cli::run(cli));
}
