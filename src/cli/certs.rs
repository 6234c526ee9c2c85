//! `mcp-operator certs`: a CA and a serving certificate for development.

use crate::webhook::certs::{generate_ca, write_cert_dir, CA_VALIDITY};
use std::path::PathBuf;
use std::time::Duration;

/// Write a development CA (ca.crt, ca.key) and a serving pair it signed (tls.crt, tls.key).
///
/// Point `mcp-operator webhook --cert-dir` at the output folder, and put ca.crt (base64) in the
/// webhook configurations' caBundle. In a cluster, let cert-manager do this instead.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// A DNS name (or IP address) of the serving certificate; repeat for more.
    #[arg(long = "dns-name", value_name = "NAME", required = true, num_args = 1)]
    pub dns_names: Vec<String>,
    /// Output directory (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the serving certificate is valid.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub days: u64,
}

/// Writes the files; returns the exit code (0, or 1 with the reason on stderr).
pub fn run(args: CertsArgs) -> i32 {
    crate::crypto::install_provider();
    let result = generate_ca("mcp-operator development CA", CA_VALIDITY).and_then(|ca| {
        let pair = ca.issue_serving(&args.dns_names, Duration::from_secs(args.days * 24 * 3600))?;
        write_cert_dir(&args.out, &ca, &pair, true)
    });
    match result {
        Ok(()) => {
            let out = args.out.display();
            println!(
                "wrote {out}/ca.crt, {out}/ca.key, {out}/tls.crt and {out}/tls.key for {}",
                args.dns_names.join(", ")
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
