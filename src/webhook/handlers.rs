//! The admission handlers: from a decoded review to an answer, and the HTTP edge around them.

use super::lookup::{check_references, ObjectLookup};
use super::metrics::{bool_label, Metrics, OperationLabel, ReviewLabels, WebhookLabels};
use super::review::{
    decode_review, deny_bad_request, deny_invalid, encode_review, truncate, DecodedReview,
    ReviewError,
};
use super::routes::{webhook_name, Route, WebhookKind};
use crate::admission::{self, AdmitError, Operation};
use crate::api::GROUP;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use kube::core::admission::{AdmissionResponse, Operation as KubeOperation};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest review we read. The API server accepts request bodies up to 3 MiB and stores
/// objects up to 1.5 MiB (etcd), so an UPDATE review carries at most 3 + 1.5 MiB of objects;
/// twice 3 MiB plus room for the envelope covers every review the API server can send.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024 * 2 + 64 * 1024;
/// The longest one request may take, body included. Above the webhooks' `timeoutSeconds` (5),
/// so a request the API server still waits for is never cut short by us.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request got no review in answer. Each maps to one HTTP status with a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("content type must be application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("the body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the body could not be read: {0}")]
    Body(String),
    #[error(transparent)]
    Malformed(#[from] ReviewError),
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::Body(_) | HttpError::Malformed(_) => StatusCode::BAD_REQUEST,
            HttpError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The `reason` label of `mcp_operator_webhook_rejected_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::UnsupportedMediaType(_) => "unsupported_media_type",
            HttpError::TooLarge(_) => "too_large",
            HttpError::Body(_) => "body",
            HttpError::Malformed(_) => "malformed",
            HttpError::Timeout(_) => "timeout",
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        json_error(status, &self.to_string())
    }
}

/// `{"code": 400, "error": "..."}`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "code": status.as_u16(), "error": message });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Readiness of the server: a certificate is loaded, the TLS listener is bound, and we are not
/// draining. It never waits for controller caches (DESIGN §5).
#[derive(Debug, Default)]
pub struct Readiness {
    pub cert_loaded: AtomicBool,
    pub listening: AtomicBool,
    pub draining: AtomicBool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.cert_loaded.load(Ordering::Acquire)
            && self.listening.load(Ordering::Acquire)
            && !self.draining.load(Ordering::Acquire)
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub lookup: Option<Arc<dyn ObjectLookup>>,
    pub readiness: Arc<Readiness>,
    /// The longest one admission request may take, body included ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
}

/// Checks the content type and reads the body within [`MAX_BODY_BYTES`].
pub async fn read_json_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, HttpError> {
    read_json_body_within(headers, body, MAX_BODY_BYTES).await
}

/// Checks the content type (`application/json`, parameters allowed: 415 otherwise) and reads
/// the body within `limit` bytes (413 beyond, refused early when Content-Length says so).
pub async fn read_json_body_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(HttpError::UnsupportedMediaType(truncate(&content_type, 64)));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(HttpError::TooLarge(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::TooLarge(limit)),
        Err(e) => Err(HttpError::Body(e.to_string())),
    }
}

/// The axum handler of one admission route.
pub async fn admission_endpoint(state: AppState, route: Route, request: Request) -> Response {
    let started = Instant::now();
    let outcome = tokio::time::timeout(state.request_timeout, async {
        let (parts, body) = request.into_parts();
        let bytes = read_json_body(&parts.headers, body).await?;
        let decoded = decode_review(&bytes)?;
        Ok::<_, HttpError>(answer_review(route, decoded, state.lookup.as_deref()).await)
    })
    .await
    .unwrap_or(Err(HttpError::Timeout(state.request_timeout)));
    match outcome {
        Ok(answer) => {
            record(&state.metrics, route, &answer, started.elapsed());
            (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                encode_review(&answer.response),
            )
                .into_response()
        }
        Err(e) => {
            state.metrics.reject(e.reason());
            tracing::info!(webhook = route.webhook.as_str(), path = %route.path(), status = e.status().as_u16(), error = %e, "refused a request that is not a valid admission review");
            e.into_response()
        }
    }
}

/// The benchmark floor: the same HTTP edge and review decoding as an admission route, then
/// `allowed` without looking at the object. Mounted only with [`super::server::ServerOptions`]'
/// `benchmark_floor`, so `benches/webhook` can measure what our admission work costs on top.
pub async fn floor_endpoint(state: AppState, request: Request) -> Response {
    let outcome = tokio::time::timeout(state.request_timeout, async {
        let (parts, body) = request.into_parts();
        let bytes = read_json_body(&parts.headers, body).await?;
        let decoded = decode_review(&bytes)?;
        Ok::<_, HttpError>(AdmissionResponse::from(&decoded.request))
    })
    .await
    .unwrap_or(Err(HttpError::Timeout(state.request_timeout)));
    match outcome {
        Ok(response) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            encode_review(&response),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// An answered review, with what metrics and logs need to know about it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub response: AdmissionResponse,
    pub operation: OperationLabel,
    /// The object is not of the route's group and kind; allowed unchecked.
    pub unexpected_kind: bool,
    /// Cross-object checks were skipped for want of a cluster client.
    pub lookups_skipped: bool,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

fn operation(op: &KubeOperation) -> (Operation, OperationLabel) {
    match op {
        KubeOperation::Create => (Operation::Create, OperationLabel::CREATE),
        KubeOperation::Update => (Operation::Update, OperationLabel::UPDATE),
        KubeOperation::Delete => (Operation::Delete, OperationLabel::DELETE),
        KubeOperation::Connect => (Operation::Connect, OperationLabel::CONNECT),
    }
}

/// Answers one review on `route`. Pure but for the cross-object lookups of the validating
/// webhook; never fails: anything wrong with the request becomes a denial.
pub async fn answer_review(
    route: Route,
    review: DecodedReview,
    lookup: Option<&dyn ObjectLookup>,
) -> Answer {
    let DecodedReview {
        request,
        object,
        old_object,
    } = review;
    let (op, op_label) = operation(&request.operation);
    let mut answer = Answer {
        response: AdmissionResponse::from(&request),
        operation: op_label,
        unexpected_kind: false,
        lookups_skipped: false,
        // Logged: bounded, whatever a client sends (real names are at most 253 bytes).
        kind: truncate(&request.kind.kind, 256),
        name: truncate(&request.name, 256),
        namespace: truncate(request.namespace.as_deref().unwrap_or_default(), 256),
    };
    if request.kind.group != GROUP || request.kind.kind != route.kind() {
        // Our configurations only ever send our own kinds; anything else is a misconfiguration
        // that must not block the cluster, so it is let through, counted and flagged.
        answer.unexpected_kind = true;
        answer.response.warnings = Some(bound_warnings(vec![format!(
            "webhook {} does not admit {}/{} {}; allowed unchecked",
            webhook_name(route.webhook, route.kind()),
            truncate(&request.kind.group, 64),
            truncate(&request.kind.version, 64),
            answer.kind
        )]));
        return answer;
    }
    // DELETE and CONNECT carry nothing to default or validate.
    if matches!(op, Operation::Delete | Operation::Connect) {
        return answer;
    }
    let Some(object) = object else {
        answer.response = deny_bad_request(
            answer.response,
            "request.object is required for CREATE and UPDATE",
        );
        return answer;
    };
    // Defaulting needs no checks: refusing is the validating webhook's job.
    let result = match route.webhook {
        WebhookKind::Mutate => admission::default_update(
            &object,
            old_object.as_ref().filter(|_| op == Operation::Update),
        )
        .map(|defaulted| admission::Verdict {
            defaulted,
            warnings: Vec::new(),
            errors: Default::default(),
        }),
        WebhookKind::Validate => admission::admit(&object, old_object.as_ref(), op),
    };
    let verdict = match result {
        Ok(verdict) => verdict,
        Err(e @ AdmitError::NotServed { .. }) => {
            answer.unexpected_kind = true;
            answer.response.warnings =
                Some(bound_warnings(vec![format!("{e}; allowed unchecked")]));
            return answer;
        }
        Err(e @ AdmitError::NoTypeMeta) => {
            answer.response = deny_bad_request(answer.response, &e.to_string());
            return answer;
        }
    };
    match route.webhook {
        WebhookKind::Mutate => {
            // Defaulting never denies: refusing is the validating webhook's job, and its denial
            // names the right webhook. Warnings are left to it too, so kubectl prints them once.
            let patch = json_patch::diff(&object, &verdict.defaulted);
            answer.response = match answer.response.clone().with_patch(patch) {
                Ok(r) => r,
                Err(e) => deny_bad_request(answer.response, &e.to_string()),
            };
        }
        WebhookKind::Validate => {
            let mut warnings = verdict.warnings;
            let mut errors = verdict.errors;
            if errors.is_empty() {
                let references = admission::references(&verdict.defaulted);
                let findings = check_references(&references, &answer.namespace, lookup).await;
                answer.lookups_skipped = findings.skipped;
                warnings.extend(findings.warnings);
                errors.extend(findings.errors);
            }
            if !warnings.is_empty() {
                answer.response.warnings = Some(bound_warnings(warnings));
            }
            if !errors.is_empty() {
                answer.response =
                    deny_invalid(answer.response, route.kind(), &request.name, &errors);
            }
        }
    }
    answer
}

/// Runs admission once per served kind and version, so that schemas and CEL programs are
/// compiled before the server reports ready, not inside the first review's time budget.
pub fn warm_up() {
    for served in crate::api::SERVED {
        for version in served.versions {
            let object = serde_json::json!({
                "apiVersion": format!("{GROUP}/{version}"),
                "kind": served.kind,
                "metadata": {"name": "warm-up", "namespace": "default"},
                "spec": {}
            });
            let _ = admission::admit(&object, None, Operation::Create);
            let _ = admission::references(&object);
        }
    }
}

/// The API server truncates long and many warnings anyway; we bound them so a pathological
/// object cannot make the answer large.
const MAX_WARNINGS: usize = 32;
const MAX_WARNING_BYTES: usize = 512;

fn bound_warnings(mut warnings: Vec<String>) -> Vec<String> {
    let total = warnings.len();
    warnings.truncate(MAX_WARNINGS);
    for w in &mut warnings {
        if w.len() > MAX_WARNING_BYTES {
            *w = truncate(w, MAX_WARNING_BYTES);
        }
    }
    if total > MAX_WARNINGS {
        warnings.push(format!("... and {} more warnings", total - MAX_WARNINGS));
    }
    warnings
}

fn record(metrics: &Metrics, route: Route, answer: &Answer, took: Duration) {
    let allowed = answer.response.allowed;
    metrics
        .reviews
        .get_or_create(&ReviewLabels {
            webhook: route.webhook.as_str(),
            kind: route.kind(),
            version: route.version,
            operation: answer.operation,
            allowed: bool_label(allowed),
        })
        .inc();
    let webhook = WebhookLabels {
        webhook: route.webhook.as_str(),
    };
    metrics
        .review_duration
        .get_or_create(&webhook)
        .observe(took.as_secs_f64());
    if answer.unexpected_kind {
        metrics.unexpected_kinds.get_or_create(&webhook).inc();
    }
    if answer.lookups_skipped {
        metrics.lookups_skipped.inc();
    }
    // Allowed reviews are the hot path: logged at debug so a busy cluster's logs stay readable;
    // denials and flagged reviews at info.
    let uid = &answer.response.uid;
    let duration_us = took.as_micros() as u64;
    let webhook = route.webhook.as_str();
    let operation = answer.operation.as_str();
    if allowed && !answer.unexpected_kind {
        tracing::debug!(%uid, webhook, kind = %answer.kind, name = %answer.name, namespace = %answer.namespace, operation, allowed, duration_us, "admission review");
    } else {
        tracing::info!(%uid, webhook, kind = %answer.kind, name = %answer.name, namespace = %answer.namespace, operation, allowed, unexpected_kind = answer.unexpected_kind, duration_us, reason = %answer.response.result.message, "admission review");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_bounded_in_number_and_length() {
        let many: Vec<String> = (0..40)
            .map(|i| format!("{i}: {}", "x".repeat(2000)))
            .collect();
        let bounded = bound_warnings(many);
        assert_eq!(bounded.len(), MAX_WARNINGS + 1);
        assert!(bounded.iter().all(|w| w.len() <= MAX_WARNING_BYTES + 3));
        assert_eq!(bounded.last().unwrap(), "... and 8 more warnings");
        assert_eq!(
            bound_warnings(vec!["short".into()]),
            vec!["short".to_string()]
        );
    }

    #[test]
    fn every_http_error_has_its_status_and_a_json_body() {
        for (error, status) in [
            (HttpError::UnsupportedMediaType("text/plain".into()), 415),
            (HttpError::TooLarge(MAX_BODY_BYTES), 413),
            (HttpError::Body("reset".into()), 400),
            (HttpError::Malformed(ReviewError::Empty), 400),
            (HttpError::Timeout(REQUEST_TIMEOUT), 408),
        ] {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        }
    }
}
