//! The one mapping from errors to `application/problem+json` (RFC 9457).
//!
//! Handlers and extractors return [`ApiError`]; its response carries a [`ProblemInfo`]
//! extension and no body. The [`render`] middleware, which knows the request id, writes the
//! body — and also turns any other error response (a framework 405, a timeout, a panic) into
//! problem+json, so every error a client sees has one shape.

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use services::{FieldError, ServiceError};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone)]
pub struct ProblemInfo {
    pub code: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub info: ProblemInfo,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, info: ProblemInfo { code, detail: detail.into(), errors: Vec::new() } }
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "the request has invalid fields");
        e.info.errors = errors;
        e
    }
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "a valid bearer access token is required")
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as E;
        match e {
            E::Validation(errors) => Self::validation(errors),
            E::BadRequest { code, detail } => Self::new(StatusCode::BAD_REQUEST, code, detail),
            E::Unauthorized { code, detail } => Self::new(StatusCode::UNAUTHORIZED, code, detail),
            E::Forbidden { code, detail } => Self::new(StatusCode::FORBIDDEN, code, detail),
            E::NotFound { what } => Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found")),
            E::Conflict { code, detail } => Self::new(StatusCode::CONFLICT, code, detail),
            E::InsufficientStock { detail, variants } => {
                let mut e = Self::new(StatusCode::CONFLICT, "insufficient_stock", detail);
                e.info.errors = variants;
                e
            }
            E::Unavailable { code, detail } => Self::new(StatusCode::SERVICE_UNAVAILABLE, code, detail),
            E::Unsupported { detail } => Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", detail),
            E::Contention(cause) => {
                tracing::warn!(error = %cause, "gave up after repeated transaction conflicts");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "contention", "the shop is very busy; try again")
            }
            E::Internal(cause) => {
                // The cause goes to the log (with the request id of the current span), never
                // to the client.
                tracing::error!(error = %cause, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an unexpected error occurred")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        res.extensions_mut().insert(self.info);
        res
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    errors: &'a [FieldError],
    request_id: &'a str,
}

fn generic(status: StatusCode) -> ProblemInfo {
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed on this resource"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "the service could not answer in time; try again"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "the request body must be application/json"),
        s if s.is_server_error() => ("internal_error", "an unexpected error occurred"),
        _ => ("bad_request", "the request could not be processed"),
    };
    ProblemInfo { code, detail: detail.into(), errors: Vec::new() }
}

pub async fn render(req: Request, next: Next) -> Response {
    let request_id = req.extensions().get::<crate::middleware::RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let mut res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let info = match res.extensions_mut().remove::<ProblemInfo>() {
        Some(info) => info,
        // A handler that chose its own JSON body (e.g. a 503 from /ready) keeps it.
        None if res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().ends_with(b"json")) => {
            return res;
        }
        None => generic(status),
    };
    metrics::counter!("valuva_http_errors_total", "code" => info.code).increment(1);
    let body = Problem {
        kind: format!("https://valuva.dev/problems/{}", info.code.replace('_', "-")),
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail: &info.detail,
        code: info.code,
        errors: &info.errors,
        request_id: &request_id,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let (mut parts, _) = res.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}
