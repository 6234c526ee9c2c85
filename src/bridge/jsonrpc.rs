//! Just enough JSON-RPC 2.0 for a pass-through proxy.
//!
//! The bridge forwards the server's messages byte for byte and only splices the `id` back to the
//! client's own; everything else (unknown fields, key order, future methods) goes through untouched.
//! Messages from clients are decoded into a [`Value`] because they must be validated anyway.

use bytes::Bytes;
use serde_json::Value;

/// Standard JSON-RPC error codes, plus the ones the MCP SDKs use for transport errors.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Used by the SDKs for "session not found".
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// Used by the SDKs for transport-level failures (bad headers, no session).
    pub const TRANSPORT: i64 = -32000;
}

/// A JSON-RPC message from a client, validated and classified.
#[derive(Debug, Clone)]
pub enum ClientMessage {
    /// Has `id` and `method`.
    Request {
        id: Value,
        method: String,
        body: Value,
    },
    /// Has `method` and no `id`.
    Notification { method: String, body: Value },
    /// Has `id` and `result` or `error` (an answer to a server-to-client request).
    Response,
}

/// Why a client body is not a message we accept; each maps to one HTTP status and JSON-RPC code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("parse error: the body is not valid JSON")]
    NotJson,
    #[error("invalid request: JSON-RPC batches are not supported")]
    Batch,
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// MCP params are always named: positional (array) params are refused before any check
    /// (the tools allow-list among them) could be skipped. Carries the request's raw id.
    #[error("invalid params: \"params\" must be an object")]
    ParamsNotObject(Option<Bytes>),
}

impl ParseError {
    pub fn code(&self) -> i64 {
        match self {
            ParseError::NotJson => code::PARSE_ERROR,
            ParseError::Batch | ParseError::Invalid(_) => code::INVALID_REQUEST,
            ParseError::ParamsNotObject(_) => code::INVALID_PARAMS,
        }
    }

    /// The raw id of the request the error answers, when it is known.
    pub fn id(&self) -> Option<&[u8]> {
        match self {
            ParseError::ParamsNotObject(id) => id.as_deref(),
            _ => None,
        }
    }
}

/// Validates one client body: a single JSON object with `"jsonrpc": "2.0"` and a valid shape.
pub fn parse_client(body: &[u8]) -> Result<ClientMessage, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ParseError::NotJson)?;
    let obj = match &value {
        Value::Object(obj) => obj,
        Value::Array(_) => return Err(ParseError::Batch),
        _ => return Err(ParseError::Invalid("a message must be a JSON object")),
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(ParseError::Invalid("\"jsonrpc\" must be \"2.0\""));
    }
    let id = match obj.get("id") {
        None => None,
        Some(id @ Value::String(_)) => Some(id.clone()),
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => Some(id.clone()),
        Some(_) => return Err(ParseError::Invalid("\"id\" must be a string or an integer")),
    };
    let method = match obj.get("method") {
        None => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(ParseError::Invalid("\"method\" must be a string")),
    };
    match obj.get("params") {
        None | Some(Value::Object(_)) => {}
        Some(Value::Array(_)) => {
            let id = id.as_ref().map(|id| Bytes::from(id.to_string()));
            return Err(ParseError::ParamsNotObject(id));
        }
        Some(_) => return Err(ParseError::Invalid("\"params\" must be an object")),
    }
    match (id, method) {
        (Some(id), Some(method)) => Ok(ClientMessage::Request {
            id,
            method,
            body: value,
        }),
        (None, Some(method)) => Ok(ClientMessage::Notification {
            method,
            body: value,
        }),
        (Some(_), None) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(ClientMessage::Response)
        }
        _ => Err(ParseError::Invalid(
            "not a request, notification or response",
        )),
    }
}

