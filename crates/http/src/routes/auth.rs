//! Accounts and sessions. With `AUTH_COOKIES=true` the refresh token travels in an
//! `HttpOnly; Secure; SameSite=Strict` cookie instead of the body, and any request that relies
//! on that cookie must echo the CSRF cookie in `X-CSRF-Token` (double submit).

use crate::{
    extract::{Json, Meta},
    problem::ApiError,
    state::AppState,
};
use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use services::identity::{AuthSession, UserView};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

const REFRESH_COOKIE: &str = "valuva_refresh";
const CSRF_COOKIE: &str = "valuva_csrf";
const CSRF_HEADER: &str = "x-csrf-token";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ann@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// A guest cart to merge into the customer's cart (send its `X-Cart-Token` too).
    pub cart_id: Option<uuid::Uuid>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Required unless AUTH_COOKIES is on and the refresh cookie is sent.
    pub refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    pub user: UserView,
    pub access_token: String,
    /// Absent in cookie mode: the token is in the `valuva_refresh` cookie.
    pub refresh_token: Option<String>,
    /// Cookie mode only: the value to send back in `X-CSRF-Token`.
    pub csrf_token: Option<String>,
    /// Login with `cart_id`: the customer's cart that now holds the guest cart's lines.
    pub cart_id: Option<uuid::Uuid>,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub expires_in: u64,
}

fn session_response(state: &AppState, status: StatusCode, s: AuthSession, cart_id: Option<uuid::Uuid>) -> Response {
    let cookies = state.config.auth_cookies;
    let csrf = cookies.then(|| hex::encode(rand::random::<[u8; 32]>()));
    let body = SessionResponse {
        user: s.user,
        access_token: s.access_token,
        refresh_token: (!cookies).then_some(s.refresh_token.clone()),
        csrf_token: csrf.clone(),
        cart_id,
        token_type: "Bearer",
        expires_in: s.expires_in,
    };
    let mut res = (status, axum::Json(body)).into_response();
    if let Some(csrf) = csrf {
        // The cookies last as long as the refresh token: near the session's end, less than its TTL.
        let max_age = s.refresh_expires_in;
        let h = res.headers_mut();
        h.append(header::SET_COOKIE, cookie(REFRESH_COOKIE, &s.refresh_token, "/api/v1/auth", max_age, true));
        h.append(header::SET_COOKIE, cookie(CSRF_COOKIE, &csrf, "/", max_age, false));
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn cookie(name: &str, value: &str, path: &str, max_age: u64, http_only: bool) -> HeaderValue {
    let http_only = if http_only { "; HttpOnly" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; Secure; SameSite=Strict{http_only}"))
        .expect("cookie values are URL-safe")
}

/// The refresh token from the body, or — in cookie mode — from the cookie, which then
/// requires a matching CSRF header.
fn refresh_token_of(state: &AppState, headers: &HeaderMap, body: Option<String>) -> Result<String, ApiError> {
    if let Some(t) = body.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    if state.config.auth_cookies
        && let Some(t) = crate::extract::read_cookie(headers, REFRESH_COOKIE)
    {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let expected = crate::extract::read_cookie(headers, CSRF_COOKIE).unwrap_or_default();
        if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", "the X-CSRF-Token header must match the CSRF cookie"));
        }
        return Ok(t.to_owned());
    }
    Err(ApiError::field("refresh_token", "is required"))
}

/// Create an account (role `customer`) and start a session.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = SessionResponse), (status = 409, description = "email taken"), (status = 422, description = "invalid fields")))]
pub async fn register(State(state): State<AppState>, Meta(meta): Meta, Json(req): Json<RegisterRequest>) -> Result<Response, ApiError> {
    let s = state.identity.register(&meta, &req.email, &req.password, req.name.as_deref()).await?;
    Ok(session_response(&state, StatusCode::CREATED, s, None))
}

/// Start a session. Unknown email and wrong password give the same 401.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionResponse), (status = 401, description = "invalid credentials")))]
pub async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let s = state.identity.login(&meta, &req.email, &req.password).await?;
    let token = headers.get(super::carts::CART_TOKEN).and_then(|v| v.to_str().ok());
    let mut cart = None;
    if let (Some(guest), Some(token)) = (req.cart_id, token) {
        // A cart that cannot be merged (expired, wrong token) does not fail the login.
        match state.carts.merge_into_customer(guest, token, s.user.id).await {
            Ok(merged) => cart = Some(merged),
            Err(e) => tracing::info!(error = %e, "guest cart not merged at login"),
        }
    }
    Ok(session_response(&state, StatusCode::OK, s, cart))
}

/// Exchange a refresh token for a new pair. Reusing a spent token revokes the session family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = SessionResponse), (status = 401, description = "invalid, expired, revoked or reused"), (status = 403, description = "CSRF check failed (cookie mode)")))]
pub async fn refresh(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Json(req): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = refresh_token_of(&state, &headers, req.refresh_token)?;
    let s = state.identity.refresh(&meta, &token).await?;
    Ok(session_response(&state, StatusCode::OK, s, None))
}

/// End the session the refresh token belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "logged out"), (status = 403, description = "CSRF check failed (cookie mode)")))]
pub async fn logout(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Json(req): Json<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = refresh_token_of(&state, &headers, req.refresh_token)?;
    state.identity.logout(&meta, &token).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if state.config.auth_cookies {
        res.headers_mut().append(header::SET_COOKIE, cookie(REFRESH_COOKIE, "", "/api/v1/auth", 0, true));
        res.headers_mut().append(header::SET_COOKIE, cookie(CSRF_COOKIE, "", "/", 0, false));
    }
    Ok(res)
}

/// Email a single-use reset token. Always 202, whether or not the account exists.
#[utoipa::path(post, path = "/api/v1/auth/password/forgot", tag = "auth", request_body = ForgotRequest,
    responses((status = 202, description = "if the account exists, an email is on its way")))]
pub async fn forgot(State(state): State<AppState>, Meta(meta): Meta, Json(req): Json<ForgotRequest>) -> Result<StatusCode, ApiError> {
    state.identity.forgot_password(&meta, &req.email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with a reset token; ends every session of the account.
#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth", request_body = ResetRequest,
    responses((status = 204, description = "password changed"), (status = 400, description = "invalid or used token")))]
pub async fn reset(State(state): State<AppState>, Meta(meta): Meta, Json(req): Json<ResetRequest>) -> Result<StatusCode, ApiError> {
    state.identity.reset_password(&meta, &req.token, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
