//! `mcp-operator render`: the objects the operator would create, without a cluster.

use crate::admission::{self, Operation};
use crate::api::v1beta1::MCPServer;
use crate::controller::children::{self, Inputs};
use crate::conversion;
use crate::manifest;
use serde_json::Value;
use std::path::PathBuf;

/// The default image of the bridge init container (the operator's own image).
pub fn default_bridge_image() -> String {
    format!(
        "ghcr.io/mcp-operator/mcp-operator:{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Print the children (ConfigMap, ServiceAccount, Service, Deployment) the reconciler would
/// apply for every MCPServer in the input, after defaulting and validation.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Files or folders of manifests; `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// Image of the bridge init container.
    #[arg(long, env = "MCP_OPERATOR_BRIDGE_IMAGE", default_value_t = default_bridge_image())]
    pub bridge_image: String,
}

pub fn run(args: RenderArgs) -> i32 {
    let docs = match manifest::read_paths(&args.files) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut out = String::new();
    let mut rejected = false;
    for doc in docs
        .iter()
        .filter(|d| d.value.get("kind").and_then(Value::as_str) == Some("MCPServer"))
    {
        match render_one(&doc.value, &args.bridge_image) {
            Ok(text) => out.push_str(&text),
            Err(why) => {
                eprintln!("{}: document {}: {why}", doc.file, doc.index);
                rejected = true;
            }
        }
    }
    print!("{out}");
    i32::from(rejected)
}

/// The children of one MCPServer (any served version) as YAML documents.
pub fn render_one(obj: &Value, bridge_image: &str) -> Result<String, String> {
    let verdict = admission::admit(obj, None, Operation::Create).map_err(|e| e.to_string())?;
    if !verdict.allowed() {
        return Err(format!("rejected: {}", verdict.errors));
    }
    let beta = conversion::convert(&verdict.defaulted, "v1beta1").map_err(|e| e.to_string())?;
    let server: MCPServer = serde_json::from_value(beta).map_err(|e| e.to_string())?;
    let (command, note) = match &server.spec.command {
        Some(c) => (c.clone(), None),
        None => (
            vec![format!("<entrypoint of {}>", server.spec.image)],
            Some(format!(
                "# spec.command is not set: in the cluster the operator reads the entrypoint of {} from its registry.\n",
                server.spec.image
            )),
        ),
    };
    let inputs = Inputs {
        bridge_image: bridge_image.to_string(),
        command,
        ..Inputs::default()
    };
    let mut text = String::new();
    for child in children::desired(&server, &inputs).objects() {
        text.push_str("---\n");
        if child.get("kind").and_then(Value::as_str) == Some("Deployment") {
            text.push_str(note.as_deref().unwrap_or_default());
        }
        text.push_str(&serde_yaml::to_string(&child).map_err(|e| e.to_string())?);
    }
    Ok(text)
}
