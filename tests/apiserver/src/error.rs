//! API errors, rendered as `metav1.Status` bodies the way kube-apiserver renders them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// An error answered to the client as a `Status` object with an HTTP code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `details` of the Status (name, group, kind, causes), when known.
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn not_found(qualified: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found")).with_details(
            json!({"name": name, "kind": kind_part(qualified), "group": group_part(qualified)}),
        )
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(qualified: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(
            json!({"name": name, "kind": kind_part(qualified), "group": group_part(qualified)}),
        )
    }

    pub fn conflict(qualified: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
        .with_details(json!({"name": name, "kind": kind_part(qualified), "group": group_part(qualified)}))
    }

    /// 422 Invalid with field causes, message `<Kind>.<group> "<name>" is invalid: <causes>`.
    pub fn invalid(kind_group: &str, name: &str, causes: Vec<FieldCause>) -> Self {
        let joined = if causes.len() == 1 {
            causes[0].text()
        } else {
            format!(
                "[{}]",
                causes
                    .iter()
                    .map(FieldCause::text)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (kind, group) = match kind_group.split_once('.') {
            Some((k, g)) => (k.to_string(), g.to_string()),
            None => (kind_group.to_string(), String::new()),
        };
        Self::new(422, "Invalid", format!("{kind_group} \"{name}\" is invalid: {joined}")).with_details(json!({
            "name": name, "group": group, "kind": kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message_with_value(), "field": c.field})).collect::<Vec<_>>()
        }))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn kind_part(qualified: &str) -> &str {
    qualified
        .split_once('.')
        .map(|(k, _)| k)
        .unwrap_or(qualified)
}

fn group_part(qualified: &str) -> &str {
    qualified.split_once('.').map(|(_, g)| g).unwrap_or("")
}

/// One field error of an Invalid status (`spec.port: Invalid value: 70000: must be ...`).
#[derive(Debug, Clone)]
pub struct FieldCause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueForbidden`...
    pub reason: String,
    pub field: String,
    /// Rendered value for "Invalid value: X" messages, if any.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldCause {
    pub fn invalid(field: &str, value: &Value, detail: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueInvalid".into(),
            field: field.to_string(),
            value: Some(render_value(value)),
            detail: detail.into(),
        }
    }
    pub fn required(field: &str) -> Self {
        Self {
            reason: "FieldValueRequired".into(),
            field: field.to_string(),
            value: None,
            detail: String::new(),
        }
    }
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self {
            reason: "FieldValueForbidden".into(),
            field: field.to_string(),
            value: None,
            detail: detail.into(),
        }
    }
    pub fn not_supported(field: &str, value: &Value, allowed: &[Value]) -> Self {
        let list = allowed
            .iter()
            .map(render_value)
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            reason: "FieldValueNotSupported".into(),
            field: field.to_string(),
            value: Some(render_value(value)),
            detail: format!("supported values: {list}"),
        }
    }

    /// Replace the detail text (`Required value: <detail>`).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn label(&self) -> &'static str {
        match self.reason.as_str() {
            "FieldValueRequired" => "Required value",
            "FieldValueNotSupported" => "Unsupported value",
            "FieldValueForbidden" => "Forbidden",
            "FieldValueTypeInvalid" => "Invalid value",
            "FieldValueDuplicate" => "Duplicate value",
            "FieldValueTooLong" => "Too long",
            _ => "Invalid value",
        }
    }

    /// The message without the field prefix, as in `details.causes[].message`.
    pub fn message_with_value(&self) -> String {
        let mut s = self.label().to_string();
        if let Some(v) = &self.value {
            s.push_str(&format!(": {v}"));
        }
        if !self.detail.is_empty() {
            s.push_str(&format!(": {}", self.detail));
        }
        s
    }

    pub fn text(&self) -> String {
        format!("{}: {}", self.field, self.message_with_value())
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".into(),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, axum::Json(self.to_status())).into_response()
    }
}
