//! Reading manifests: files, folders and stdin; multi-document YAML or JSON; bounded.

use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file larger than this is refused before parsing (a manifest folder, not a data dump).
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// The API server refuses request bodies over 3 MiB; an object larger than that cannot exist.
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;
/// Folder recursion stops here, so a symlink loop cannot hang `check`.
const MAX_DIR_DEPTH: usize = 16;

/// One object read from a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it came from (`-` for stdin).
    pub file: String,
    /// Position of the document in its file, from 0 (items of a `List` count one by one).
    pub index: usize,
    pub value: Value,
}

/// Why input could not be read; each names the file and, where known, the position.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {size} bytes is more than the {limit} bytes a manifest file may have")]
    FileTooLarge { file: String, size: u64, limit: u64 },
    #[error("{file}:{line}:{column}: not valid UTF-8")]
    NotUtf8 {
        file: String,
        line: usize,
        column: usize,
    },
    #[error("{file}:{line}:{column}: YAML syntax error: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: document {index}: {message}")]
    Document {
        file: String,
        index: usize,
        message: String,
    },
}

/// The text of every manifest file under `paths` (files, folders recursively, `-` for stdin),
/// with its name, bounded and UTF-8 checked like [`read_paths`].
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<(String, String)>, ManifestError> {
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(("-".to_string(), read_stdin()?));
            continue;
        }
        for file in manifest_files(p, 0, &mut seen)? {
            let name = file.display().to_string();
            let bytes = read_bounded(&file, &name)?;
            out.push((name.clone(), decode_utf8(&name, bytes)?));
        }
    }
    Ok(out)
}

/// Reads every manifest under `paths` (files, folders recursively, `-` for stdin), in order.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Document>, ManifestError> {
    let mut docs = Vec::new();
    for (name, text) in expand_paths(paths)? {
        docs.extend(parse_documents(&name, &text)?);
    }
    Ok(docs)
}

fn read_stdin() -> Result<String, ManifestError> {
    let mut buf = Vec::new();
    std::io::stdin()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ManifestError::Io {
            file: "-".into(),
            source,
        })?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(ManifestError::FileTooLarge {
            file: "-".into(),
            size: buf.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    decode_utf8("-", buf)
}

/// Folders and files already walked, by their real path: symlinks may lead back into a folder
/// being walked (a loop) or to a file read already, and each file is read once.
#[derive(Default)]
struct Seen {
    dirs: std::collections::HashSet<PathBuf>,
    files: std::collections::HashSet<PathBuf>,
}

impl Seen {
    /// True the first time `p` (resolved) is met; a path that cannot be resolved counts as new.
    fn first_visit(set: &mut std::collections::HashSet<PathBuf>, p: &Path) -> bool {
        std::fs::canonicalize(p).map_or(true, |real| set.insert(real))
    }
}

/// A file as given, or the `.yaml`/`.yml`/`.json` files below a folder, sorted.
fn manifest_files(p: &Path, depth: usize, seen: &mut Seen) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        file: p.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(p).map_err(io)?;
    if !meta.is_dir() {
        let first = Seen::first_visit(&mut seen.files, p);
        return Ok(if first {
            vec![p.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    if depth >= MAX_DIR_DEPTH || !Seen::first_visit(&mut seen.dirs, p) {
        return Ok(Vec::new());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            out.extend(manifest_files(&e, depth + 1, seen)?);
        } else if matches!(
            e.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) && Seen::first_visit(&mut seen.files, &e)
        {
            out.push(e);
        }
    }
    Ok(out)
}

fn read_bounded(path: &Path, name: &str) -> Result<Vec<u8>, ManifestError> {
    let io = |source| ManifestError::Io {
        file: name.to_string(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ManifestError::FileTooLarge {
            file: name.into(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    Ok(buf)
}

/// UTF-8 or an error at the line and column of the first bad byte.
pub fn decode_utf8(file: &str, bytes: Vec<u8>) -> Result<String, ManifestError> {
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        ManifestError::NotUtf8 {
            file: file.into(),
            line,
            column: good.len() - line_start + 1,
        }
    })
}

/// Splits a multi-document YAML (or JSON) text into objects; `List` kinds are expanded.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let value = document_value(de).map_err(|e| syntax_error(file, &e))?;
        match value {
            Value::Null => continue,
            Value::Object(_) => {}
            _ => {
                return Err(ManifestError::Document {
                    file: file.into(),
                    index: out.len(),
                    message:
                        "not a Kubernetes object (expected a mapping with apiVersion and kind)"
                            .into(),
                })
            }
        }
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            for item in value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                out.push(Document {
                    file: file.into(),
                    index: out.len(),
                    value: item,
                });
            }
        } else {
            out.push(Document {
                file: file.into(),
                index: out.len(),
                value,
            });
        }
    }
    for d in &out {
        let size = serde_json::to_vec(&d.value).map_or(0, |v| v.len());
        if size > MAX_OBJECT_BYTES {
            return Err(ManifestError::Document {
                file: file.into(),
                index: d.index,
                message: format!("the object is {size} bytes; Kubernetes refuses objects over {MAX_OBJECT_BYTES} bytes"),
            });
        }
    }
    Ok(out)
}

/// One YAML document as JSON, with merge keys (`<<: *defaults`) applied as kubectl applies
/// them: a manifest kubectl accepts must mean the same here.
pub fn document_value(de: serde_yaml::Deserializer<'_>) -> Result<Value, serde_yaml::Error> {
    let mut yaml = serde_yaml::Value::deserialize(de)?;
    yaml.apply_merge()?;
    serde_json::to_value(yaml).map_err(serde::de::Error::custom)
}

fn syntax_error(file: &str, e: &serde_yaml::Error) -> ManifestError {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    // serde_yaml appends " at line X column Y" itself; the position is already in the prefix.
    let message = e.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    ManifestError::Syntax {
        file: file.into(),
        line,
        column,
        message,
    }
}

/// Parses one YAML document (e.g. an embedded `configYAML`) into JSON; errors carry the position.
pub fn parse_yaml_value(text: &str) -> Result<Value, String> {
    let mut docs = serde_yaml::Deserializer::from_str(text);
    let first = docs.next().ok_or_else(|| "empty document".to_string())?;
    let value = Value::deserialize(first).map_err(|e| e.to_string())?;
    if docs.next().is_some() {
        return Err("more than one YAML document".into());
    }
    Ok(value)
}