/// Serializes a JSON-RPC error response. `id` is the raw JSON text of the id, if any (an error
/// with no request id leaves `id` out, as MCP asks, rather than sending `null`).
pub fn error_response(id: Option<&[u8]>, code: i64, message: &str) -> Bytes {
    let message = Value::String(message.to_owned()).to_string();
    let mut out = Vec::with_capacity(64 + message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    if let Some(id) = id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(id);
        out.push(b',');
    }
    out.extend_from_slice(format!("\"error\":{{\"code\":{code},\"message\":").as_bytes());
    out.extend_from_slice(message.as_bytes());
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// Serializes a success response from an already serialized id and result.
pub fn result_response(id: &[u8], result: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(32 + id.len() + result.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
    Bytes::from(out)
}

/// The envelope of a message from the server: what the hub needs to route it.
#[derive(Debug, serde::Deserialize)]
pub struct ServerEnvelope {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub result: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub error: Option<serde::de::IgnoredAny>,
}

/// Replaces the value of the top-level `id` of a JSON object with `new_id` (raw JSON text),
/// keeping every other byte. Falls back to a decode/encode round trip when the id cannot be found
/// by the scanner (for example a key spelled with escapes). `None` when `msg` is not an object.
pub fn splice_id(msg: &[u8], new_id: &[u8]) -> Option<Bytes> {
    if let Some((start, end)) = top_level_value_span(msg, b"id") {
        let mut out = Vec::with_capacity(msg.len() - (end - start) + new_id.len());
        out.extend_from_slice(&msg[..start]);
        out.extend_from_slice(new_id);
        out.extend_from_slice(&msg[end..]);
        return Some(Bytes::from(out));
    }
    let mut value: Value = serde_json::from_slice(msg).ok()?;
    let obj = value.as_object_mut()?;
    obj.insert("id".into(), serde_json::from_slice(new_id).ok()?);
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// The byte range of the value of top-level key `key` in a JSON object, found without decoding
/// the rest. Only meant for input that is already known to be valid JSON; returns `None` on
/// anything unexpected rather than guessing.
pub fn top_level_value_span(buf: &[u8], key: &[u8]) -> Option<(usize, usize)> {
    let mut i = skip_ws(buf, 0);
    if buf.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        i = skip_ws(buf, i);
        match buf.get(i)? {
            b'}' => return None,
            b'"' => {}
            _ => return None,
        }
        let key_start = i + 1;
        i = skip_string(buf, i)?;
        let this_key = &buf[key_start..i - 1];
        i = skip_ws(buf, i);
        if buf.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(buf, i + 1);
        let value_start = i;
        i = skip_value(buf, i)?;
        if this_key == key {
            return Some((value_start, i));
        }
        i = skip_ws(buf, i);
        match buf.get(i)? {
            b',' => i += 1,
            _ => return None,
        }
    }
}

fn skip_ws(buf: &[u8], mut i: usize) -> usize {
    while matches!(buf.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// `buf[i]` is the opening quote; returns the index just past the closing quote.
fn skip_string(buf: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match buf.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Returns the index just past the value starting at `buf[i]`.
fn skip_value(buf: &[u8], mut i: usize) -> Option<usize> {
    match buf.get(i)? {
        b'"' => skip_string(buf, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match buf.get(i)? {
                    b'"' => {
                        i = skip_string(buf, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while let Some(c) = buf.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                    break;
                }
                i += 1;
            }
            Some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_the_top_level_id_only() {
        let msg = br#"{"jsonrpc":"2.0","result":{"id":7,"s":"a\"}id"},"id":42}"#;
        let out = splice_id(msg, br#""client-1""#).unwrap();
        assert_eq!(
            &out[..],
            br#"{"jsonrpc":"2.0","result":{"id":7,"s":"a\"}id"},"id":"client-1"}"#
        );
    }

    #[test]
    fn splice_falls_back_for_escaped_keys() {
        let msg = br#"{"\u0069d":3,"result":{}}"#;
        let out = splice_id(msg, b"1").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn classifies_client_messages() {
        assert_eq!(parse_client(b"nope").unwrap_err(), ParseError::NotJson);
        assert_eq!(parse_client(b"[]").unwrap_err(), ParseError::Batch);
        assert!(parse_client(br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).is_err());
        assert!(parse_client(br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#).is_err());
        assert!(parse_client(br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#).is_err());
        assert!(matches!(
            parse_client(br#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#),
            Ok(ClientMessage::Request { .. })
        ));
        assert!(matches!(
            parse_client(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(ClientMessage::Notification { .. })
        ));
        assert!(matches!(
            parse_client(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            Ok(ClientMessage::Response)
        ));
    }

    proptest::proptest! {
        #[test]
        fn the_scanner_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = top_level_value_span(&bytes, b"id");
            let _ = splice_id(&bytes, b"1");
            let _ = parse_client(&bytes);
        }

        #[test]
        fn splicing_replaces_only_the_id(
            fields in proptest::collection::btree_map("[a-z\\\\\"{}]{0,6}", "[ -~]{0,12}", 0..6),
            id in proptest::num::i64::ANY,
        ) {
            let mut obj = serde_json::Map::new();
            for (k, v) in &fields {
                obj.insert(k.clone(), Value::String(v.clone()));
            }
            obj.insert("id".into(), Value::from(id));
            let msg = serde_json::to_vec(&Value::Object(obj.clone())).unwrap();
            let out: Value = serde_json::from_slice(&splice_id(&msg, br#""x""#).unwrap()).unwrap();
            obj.insert("id".into(), Value::from("x"));
            proptest::prop_assert_eq!(out, Value::Object(obj));
        }
    }

    #[test]
    fn error_responses_leave_out_a_missing_id() {
        let e = error_response(None, code::PARSE_ERROR, "bad \"json\"");
        let v: Value = serde_json::from_slice(&e).unwrap();
        assert!(v.get("id").is_none());
        assert_eq!(v["error"]["code"], -32700);
    }
}
