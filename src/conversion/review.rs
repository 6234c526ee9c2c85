//! ConversionReview plumbing: the body of `POST /convert`, as pure functions.

use super::{convert, ConversionError, Version};
use crate::admission::{self, Operation};
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::Status;
use serde_json::Value;

/// Answers one ConversionReview: every object converted, or a `Failure` naming the first
/// object that is not valid at its own version. Valid data never fails.
pub fn handle(review: ConversionReview) -> ConversionReview {
    let request = match ConversionRequest::from_review(review) {
        Ok(r) => r,
        Err(_) => {
            return ConversionResponse::invalid(
                Status::failure("ConversionReview has no request", "BadRequest").with_code(400),
            )
            .into_review()
        }
    };
    let desired = request.desired_api_version.clone();
    let objects = request.objects.clone();
    let response = ConversionResponse::for_request(request);
    match convert_all(&objects, &desired) {
        Ok(converted) => response.success(converted),
        Err(message) => response.failure(Status::failure(&message, "Invalid").with_code(422)),
    }
    .into_review()
}

/// Converts every object; the error names the object (index, kind, namespace/name) and why.
pub fn convert_all(objects: &[Value], desired: &str) -> Result<Vec<Value>, String> {
    Version::parse(desired).map_err(|e| e.to_string())?;
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            convert_checked(o, desired).map_err(|e| format!("object {i} ({}): {e}", describe(o)))
        })
        .collect()
}

/// Converts one object; when conversion is impossible, says whether the object was invalid at
/// its own version (the only case the API server should ever see fail).
fn convert_checked(obj: &Value, desired: &str) -> Result<Value, ConversionError> {
    convert(obj, desired).map_err(|e| match admission::admit(obj, None, Operation::Create) {
        Ok(v) if !v.allowed() => {
            ConversionError::Invalid(format!("not valid at its own version: {}", v.errors))
        }
        _ => e,
    })
}

fn describe(o: &Value) -> String {
    let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("?");
    format!(
        "{} {}/{}",
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name")
    )
}
