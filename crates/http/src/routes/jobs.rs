//! Staff's view of the job queue, and shoppers' back-in-stock subscriptions.

use super::List;
use crate::{
    extract::{Json, OptionalAuth, Path, Query, Staff},
    problem::ApiError,
    state::AppState,
};
use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use services::{
    jobs::JobView,
    notifications::stock_alerts::{NewStockAlert, StockAlertView},
    pagination::PageRequest,
};
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobsQuery {
    /// queued | running | succeeded | dead (the dead-letter list)
    pub status: Option<String>,
    /// e.g. `email.order_confirmation`
    pub kind: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Jobs, newest first: what is queued, running, done, or dead after its last attempt.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin", params(JobsQuery), security(("bearer" = [])),
    responses((status = 200, body = List<JobView>), (status = 401), (status = 403), (status = 422)))]
pub async fn list(_: Staff, State(state): State<AppState>, Query(q): Query<JobsQuery>) -> Result<axum::Json<List<JobView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor)?;
    Ok(axum::Json(state.jobs.list(q.status.as_deref(), q.kind.as_deref(), page).await?.into()))
}

/// One job, with its last error.
#[utoipa::path(get, path = "/api/v1/admin/jobs/{id}", tag = "admin", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = JobView), (status = 404)))]
pub async fn get(_: Staff, State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<axum::Json<JobView>, ApiError> {
    Ok(axum::Json(state.jobs.get(id).await?))
}

/// Gives a dead job a fresh set of attempts.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/retry", tag = "admin", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = JobView), (status = 404), (status = 409, description = "the job is not dead")))]
pub async fn retry(staff: Staff, State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<axum::Json<JobView>, ApiError> {
    Ok(axum::Json(state.jobs.retry(&staff.meta, id).await?))
}

/// Email me when this sold-out variant is back (once). Signed-in customers may leave out the
/// address: their account's is used.
#[utoipa::path(post, path = "/api/v1/products/{id}/variants/{variant_id}/stock-alerts", tag = "catalog",
    params(("id" = Uuid, Path, description = "the product"), ("variant_id" = Uuid, Path, description = "one of its variants")),
    request_body = NewStockAlert,
    responses((status = 201, body = StockAlertView), (status = 404), (status = 409, description = "the variant is in stock"), (status = 422)))]
pub async fn subscribe(
    OptionalAuth(actor): OptionalAuth,
    State(state): State<AppState>,
    Path((product_id, variant_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<NewStockAlert>,
) -> Result<(StatusCode, axum::Json<StockAlertView>), ApiError> {
    let view = state.stock_alerts.subscribe(product_id, variant_id, body.email.as_deref(), actor.map(|a| a.id)).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}
