//! ConversionReview plumbing: the body of `POST /convert`, as pure functions.

use super::{convert, ConversionError, Version};
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::Status;
use serde_json::Value;

/// Says why an object is not valid at its own version (`None`: it is valid). The webhook passes
/// the admission core here; conversion itself knows nothing of admission.
pub type Explain = fn(&Value) -> Option<String>;

/// Answers one ConversionReview: every object converted, or a `Failure` naming the first
/// object that is not valid at its own version (as `explain` judges it). Valid data never fails.
pub fn handle(review: ConversionReview, explain: Explain) -> ConversionReview {
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
    match convert_all(&objects, &desired, explain) {
        Ok(converted) => response.success(converted),
        Err(message) => response.failure(Status::failure(&message, "Invalid").with_code(422)),
    }
    .into_review()
}

/// Converts every object; the error names the object (index, kind, namespace/name) and why.
pub fn convert_all(
    objects: &[Value],
    desired: &str,
    explain: Explain,
) -> Result<Vec<Value>, String> {
    Version::parse(desired).map_err(|e| e.to_string())?;
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            convert_checked(o, desired, explain)
                .map_err(|e| format!("object {i} ({}): {e}", describe(o)))
        })
        .collect()
}

/// Converts one object; when conversion is impossible, says whether the object was invalid at
/// its own version (the only case the API server should ever see fail).
fn convert_checked(obj: &Value, desired: &str, explain: Explain) -> Result<Value, ConversionError> {
    convert(obj, desired).map_err(|e| match explain(obj) {
        Some(why) => ConversionError::Invalid(format!("not valid at its own version: {why}")),
        None => e,
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
