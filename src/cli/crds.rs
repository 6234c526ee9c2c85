//! `mcp-operator crds`: print the CustomResourceDefinitions.

use crate::api::crd;
use std::path::PathBuf;

/// Print every CRD of the group as multi-document YAML (what `crds/` holds).
#[derive(Debug, Clone, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this folder instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn run(args: CrdsArgs) -> i32 {
    let crds = crd::all();
    let Some(dir) = args.out_dir else {
        print!("{}", crd::to_yaml(&crds));
        return 0;
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: {}: {e}", dir.display());
        return 2;
    }
    for c in &crds {
        let path = dir.join(crd::file_name(c));
        if let Err(e) = std::fs::write(&path, crd::document(c)) {
            eprintln!("error: {}: {e}", path.display());
            return 2;
        }
    }
    0
}
