//! `mcp-operator check`: offline admission of manifests, exactly as the webhook would answer.

use crate::admission::{self, AdmitError, Operation, Verdict};
use crate::api;
use crate::manifest::{self, Document};
use serde::Serialize;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;

/// Default and validate every toolhive.stacklok.dev object in the given manifests.
///
/// Exit status: 0 when every object is accepted, 1 when any is rejected, 2 when input cannot be
/// read (the message names the file and, for YAML syntax errors, the line and column).
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Files or folders of YAML/JSON manifests (folders are read recursively); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "PATH", num_args = 1.., required_unless_present = "paths")]
    pub files: Vec<PathBuf>,
    /// The same as `-f`, for `mcp-operator check examples/`.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// One object's outcome, the element of `--output json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub file: String,
    pub index: usize,
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub allowed: bool,
    pub warnings: Vec<String>,
    pub errors: Vec<ErrorReport>,
    pub defaulted: Value,
}

#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub field: String,
    /// The API server's cause type, e.g. `FieldValueInvalid`.
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: String,
    /// The whole line as the API server would print it.
    pub message: String,
}

pub fn run(args: CheckArgs) -> i32 {
    let inputs: Vec<PathBuf> = args.files.iter().chain(&args.paths).cloned().collect();
    let docs = match manifest::read_paths(&inputs) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut reports = Vec::new();
    let mut notes = Vec::new();
    for doc in &docs {
        match check_document(doc) {
            Ok(mut r) => {
                r.warnings.extend(cross_object_warnings(doc, &docs));
                reports.push(r)
            }
            Err(note) => notes.push(note),
        }
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    let written = match args.output {
        Format::Text => write_text(&mut out, &reports, &notes),
        Format::Json => write_json(&mut out, &reports),
    };
    if written.is_err() {
        return 2;
    }
    if args.output == Format::Json {
        for n in &notes {
            eprintln!("{n}");
        }
    }
    if reports.iter().all(|r| r.allowed) {
        0
    } else {
        1
    }
}

/// Admits one document as a CREATE; objects of other groups come back as a note.
pub fn check_document(doc: &Document) -> Result<Report, String> {
    let v = &doc.value;
    let verdict = match admission::admit(v, None, Operation::Create) {
        Ok(verdict) => verdict,
        Err(AdmitError::NoTypeMeta) => {
            return Err(format!(
                "{}: document {}: skipped: no apiVersion and kind",
                doc.file, doc.index
            ))
        }
        Err(AdmitError::NotServed { api_version, kind }) => {
            let ours = api_version.starts_with(&format!("{}/", api::GROUP));
            let why = if ours {
                "not served by this operator"
            } else {
                "not a toolhive.stacklok.dev object"
            };
            return Err(format!(
                "{}/{} ({}): skipped: {api_version} {kind} is {why}",
                kind.to_lowercase(),
                name_of(v),
                namespace_of(v)
            ));
        }
    };
    Ok(report(doc, verdict))
}

/// What can be said of an object with the other objects of the same inputs: an MCPServer's
/// inline tools against the MCPToolConfig it references, when that is among them.
fn cross_object_warnings(doc: &Document, docs: &[Document]) -> Vec<String> {
    let v = &doc.value;
    if v.get("kind").and_then(Value::as_str) != Some("MCPServer") {
        return Vec::new();
    }
    let Some(wanted) = v
        .pointer("/spec/toolConfigRef/name")
        .and_then(Value::as_str)
    else {
        return Vec::new();
    };
    let ours = |o: &Value| {
        o.get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|a| a.starts_with(&format!("{}/", api::GROUP)))
    };
    let config = docs.iter().map(|d| &d.value).find(|o| {
        ours(o)
            && o.get("kind").and_then(Value::as_str) == Some("MCPToolConfig")
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(wanted)
            && namespace_of(o) == namespace_of(v)
    });
    config.map_or_else(Vec::new, |c| admission::tools_against_config(v, c))
}

fn report(doc: &Document, verdict: Verdict) -> Report {
    let v = &doc.value;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Report {
        file: doc.file.clone(),
        index: doc.index,
        api_version: s("apiVersion"),
        kind: s("kind"),
        namespace: namespace_of(v),
        name: name_of(v),
        allowed: verdict.allowed(),
        errors: verdict
            .errors
            .iter()
            .map(|e| ErrorReport {
                field: e.field.clone(),
                kind: e.kind.cause_reason().to_string(),
                detail: e.detail.clone(),
                message: e.to_string(),
            })
            .collect(),
        warnings: verdict.warnings,
        defaulted: verdict.defaulted,
    }
}

fn name_of(v: &Value) -> String {
    let meta = v.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    get("name")
        .or(get("generateName"))
        .unwrap_or("<unnamed>")
        .to_string()
}

/// Like kubectl without `-n`: an object without a namespace lands in `default`.
fn namespace_of(v: &Value) -> String {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

fn write_text(out: &mut impl Write, reports: &[Report], notes: &[String]) -> std::io::Result<()> {
    for r in reports {
        let verdict = if r.allowed { "accepted" } else { "rejected" };
        writeln!(
            out,
            "{}/{} ({}): {verdict}",
            r.kind.to_lowercase(),
            r.name,
            r.namespace
        )?;
        for e in &r.errors {
            writeln!(out, "  {}", e.message)?;
        }
        for w in &r.warnings {
            writeln!(out, "  Warning: {w}")?;
        }
    }
    for n in notes {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

fn write_json(out: &mut impl Write, reports: &[Report]) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, reports)?;
    writeln!(out)
}
