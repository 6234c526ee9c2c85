//! AdmissionReview plumbing: decoding a request body, and building the answers.
//!
//! The body is parsed once into a `serde_json::Value`; the object and old object are taken out
//! as raw JSON (so the JSON Patch we compute applies to exactly the bytes the API server sent,
//! `creationTimestamp: null` included), and the rest of the envelope is decoded into
//! `kube::core::admission` types.

use crate::admission::FieldErrors;
use crate::api::GROUP;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{DynamicObject, Status};
use serde_json::Value;

/// Why a body is not an AdmissionReview v1 with a request. Answered with HTTP 400.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("expected apiVersion {expected:?} and kind {kind:?}, got apiVersion {api_version:?} and kind {got_kind:?}", expected = META_API_VERSION_V1, kind = META_KIND)]
    WrongType {
        api_version: String,
        got_kind: String,
    },
    #[error("the review has no request")]
    NoRequest,
    #[error("request.{field} must be an object or null")]
    ObjectNotAnObject { field: &'static str },
    #[error("the review's request is malformed at {path}: {message}")]
    Envelope { path: String, message: String },
}

/// A decoded review: the typed request (with `object`/`oldObject` emptied) and the raw objects.
#[derive(Debug, Clone)]
pub struct DecodedReview {
    pub request: AdmissionRequest<DynamicObject>,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
}

/// Decodes an AdmissionReview v1 body.
///
/// Bounded: serde_json refuses nesting deeper than 128 levels, and the caller limits the size.
pub fn decode_review(body: &[u8]) -> Result<DecodedReview, ReviewError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ReviewError::Empty);
    }
    let mut review: Value = serde_json::from_slice(body).map_err(ReviewError::Json)?;
    let top = review.as_object_mut().ok_or(ReviewError::NotAnObject)?;
    let api_version = top
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = top.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version != META_API_VERSION_V1 || kind != META_KIND {
        return Err(ReviewError::WrongType {
            api_version: truncate(api_version, 64),
            got_kind: truncate(kind, 64),
        });
    }
    let request = match top.get_mut("request") {
        Some(Value::Object(request)) => request,
        _ => return Err(ReviewError::NoRequest),
    };
    let object = take_object(request, "object")?;
    let old_object = take_object(request, "oldObject")?;
    let typed: AdmissionReview<DynamicObject> =
        serde_path_to_error::deserialize(review).map_err(|e| ReviewError::Envelope {
            path: e.path().to_string(),
            message: truncate(&e.inner().to_string(), 256),
        })?;
    let request: AdmissionRequest<DynamicObject> =
        typed.try_into().map_err(|_| ReviewError::NoRequest)?;
    Ok(DecodedReview {
        request,
        object,
        old_object,
    })
}

fn take_object(
    request: &mut serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Option<Value>, ReviewError> {
    match request.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(ReviewError::ObjectNotAnObject { field }),
    }
}

/// `s` cut to at most `max` bytes on a character boundary, with `...` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

const MAX_DENIAL_BYTES: usize = 16 * 1024;
const MAX_CAUSES: usize = 100;

/// Denies with the API server's own shape for invalid objects: code 422, reason `Invalid`,
/// one cause per field error. kubectl then prints `Error from server (Invalid): ... admission
/// webhook "<name>" denied the request: spec.transport: Unsupported value: ...`.
pub fn deny_invalid(
    response: AdmissionResponse,
    kind: &str,
    name: &str,
    errors: &FieldErrors,
) -> AdmissionResponse {
    // Bounded: the API server passes the message to the client verbatim.
    let message = truncate(&errors.to_string(), MAX_DENIAL_BYTES);
    let causes = errors
        .iter()
        .take(MAX_CAUSES)
        .map(|e| StatusCause {
            reason: e.kind.cause_reason().to_string(),
            message: e.message(),
            field: e.field.clone(),
        })
        .collect();
    let mut response = response.deny(&message);
    response.result = Status::failure(&message, "Invalid")
        .with_code(422)
        .with_details(StatusDetails {
            name: name.to_string(),
            group: GROUP.to_string(),
            kind: kind.to_string(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        });
    response
}

/// Denies a review that is well-formed JSON but cannot be admitted (no object on CREATE, an
/// object without apiVersion/kind): code 400, reason `BadRequest`.
pub fn deny_bad_request(response: AdmissionResponse, message: &str) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result = Status::failure(message, "BadRequest").with_code(400);
    response
}

/// An AdmissionReview v1 answer as it goes on the wire.
///
/// kube-core's `AdmissionResponse` serializes `patch` (a Go `[]byte`) as an array of numbers;
/// the API server's decoder happens to accept that, but every other webhook (and the API
/// reference) uses the standard base64 string, which is also four times smaller. So the
/// envelope is written here, from the kube-core response.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireReview<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: WireResponse<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    audit_annotations: &'a std::collections::HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a Vec<String>>,
}

/// Serializes the answer as an AdmissionReview v1 (`patch` base64-encoded).
pub fn encode_review(response: &AdmissionResponse) -> Vec<u8> {
    use base64::Engine;
    let wire = WireReview {
        api_version: META_API_VERSION_V1,
        kind: META_KIND,
        response: WireResponse {
            uid: &response.uid,
            allowed: response.allowed,
            // The API server reads `status` only from denials.
            status: (!response.allowed).then_some(&response.result),
            // `with_patch` is the only way to set a patch, and it always sets type JSONPatch.
            patch: response
                .patch
                .as_ref()
                .map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
            patch_type: response.patch.as_ref().map(|_| "JSONPatch"),
            audit_annotations: &response.audit_annotations,
            warnings: response.warnings.as_ref(),
        },
    };
    // Only strings, numbers, maps and lists: serializing to a Vec cannot fail; should it ever,
    // the API server gets an empty body and applies the webhook's failurePolicy.
    serde_json::to_vec(&wire).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": GROUP, "version": "v1beta1", "kind": "MCPServer"},
                "resource": {"group": GROUP, "version": "v1beta1", "resource": "mcpservers"},
                "name": "fetch",
                "namespace": "default",
                "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": object,
                "oldObject": null,
                "dryRun": false
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_raw_object_is_kept_byte_for_byte() {
        let obj = json!({"apiVersion": "toolhive.stacklok.dev/v1beta1", "kind": "MCPServer",
            "metadata": {"name": "fetch", "creationTimestamp": null}, "spec": {"x": 1.5}});
        let decoded = decode_review(&review(obj.clone())).unwrap();
        assert_eq!(decoded.object, Some(obj));
        assert_eq!(decoded.old_object, None);
        assert_eq!(decoded.request.uid, "u-1");
        assert_eq!(decoded.request.types.api_version, META_API_VERSION_V1);
    }

    #[test]
    fn malformed_bodies_are_named() {
        assert!(matches!(decode_review(b"  "), Err(ReviewError::Empty)));
        assert!(matches!(
            decode_review(b"{\"a\""),
            Err(ReviewError::Json(_))
        ));
        assert!(matches!(
            decode_review(b"[]"),
            Err(ReviewError::NotAnObject)
        ));
        assert!(matches!(
            decode_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            Err(ReviewError::NoRequest)
        ));
        assert!(matches!(
            decode_review(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#),
            Err(ReviewError::WrongType { .. })
        ));
        let err = decode_review(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, ReviewError::Envelope { .. }), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            decode_review(deep.as_bytes()),
            Err(ReviewError::Json(_))
        ));
    }
}
