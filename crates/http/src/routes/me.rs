use super::List;
use crate::{
    extract::{Auth, Json, Path},
    problem::ApiError,
    state::AppState,
};
use axum::{extract::State, http::StatusCode};
use domain::AddressInput;
use serde::Deserialize;
use services::catalog::nullable;
use services::identity::{AddressPatch, AddressView, ProfilePatch, UserView};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatchRequest {
    /// A new email needs `current_password`.
    pub email: Option<String>,
    /// `null` clears the name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    #[schema(format = Password)]
    pub current_password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressRequest {
    #[schema(example = "Ann Example")]
    pub name: String,
    #[schema(example = "1 Main Street")]
    pub line1: String,
    pub line2: Option<String>,
    #[schema(example = "Berlin")]
    pub city: String,
    #[schema(example = "10115")]
    pub postal_code: String,
    /// ISO-3166 alpha-2.
    #[schema(example = "DE")]
    pub country: String,
    pub phone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressPatchRequest {
    pub name: Option<String>,
    pub line1: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub line2: Option<Option<String>>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub phone: Option<Option<String>>,
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])), responses((status = 200, body = UserView), (status = 401)))]
pub async fn get_me(State(state): State<AppState>, auth: Auth) -> Result<axum::Json<UserView>, ApiError> {
    Ok(axum::Json(state.identity.me(auth.actor.id).await?))
}

/// Change the caller's name or email.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", security(("bearer" = [])), request_body = ProfilePatchRequest,
    responses((status = 200, body = UserView), (status = 403, description = "wrong current password"), (status = 409, description = "email taken"), (status = 422)))]
pub async fn patch_me(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<ProfilePatchRequest>,
) -> Result<axum::Json<UserView>, ApiError> {
    let patch = ProfilePatch { email: req.email, name: req.name, current_password: req.current_password };
    Ok(axum::Json(state.identity.update_me(&auth.meta, auth.actor.id, patch).await?))
}

/// The caller's address book (at most 50 entries, one page).
#[utoipa::path(get, path = "/api/v1/me/addresses", tag = "me", security(("bearer" = [])), responses((status = 200, body = List<AddressView>)))]
pub async fn list_addresses(State(state): State<AppState>, auth: Auth) -> Result<axum::Json<List<AddressView>>, ApiError> {
    Ok(axum::Json(List::all(state.identity.list_addresses(auth.actor.id).await?)))
}

#[utoipa::path(post, path = "/api/v1/me/addresses", tag = "me", security(("bearer" = [])), request_body = AddressRequest,
    responses((status = 201, body = AddressView), (status = 422)))]
pub async fn add_address(
    State(state): State<AppState>,
    auth: Auth,
    Json(r): Json<AddressRequest>,
) -> Result<(StatusCode, axum::Json<AddressView>), ApiError> {
    let input = AddressInput {
        name: r.name,
        line1: r.line1,
        line2: r.line2,
        city: r.city,
        postal_code: r.postal_code,
        country: r.country,
        phone: r.phone,
    };
    Ok((StatusCode::CREATED, axum::Json(state.identity.add_address(&auth.meta, auth.actor.id, &input).await?)))
}

/// One of the caller's addresses; another customer's address is a 404.
#[utoipa::path(get, path = "/api/v1/me/addresses/{id}", tag = "me", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = AddressView), (status = 404)))]
pub async fn get_address(State(state): State<AppState>, auth: Auth, Path(id): Path<Uuid>) -> Result<axum::Json<AddressView>, ApiError> {
    Ok(axum::Json(state.identity.get_address(auth.actor.id, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/me/addresses/{id}", tag = "me", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = AddressPatchRequest,
    responses((status = 200, body = AddressView), (status = 404), (status = 422)))]
pub async fn patch_address(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(r): Json<AddressPatchRequest>,
) -> Result<axum::Json<AddressView>, ApiError> {
    let patch = AddressPatch {
        name: r.name,
        line1: r.line1,
        line2: r.line2,
        city: r.city,
        postal_code: r.postal_code,
        country: r.country,
        phone: r.phone,
    };
    Ok(axum::Json(state.identity.update_address(&auth.meta, auth.actor.id, id, patch).await?))
}

#[utoipa::path(delete, path = "/api/v1/me/addresses/{id}", tag = "me", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_address(State(state): State<AppState>, auth: Auth, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    state.identity.delete_address(&auth.meta, auth.actor.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
