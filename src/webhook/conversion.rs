//! `POST /convert`: the CRD conversion webhook, a thin door onto [`crate::conversion::review`].

use super::handlers::json_error;
use super::server::ConversionHandler;
use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kube::core::conversion::ConversionReview;

/// The API server converts whole list pages in one review (500 objects by default, each up to
/// the 3 MiB object limit in theory): a larger bound than admission's, still a bound.
pub const MAX_CONVERSION_BODY: usize = 64 << 20;

/// The conversion route, for [`super::ServerOptions::conversion`].
pub fn handler() -> ConversionHandler {
    post(convert)
}

/// The benchmark floor of conversion: the same body checks and decoding, the objects echoed
/// back unconverted (`/convert-floor`, only with the benchmark floor enabled).
pub fn floor_handler() -> ConversionHandler {
    post(echo)
}

async fn convert(headers: HeaderMap, body: Body) -> Response {
    respond(headers, body, crate::conversion::review::handle).await
}

async fn echo(headers: HeaderMap, body: Body) -> Response {
    respond(headers, body, |review| {
        let request = review.request.clone();
        match request {
            Some(r) => {
                let objects = r.objects.clone();
                kube::core::conversion::ConversionResponse::for_request(r)
                    .success(objects)
                    .into_review()
            }
            None => review,
        }
    })
    .await
}

async fn respond(
    headers: HeaderMap,
    body: Body,
    answer: impl FnOnce(ConversionReview) -> ConversionReview + Send + 'static,
) -> Response {
    let bytes = match read_body(&headers, body).await {
        Ok(b) => b,
        Err(response) => return *response,
    };
    let review: ConversionReview = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                &format!("not a ConversionReview: {e}"),
            )
        }
    };
    let uid = review
        .request
        .as_ref()
        .map(|r| r.uid.clone())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let count = review.request.as_ref().map_or(0, |r| r.objects.len());
    // Conversion of a large batch is CPU work: keep it off the async workers.
    let answered = match tokio::task::spawn_blocking(move || answer(review)).await {
        Ok(a) => a,
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "conversion failed"),
    };
    tracing::debug!(uid = %uid, objects = count, took_us = started.elapsed().as_micros() as u64, "conversion review");
    match serde_json::to_vec(&answered) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// JSON only, and at most [`MAX_CONVERSION_BODY`] bytes (refused early by Content-Length).
async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, Box<Response>> {
    use http_body_util::{BodyExt, Limited};
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(Box::new(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json",
        )));
    }
    let too_large = || {
        Box::new(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body exceeds {MAX_CONVERSION_BODY} bytes"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_CONVERSION_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(body, MAX_CONVERSION_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            &format!("the body could not be read: {e}"),
        ))),
    }
}
