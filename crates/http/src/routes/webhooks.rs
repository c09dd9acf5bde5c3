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

/// Shopify events (`X-Shopify-Hmac-Sha256` checked, de-duplicated by `X-Shopify-Event-Id`):
/// `orders/paid` and `refunds/create`.
#[utoipa::path(post, path = "/api/v1/webhooks/shopify", tag = "webhooks",
    params(("X-Shopify-Hmac-Sha256" = String, Header), ("X-Shopify-Event-Id" = String, Header), ("X-Shopify-Topic" = String, Header)),
    request_body(content = String, description = "the Shopify event, as sent"),
    responses((status = 200, body = WebhookAck), (status = 400, description = "invalid signature or missing event id"), (status = 404, description = "Shopify not configured")))]
pub async fn shopify(
    State(state): State<AppState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookAck>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ack = state
        .orders
        .shopify_webhook(&meta, header("x-shopify-hmac-sha256"), header("x-shopify-event-id"), header("x-shopify-topic"), &body)
        .await?;
    Ok(axum::Json(ack))
}
