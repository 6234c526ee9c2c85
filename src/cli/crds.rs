//! `mcp-operator crds`: print the CustomResourceDefinitions.

use crate::api::crd;
use std::path::PathBuf;

/// Print every CRD of the group as multi-document YAML (what `crds/` holds).
#[derive(Debug, Clone, clap::Args)]
pub struct CrdsArgs {
    /// Write one file per CRD into this folder instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The Service of the conversion webhook, as NAMESPACE/NAME
    /// (default: mcp-operator-system/mcp-operator-webhook).
    #[arg(long, value_name = "NS/NAME", value_parser = parse_service)]
    pub webhook_service: Option<crd::WebhookService>,
}

fn parse_service(s: &str) -> Result<crd::WebhookService, String> {
    let (namespace, name) = s.split_once('/').ok_or("expected NAMESPACE/NAME")?;
    let label = |v: &str| crate::admission::rules::dns1123_label(v).is_empty();
    if !label(namespace) || !label(name) {
        return Err(format!("{s:?}: namespace and name must be DNS-1123 labels"));
    }
    Ok(crd::WebhookService {
        namespace: namespace.into(),
        name: name.into(),
    })
}

pub fn run(args: CrdsArgs) -> i32 {
    let crds = crd::with_conversion_service(&args.webhook_service.unwrap_or_default());
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
