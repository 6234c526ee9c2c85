//! `POST /convert`: the CRD conversion webhook, a thin door onto [`crate::conversion::review`].

use super::handlers::{json_error, read_json_body_within};
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
    respond(headers, body, |review| {
        crate::conversion::review::handle(review, crate::admission::why_invalid)
    })
    .await
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
    let bytes = match read_json_body_within(&headers, body, MAX_CONVERSION_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
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
