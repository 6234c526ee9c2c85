//! `mcp-operator install PATH`: copy this binary to PATH (the bridge's init container).

use std::path::PathBuf;

/// Copy the running mcp-operator binary to PATH, executable (used by the init container that
/// puts the bridge into an MCP server's pod).
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Where to put the binary, e.g. /mcp/bin/mcp-operator.
    pub path: PathBuf,
}

pub fn run(args: InstallArgs) -> i32 {
    match install(&args.path) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "error: cannot install the binary to {}: {e}",
                args.path.display()
            );
            1
        }
    }
}

fn install(to: &std::path::Path) -> std::io::Result<()> {
    let me = std::env::current_exe()?;
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Copy to a temporary name first so a half-written file is never executed.
    let tmp = to.with_extension("partial");
    std::fs::copy(&me, &tmp)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, to)
}
