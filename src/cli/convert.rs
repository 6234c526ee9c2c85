//! `mcp-operator convert`: rewrite manifests to another API version, offline.

use crate::api::GROUP;
use crate::conversion::{convert, Version};
use crate::manifest;
use serde_json::Value;
use std::path::PathBuf;

/// Rewrite toolhive.stacklok.dev objects to another API version (the webhook's own conversion).
///
/// Documents of other groups, documents already at the target version, and comments between
/// documents are printed unchanged and in order; converted documents keep their leading comments.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvertArgs {
    /// Files or folders of YAML manifests; `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1.., required = true)]
    pub files: Vec<PathBuf>,
    /// The version to convert to.
    #[arg(long, value_parser = ["v1beta1", "v1alpha1"])]
    pub to: String,
}

pub fn run(args: ConvertArgs) -> i32 {
    let mut out = String::new();
    let mut failed = false;
    for path in &args.files {
        let files = match manifest::expand_paths(std::slice::from_ref(path)) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        };
        for (name, text) in files {
            match convert_text(&name, &text, &args.to) {
                Ok(converted) => {
                    // Files are concatenated into one stream: each starts a new document.
                    if !out.is_empty() && !converted.starts_with("---") {
                        out.push_str("---\n");
                    }
                    out.push_str(&converted);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
        }
    }
    print!("{out}");
    if failed {
        1
    } else {
        0
    }
}

/// Converts every document of one file, keeping the rest of the text as it was.
pub fn convert_text(file: &str, text: &str, to: &str) -> Result<String, String> {
    let target = Version::parse(to).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let value = manifest::document_value(serde_yaml::Deserializer::from_str(chunk.body))
            .map_err(|e| format!("{file}: document {index}: {e}"))?;
        let ours = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with(&format!("{GROUP}/")) && v != target.api_version());
        out.push_str(chunk.separator);
        if !ours {
            out.push_str(chunk.body);
            continue;
        }
        let converted =
            convert(&value, to).map_err(|e| format!("{file}: document {index}: {e}"))?;
        // Converting keeps inline blocks (in the stash or back in the spec); what they mean
        // for the object must not disappear with the rewrite.
        for w in crate::admission::inline_block_warnings(&converted) {
            eprintln!("Warning: {file}: document {index}: {w}");
        }
        if has_inner_comments(chunk.body) {
            eprintln!("Warning: {file}: document {index}: comments inside a converted document are not kept (those above it are)");
        }
        out.push_str(&leading_comments(chunk.body));
        // Quoted wherever kubectl's YAML 1.1 reader would see a boolean or a number.
        out.push_str(&crate::yaml::to_string(&converted));
    }
    Ok(out)
}

struct Chunk<'a> {
    /// The `---` line that opened the document (empty for the first one).
    separator: &'a str,
    body: &'a str,
}

/// Splits at `---` lines, keeping every byte so unconverted documents print unchanged.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut separator = "";
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let is_separator = line.starts_with("---") && line[3..].trim().is_empty();
        if is_separator {
            chunks.push(Chunk {
                separator,
                body: &text[start..offset],
            });
            separator = &text[offset..offset + line.len()];
            start = offset + line.len();
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        separator,
        body: &text[start..],
    });
    chunks.retain(|c| !(c.separator.is_empty() && c.body.is_empty()));
    chunks
}

/// True when a comment follows the document's first non-comment line (a whole-line comment, or
/// ` #` after a value outside quotes, roughly: a warning, so a false alarm costs little).
fn has_inner_comments(body: &str) -> bool {
    body.lines()
        .skip_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .any(|l| {
            let t = l.trim_start();
            t.starts_with('#') || (l.contains(" #") && !l.contains('"') && !l.contains('\''))
        })
}

fn leading_comments(body: &str) -> String {
    body.lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}
