//! Writing YAML that every reader takes the same way.
//!
//! kubectl reads manifests with a YAML 1.1 parser, where `no`, `on`, `off`, `y`, `1_000` and
//! `1:20` are booleans and numbers; YAML 1.2 emitters (serde_yaml among them) write those
//! strings bare, because in 1.2 they are strings. A file we print must mean the same to both, so
//! here a string is written bare only when it is plainly a string under either version, and
//! double-quoted (JSON escaping, which YAML's double-quoted style shares) otherwise.
//! Multi-line strings are literal blocks, so an embedded `configYAML` stays readable.

use serde_json::Value;
use std::fmt::Write;

/// One YAML document (without the `---` line) for `value`, ending in a newline.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        scalar => {
            write_inline(&mut out, scalar, 0);
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a sequence item sits after its "- ".
        if i > 0 || out.ends_with('\n') || out.is_empty() {
            pad(out, indent);
        }
        out.push_str(&scalar_string(key));
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || out.ends_with('\n') || out.is_empty() {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, indent + 2),
            scalar => {
                write_inline(out, scalar, indent + 2);
                out.push('\n');
            }
        }
    }
}

fn write_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, indent + 2);
        }
        // Lists at the key's own indentation, as kubectl and most manifests write them.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, indent);
        }
        scalar => {
            out.push(' ');
            write_inline(out, scalar, indent + 2);
            out.push('\n');
        }
    }
}

/// A scalar, an empty map or an empty list, on the current line; a block string continues on
/// the following lines at `indent`.
fn write_inline(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => match literal_block(s) {
            Some(header) => {
                out.push_str(header);
                for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
                    out.push('\n');
                    if !line.is_empty() {
                        pad(out, indent);
                        out.push_str(line);
                    }
                }
            }
            None => out.push_str(&scalar_string(s)),
        },
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn pad(out: &mut String, indent: usize) {
    let _ = write!(out, "{:indent$}", "");
}

/// The literal-block header for a multi-line string that a block can carry exactly, if any:
/// `|` keeps one final newline, `|-` none. Anything unusual (leading spaces, which would need
/// an indentation indicator; carriage returns; other control characters; several final
/// newlines) is left to the double-quoted style.
fn literal_block(s: &str) -> Option<&'static str> {
    let body = s.strip_suffix('\n').unwrap_or(s);
    if !body.contains('\n') || body.ends_with('\n') || body.starts_with(' ') {
        return None;
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return None;
    }
    // Tabs or spaces alone on a line would be read back as part of the indentation.
    if body.lines().any(|l| !l.is_empty() && l.trim().is_empty()) {
        return None;
    }
    Some(if s.ends_with('\n') { "|" } else { "|-" })
}

/// `s` bare when both YAML versions read it as this very string, else double-quoted.
fn scalar_string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Words YAML 1.1 reads as booleans or null (any case), besides 1.2's `true`/`false`/`null`.
const RESERVED: &[&str] = &["y", "yes", "n", "no", "true", "false", "on", "off", "null"];

/// Plain only if it starts with a letter (so it cannot be a number, a date, an anchor, a tag,
/// an indicator or `<<`), uses only characters that never start or end a construct, and is not
/// one of the reserved words.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !first.is_ascii_alphabetic() || s.ends_with([' ', ':']) {
        return false;
    }
    if RESERVED.iter().any(|w| s.eq_ignore_ascii_case(w)) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.contains("  ") {
        return false;
    }
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-:@+=, ".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Strings a YAML 1.1 reader would take for something else, and ordinary ones.
    #[test]
    fn ambiguous_strings_are_quoted_and_plain_ones_are_not() {
        let cases = [
            ("no", "\"no\""),
            ("On", "\"On\""),
            ("OFF", "\"OFF\""),
            ("y", "\"y\""),
            ("1_000", "\"1_000\""),
            ("1:20", "\"1:20\""),
            ("0x1F", "\"0x1F\""),
            ("1e3", "\"1e3\""),
            (".inf", "\".inf\""),
            ("2026-12-05", "\"2026-12-05\""),
            ("~", "\"~\""),
            ("", "\"\""),
            ("<<", "\"<<\""),
            ("*alias", "\"*alias\""),
            ("- item", "\"- item\""),
            ("a: b", "\"a: b\""),
            ("x #comment", "\"x #comment\""),
            ("trailing ", "\"trailing \""),
            ("fetch", "fetch"),
            ("docker.io/mcp/fetch:1.0", "docker.io/mcp/fetch:1.0"),
            ("app.kubernetes.io/name", "app.kubernetes.io/name"),
            ("Fetches a URL, politely", "Fetches a URL, politely"),
            ("nothing", "nothing"),
        ];
        for (s, want) in cases {
            assert_eq!(scalar_string(s), want, "{s:?}");
        }
    }

    /// Whatever is written reads back (with a YAML 1.2 reader) as the same value.
    #[test]
    fn documents_read_back_equal() {
        let docs = [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"on": "off", "a": "1:20"}},
                   "data": {"config.yaml": "sources:\n  - name: a\n    file:\n      path: /data/x.json\n", "no-newline": "a\nb",
                            "blank lines": "a\n\nb\n", "two newlines": "a\nb\n\n", "indented": "  a\nb", "cr": "a\r\nb", "tab": "a\n\tb\n", "spaces line": "a\n  \nb"}}),
            json!({"spec": {"args": ["--port=8080", "no", "-v", "1_000"], "env": [{"name": "A", "value": "yes"}, {"name": "B", "value": ""}],
                   "nested": [[1, "on"], [], {}], "empty": {}, "none": [], "n": null, "t": true, "f": 1.5, "i": -3,
                   "list of maps": [{"a": 1, "b": {"c": [1, 2]}}, {"d": "e"}], "unicode": "héllo\u{1F600}", "ctl": "bell\u{7}"}}),
            json!(["a", {"b": "no"}]),
            json!("scalar"),
            json!({}),
        ];
        for doc in docs {
            let text = to_string(&doc);
            let back: Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(back, doc, "\n{text}");
        }
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        let text = to_string(&json!({"data": {"config.yaml": "a: 1\nb: 2\n"}}));
        assert_eq!(text, "data:\n  config.yaml: |\n    a: 1\n    b: 2\n");
    }
}
