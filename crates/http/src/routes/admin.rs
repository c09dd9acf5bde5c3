use super::List;
use crate::{
    extract::{Admin, Json, Path, Query, Staff},
    problem::ApiError,
    state::AppState,
};
use axum::extract::State;
use domain::{AuditAction, Role};
use serde::Deserialize;
use services::{
    audit::{self, AuditFilter, AuditView},
    error::Errors,
    identity::UserView,
    pagination::PageRequest,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// customer | staff | admin
    pub role: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    #[schema(example = "staff")]
    pub role: String,
}

/// All accounts, newest first (admin only).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])), params(UsersQuery),
    responses((status = 200, body = List<UserView>), (status = 401), (status = 403)))]
pub async fn list_users(
    State(state): State<AppState>,
    _: Admin,
    Query(q): Query<UsersQuery>,
) -> Result<axum::Json<List<UserView>>, ApiError> {
    let mut errs = Errors::default();
    let role = q.role.as_deref().and_then(|r| errs.check("role", Role::parse(r)));
    errs.finish()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    Ok(axum::Json(state.identity.list_users(&state.cursors, role, page).await?.into()))
}

/// Change a user's role (admin only).
#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RoleChange,
    responses((status = 200, body = UserView), (status = 404), (status = 409, description = "an admin cannot demote themselves"), (status = 422)))]
pub async fn patch_user(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<Uuid>,
    Json(req): Json<RoleChange>,
) -> Result<axum::Json<UserView>, ApiError> {
    let role = Role::parse(&req.role).map_err(|e| ApiError::field("role", e.0))?;
    Ok(axum::Json(state.identity.set_role(&admin.meta, id, role).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// User id of the actor.
    pub actor: Option<String>,
    /// CREATE, UPDATE, DELETE, LOGIN, LOGOUT, PAYMENT, ORDER, REFUND, INVENTORY, ADMIN_ACTION
    pub action: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The audit trail, newest first (staff).
#[utoipa::path(get, path = "/api/v1/admin/audit-logs", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = List<AuditView>), (status = 400, description = "bad cursor"), (status = 422)))]
pub async fn audit_logs(
    State(state): State<AppState>,
    _: Staff,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<List<AuditView>>, ApiError> {
    let mut errs = Errors::default();
    let actor =
        q.actor.as_deref().and_then(|a| errs.check("actor", Uuid::parse_str(a).map_err(|_| domain::ParseError::new("must be a user id"))));
    let action = q.action.as_deref().and_then(|a| errs.check("action", AuditAction::parse(a)));
    let (from, to) = super::time_range(&mut errs, q.from.as_deref(), q.to.as_deref());
    errs.finish()?;
    let page = PageRequest::parse(q.limit, q.cursor)?;
    let filter = AuditFilter { actor, action, entity_type: q.entity_type, entity_id: q.entity_id, from, to };
    Ok(axum::Json(audit::list(&state.db, &state.cursors, filter, page).await?.into()))
}
