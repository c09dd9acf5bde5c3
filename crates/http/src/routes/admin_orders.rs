//! Staff: orders and their transitions, refunds, shipping zones.

use super::{List, admin_catalog::outcome_response};
use crate::{
    extract::{IdempotencyKey, Json, Path, Query, Staff},
    problem::ApiError,
    state::AppState,
};
use axum::{extract::State, http::StatusCode, response::Response};
use domain::OrderEvent;
use serde::Deserialize;
use services::{
    error::Errors,
    orders::{OrderAccess, OrderFilter, OrderView, RefundRequest, RefundView, ShipInfo, TransitionActor},
    pagination::PageRequest,
    shipping::{ZoneInput, ZonePatch, ZoneView},
};
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminOrdersQuery {
    /// pending_payment | paid | processing | shipped | delivered | cancelled | refunded
    pub status: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Every order, newest first.
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin-orders", security(("bearer" = [])), params(AdminOrdersQuery),
    responses((status = 200, body = List<OrderView>), (status = 422)))]
pub async fn list(
    State(state): State<AppState>,
    _: Staff,
    Query(q): Query<AdminOrdersQuery>,
) -> Result<axum::Json<List<OrderView>>, ApiError> {
    let mut errs = Errors::default();
    let (from, to) = super::time_range(&mut errs, q.from.as_deref(), q.to.as_deref());
    errs.finish()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    Ok(axum::Json(state.orders.list(None, OrderFilter { status: q.status, from, to }, page).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/admin/orders/{id}", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = OrderView), (status = 404)))]
pub async fn get(State(state): State<AppState>, _: Staff, Path(id): Path<Uuid>) -> Result<axum::Json<OrderView>, ApiError> {
    Ok(axum::Json(state.orders.get(id, &OrderAccess { staff: true, ..Default::default() }).await?))
}

async fn transition(
    state: &AppState,
    staff: &Staff,
    id: Uuid,
    event: OrderEvent,
    ship: Option<ShipInfo>,
    key: Option<String>,
) -> Result<Response, ApiError> {
    let outcome = state.orders.transition(&staff.meta, id, event, TransitionActor::Staff, ship, key).await?;
    Ok(outcome_response(outcome, StatusCode::OK))
}

/// Record the payment of an order (manual provider: bank transfer, cash on delivery).
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/mark-paid", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "invalid_transition")))]
pub async fn mark_paid(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    transition(&state, &staff, id, OrderEvent::Pay, None, key).await
}

/// paid → processing.
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/fulfill", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "invalid_transition")))]
pub async fn fulfill(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    transition(&state, &staff, id, OrderEvent::Fulfill, None, key).await
}

/// processing → shipped, with carrier and tracking number.
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/ship", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ShipInfo, responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "invalid_transition"), (status = 422)))]
pub async fn ship(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
    Json(info): Json<ShipInfo>,
) -> Result<Response, ApiError> {
    transition(&state, &staff, id, OrderEvent::Ship, Some(info), key).await
}

/// shipped → delivered.
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/deliver", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "invalid_transition")))]
pub async fn deliver(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    transition(&state, &staff, id, OrderEvent::Deliver, None, key).await
}

/// Cancel: unpaid orders release their stock; paid or processing orders are refunded in full
/// and restocked.
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/cancel", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = OrderView), (status = 404), (status = 409, description = "invalid_transition")))]
pub async fn cancel(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    transition(&state, &staff, id, OrderEvent::Cancel, None, key).await
}

/// Refund part or all of a paid order; optionally restock its units. Totals can never exceed
/// what was captured.
#[utoipa::path(post, path = "/api/v1/admin/orders/{id}/refunds", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = RefundRequest, responses((status = 201, body = RefundView), (status = 404), (status = 409, description = "invalid_transition"), (status = 422)))]
pub async fn refund(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
    Json(req): Json<RefundRequest>,
) -> Result<Response, ApiError> {
    let outcome = state.orders.refund(&staff.meta, id, req, key).await?;
    Ok(outcome_response(outcome, StatusCode::CREATED))
}

#[utoipa::path(get, path = "/api/v1/admin/shipping/zones", tag = "admin-orders", security(("bearer" = [])), responses((status = 200, body = List<ZoneView>)))]
pub async fn zones(State(state): State<AppState>, _: Staff) -> Result<axum::Json<List<ZoneView>>, ApiError> {
    Ok(axum::Json(List::all(state.shipping.list().await?)))
}

#[utoipa::path(post, path = "/api/v1/admin/shipping/zones", tag = "admin-orders", security(("bearer" = [])), request_body = ZoneInput,
    responses((status = 201, body = ZoneView), (status = 409, description = "zone_overlap: a country is in another zone"), (status = 422)))]
pub async fn create_zone(
    State(state): State<AppState>,
    staff: Staff,
    Json(z): Json<ZoneInput>,
) -> Result<(StatusCode, axum::Json<ZoneView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(state.shipping.create(&staff.meta, z).await?)))
}

#[utoipa::path(get, path = "/api/v1/admin/shipping/zones/{id}", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ZoneView), (status = 404)))]
pub async fn zone(State(state): State<AppState>, _: Staff, Path(id): Path<Uuid>) -> Result<axum::Json<ZoneView>, ApiError> {
    Ok(axum::Json(state.shipping.get(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/admin/shipping/zones/{id}", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ZonePatch,
    responses((status = 200, body = ZoneView), (status = 404), (status = 409, description = "zone_overlap: a country is in another zone"), (status = 422)))]
pub async fn patch_zone(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<Uuid>,
    Json(p): Json<ZonePatch>,
) -> Result<axum::Json<ZoneView>, ApiError> {
    Ok(axum::Json(state.shipping.update(&staff.meta, id, p).await?))
}

#[utoipa::path(delete, path = "/api/v1/admin/shipping/zones/{id}", tag = "admin-orders", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_zone(State(state): State<AppState>, staff: Staff, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    state.shipping.delete(&staff.meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
