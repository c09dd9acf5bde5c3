//! Payment provider callbacks: the raw body is what the signature covers.

use crate::{extract::Meta, problem::ApiError, state::AppState};
use axum::{body::Bytes, extract::State, http::HeaderMap};
use services::orders::WebhookAck;

/// Stripe events (`Stripe-Signature` checked: HMAC-SHA256, 300 s tolerance, any `v1`).
/// Replayed events are acknowledged and change nothing.
#[utoipa::path(post, path = "/api/v1/webhooks/stripe", tag = "webhooks", params(("Stripe-Signature" = String, Header)),
    request_body(content = String, description = "the Stripe event, as sent"),
    responses((status = 200, body = WebhookAck), (status = 400, description = "invalid or stale signature"), (status = 404, description = "Stripe not configured")))]
pub async fn stripe(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookAck>, ApiError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    Ok(axum::Json(state.orders.stripe_webhook(&meta, signature, &body).await?))
}
