//! Carts, checkout and the customer's orders.

use super::{List, admin_catalog::outcome_response};
use crate::{
    extract::{IdempotencyKey, Json, Meta, OptionalAuth, OptionalJson, Path, Query},
    problem::ApiError,
    state::AppState,
};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use services::{
    carts::{CartAccess, CartPatch, CartView},
    orders::{CheckoutRequest, CheckoutResponse, OrderAccess, OrderFilter, OrderView, TransitionActor},
    pagination::PageRequest,
    shipping::Quote,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

pub const CART_TOKEN: &str = "x-cart-token";

fn cart_token(headers: &HeaderMap) -> Option<String> {
    headers.get(CART_TOKEN).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn access(headers: &HeaderMap, auth: &OptionalAuth) -> CartAccess {
    CartAccess { token: cart_token(headers), user: auth.0.map(|a| a.id) }
}

#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewCart {
    /// ISO-4217; defaults to EUR.
    pub currency: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    pub variant_id: Uuid,
    #[schema(example = 2)]
    pub quantity: i64,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineQuantity {
    pub quantity: i64,
}

/// Create a cart: a guest cart (keep the returned `token` and send it as `X-Cart-Token`), or
/// with a bearer token a cart owned by the customer.
#[utoipa::path(post, path = "/api/v1/carts", tag = "cart", request_body(content = NewCart, description = "optional"),
    responses((status = 201, body = CartView), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    auth: OptionalAuth,
    OptionalJson(body): OptionalJson<NewCart>,
) -> Result<(StatusCode, axum::Json<CartView>), ApiError> {
    let currency = body.and_then(|b| b.currency);
    Ok((StatusCode::CREATED, axum::Json(state.carts.create(auth.0.map(|a| a.id), currency.as_deref()).await?)))
}

/// The cart with current prices and availability (`X-Cart-Token` or the owner's bearer token).
#[utoipa::path(get, path = "/api/v1/carts/{id}", tag = "cart", params(("id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = CartView), (status = 404)))]
pub async fn get(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<CartView>, ApiError> {
    Ok(axum::Json(state.carts.get(id, &access(&headers, &auth)).await?))
}

/// Set the email and/or shipping address.
#[utoipa::path(patch, path = "/api/v1/carts/{id}", tag = "cart", params(("id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)), request_body = CartPatch,
    responses((status = 200, body = CartView), (status = 404), (status = 422)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(p): Json<CartPatch>,
) -> Result<axum::Json<CartView>, ApiError> {
    Ok(axum::Json(state.carts.update(id, &access(&headers, &auth), p).await?))
}

/// Add units of a variant (added to an existing line of the same variant).
#[utoipa::path(post, path = "/api/v1/carts/{id}/items", tag = "cart", params(("id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)), request_body = NewLine,
    responses((status = 200, body = CartView), (status = 404), (status = 409, description = "insufficient stock, currency mismatch, cart full"), (status = 422)))]
pub async fn add_item(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(l): Json<NewLine>,
) -> Result<axum::Json<CartView>, ApiError> {
    Ok(axum::Json(state.carts.add_item(id, &access(&headers, &auth), l.variant_id, l.quantity).await?))
}

#[utoipa::path(patch, path = "/api/v1/carts/{id}/items/{item_id}", tag = "cart", params(("id" = Uuid, Path), ("item_id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)),
    request_body = LineQuantity, responses((status = 200, body = CartView), (status = 404), (status = 409), (status = 422)))]
pub async fn set_quantity(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path((id, item)): Path<(Uuid, Uuid)>,
    Json(l): Json<LineQuantity>,
) -> Result<axum::Json<CartView>, ApiError> {
    Ok(axum::Json(state.carts.set_quantity(id, &access(&headers, &auth), item, l.quantity).await?))
}

#[utoipa::path(delete, path = "/api/v1/carts/{id}/items/{item_id}", tag = "cart", params(("id" = Uuid, Path), ("item_id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = CartView), (status = 404)))]
pub async fn remove_item(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path((id, item)): Path<(Uuid, Uuid)>,
) -> Result<axum::Json<CartView>, ApiError> {
    Ok(axum::Json(state.carts.remove_item(id, &access(&headers, &auth), item).await?))
}

/// Shipping options for the cart's address, weight and subtotal, cheapest first.
#[utoipa::path(get, path = "/api/v1/carts/{id}/shipping-rates", tag = "cart", params(("id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = List<Quote>), (status = 404), (status = 422, description = "no shipping address yet")))]
pub async fn shipping_rates(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<List<Quote>>, ApiError> {
    Ok(axum::Json(List::all(state.orders.shipping_quotes(id, &access(&headers, &auth)).await?)))
}

/// Cart → order: reserves stock for every line, freezes prices and totals, starts the payment.
/// Requires `Idempotency-Key`; a replay returns the first response.
#[utoipa::path(post, path = "/api/v1/checkout", tag = "cart", params(("Idempotency-Key" = String, Header), ("X-Cart-Token" = Option<String>, Header)),
    request_body = CheckoutRequest,
    responses((status = 201, body = CheckoutResponse), (status = 400, description = "missing Idempotency-Key"), (status = 404), (status = 409, description = "insufficient stock, empty cart, key in use"), (status = 422)))]
pub async fn checkout(
    State(state): State<AppState>,
    auth: OptionalAuth,
    Meta(meta): Meta,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    Json(req): Json<CheckoutRequest>,
) -> Result<Response, ApiError> {
    let meta = match auth.0 {
        Some(a) => meta.with_actor(a),
        None => meta,
    };
    let outcome = state.orders.checkout(&meta, &access(&headers, &auth), req, key).await?;
    Ok(outcome_response(outcome, StatusCode::CREATED))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])), params(OrdersQuery), responses((status = 200, body = List<OrderView>), (status = 401)))]
pub async fn my_orders(
    State(state): State<AppState>,
    auth: crate::extract::Auth,
    Query(q): Query<OrdersQuery>,
) -> Result<axum::Json<List<OrderView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor)?;
    Ok(axum::Json(state.orders.list(Some(auth.actor.id), OrderFilter::default(), page).await?.into()))
}

/// One order: the customer's own (bearer), or a guest's (the `X-Cart-Token` of its cart).
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = Uuid, Path), ("X-Cart-Token" = Option<String>, Header)),
    responses((status = 200, body = OrderView), (status = 404)))]
pub async fn my_order(
    State(state): State<AppState>,
    auth: OptionalAuth,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let access = OrderAccess { user: auth.0.map(|a| a.id), cart_token: cart_token(&headers), staff: false };
    Ok(axum::Json(state.orders.get(id, &access).await?))
}

/// Cancel the caller's own unpaid order; its stock is released.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "invalid_transition")))]
pub async fn cancel_mine(
    State(state): State<AppState>,
    auth: crate::extract::Auth,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let outcome =
        state.orders.transition(&auth.meta, id, domain::OrderEvent::Cancel, TransitionActor::Customer(auth.actor.id), None, key).await?;
    Ok(outcome_response(outcome, StatusCode::OK))
}
