use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderValue, header::HeaderName},
    middleware::Next,
    response::Response,
};
use std::time::Instant;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: the client's `x-request-id` when it is sane, else a fresh UUIDv7.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then(|| s.to_owned())
}

/// Assigns the request id, runs the request inside a span that carries it (so every log line
/// has it), echoes it on the response and logs one line per request.
pub async fn request_id_and_log(mut req: Request, next: Next) -> Response {
    let id = req.headers().get(&X_REQUEST_ID).and_then(acceptable).unwrap_or_else(|| domain::new_id().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route, user_id = tracing::field::Empty);
    let start = Instant::now();
    metrics::gauge!("valuva_http_requests_in_flight").increment(1.0);
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    metrics::gauge!("valuva_http_requests_in_flight").decrement(1.0);
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    // Route templates, never raw paths: label cardinality stays bounded.
    let labels = [("method", method.to_string()), ("route", route.clone()), ("status", class.to_owned())];
    metrics::counter!("valuva_http_requests_total", &labels).increment(1);
    metrics::histogram!("valuva_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(status, duration_ms = elapsed.as_secs_f64() * 1000.0, "request");
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    res
}
