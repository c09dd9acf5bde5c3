//! Staff catalog management: products, variants, categories, inventory.

use super::List;
use crate::{
    extract::{IdempotencyKey, Json, Path, Query, Staff},
    problem::ApiError,
    state::AppState,
};
use axum::{
    extract::State,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use services::{
    catalog::{
        CategoryPatch, CategoryView, DeleteCategory, ListingQuery, NewCategory, NewProduct, NewVariant, ProductPatch, ProductView,
        VariantPatch, VariantView,
    },
    idempotency::Outcome,
    inventory::{Adjustment, MovementView},
    pagination::PageRequest,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminProductsQuery {
    /// draft | active | archived
    pub status: Option<String>,
    pub q: Option<String>,
    pub category: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Every product in any status (deleted ones excluded), with exact stock.
#[utoipa::path(get, path = "/api/v1/admin/products", tag = "admin-catalog", security(("bearer" = [])), params(AdminProductsQuery),
    responses((status = 200, body = List<ProductView>), (status = 401), (status = 403), (status = 422)))]
pub async fn list_products(
    State(state): State<AppState>,
    _: Staff,
    Query(q): Query<AdminProductsQuery>,
) -> Result<axum::Json<List<ProductView>>, ApiError> {
    let query = ListingQuery {
        category: q.category,
        q: q.q,
        min_price: None,
        max_price: None,
        sort: q.sort,
        status: q.status,
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(state.catalog.list_products(query, true).await?.into()))
}

/// Create a product with its variants (initial stock goes into the inventory ledger).
#[utoipa::path(post, path = "/api/v1/admin/products", tag = "admin-catalog", security(("bearer" = [])), request_body = NewProduct,
    responses((status = 201, body = ProductView), (status = 409, description = "SKU or slug taken"), (status = 422)))]
pub async fn create_product(
    State(state): State<AppState>,
    staff: Staff,
    Json(input): Json<NewProduct>,
) -> Result<(StatusCode, axum::Json<ProductView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(state.catalog.create_product(&staff.meta, input).await?)))
}

#[utoipa::path(get, path = "/api/v1/admin/products/{id}", tag = "admin-catalog", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ProductView), (status = 404)))]
pub async fn get_product(State(state): State<AppState>, _: Staff, Path(id): Path<Uuid>) -> Result<axum::Json<ProductView>, ApiError> {
    Ok(axum::Json(state.catalog.admin_product(id).await?))
}

/// Change product fields; `category_ids` replaces the set.
#[utoipa::path(patch, path = "/api/v1/admin/products/{id}", tag = "admin-catalog", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ProductPatch,
    responses((status = 200, body = ProductView), (status = 404), (status = 409, description = "slug locked or taken, options in use"), (status = 422)))]
pub async fn patch_product(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<Uuid>,
    Json(patch): Json<ProductPatch>,
) -> Result<axum::Json<ProductView>, ApiError> {
    Ok(axum::Json(state.catalog.update_product(&staff.meta, id, patch).await?))
}

/// Soft-delete a product.
#[utoipa::path(delete, path = "/api/v1/admin/products/{id}", tag = "admin-catalog", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_product(State(state): State<AppState>, staff: Staff, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    state.catalog.delete_product(&staff.meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/admin/products/{id}/variants", tag = "admin-catalog", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = NewVariant,
    responses((status = 201, body = ProductView), (status = 404), (status = 409, description = "SKU taken or duplicate option values"), (status = 422)))]
pub async fn add_variant(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<Uuid>,
    Json(input): Json<NewVariant>,
) -> Result<(StatusCode, axum::Json<ProductView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(state.catalog.add_variant(&staff.meta, id, input).await?)))
}

/// Change SKU, price, options or weight. Stock changes go through the inventory endpoint.
#[utoipa::path(patch, path = "/api/v1/admin/products/{id}/variants/{variant_id}", tag = "admin-catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("variant_id" = Uuid, Path)), request_body = VariantPatch,
    responses((status = 200, body = VariantView), (status = 404), (status = 409), (status = 422)))]
pub async fn patch_variant(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, variant)): Path<(Uuid, Uuid)>,
    Json(patch): Json<VariantPatch>,
) -> Result<axum::Json<VariantView>, ApiError> {
    Ok(axum::Json(state.catalog.update_variant(&staff.meta, id, variant, patch).await?))
}

#[utoipa::path(delete, path = "/api/v1/admin/products/{id}/variants/{variant_id}", tag = "admin-catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("variant_id" = Uuid, Path)), responses((status = 204), (status = 404), (status = 409, description = "last variant of an active product")))]
pub async fn delete_variant(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, variant)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state.catalog.delete_variant(&staff.meta, id, variant).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryAdjustment {
    /// Units to add (negative removes).
    #[schema(example = 10)]
    pub delta: i64,
    #[schema(example = "restock from supplier")]
    pub reason: String,
}

/// Adjust stock; idempotent with `Idempotency-Key` (a replay answers the first response with
/// `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/api/v1/admin/variants/{id}/inventory", tag = "admin-catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = InventoryAdjustment,
    responses((status = 200, body = Adjustment), (status = 404), (status = 409, description = "insufficient stock or key in use"), (status = 422)))]
pub async fn adjust_inventory(
    State(state): State<AppState>,
    staff: Staff,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<Uuid>,
    Json(req): Json<InventoryAdjustment>,
) -> Result<Response, ApiError> {
    let outcome = state.inventory.adjust(&staff.meta, id, req.delta, &req.reason, key).await?;
    Ok(outcome_response(outcome, StatusCode::OK))
}

/// Renders a fresh result, or replays the stored first response.
pub fn outcome_response<T: serde::Serialize>(outcome: Outcome<T>, status: StatusCode) -> Response {
    match outcome {
        Outcome::Fresh(v) => (status, axum::Json(v)).into_response(),
        Outcome::Replayed { status, body } => {
            let mut res = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), axum::Json(body)).into_response();
            res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            res
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The inventory ledger of one variant, newest first.
#[utoipa::path(get, path = "/api/v1/admin/variants/{id}/inventory/movements", tag = "admin-catalog", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery), responses((status = 200, body = List<MovementView>), (status = 404)))]
pub async fn movements(
    State(state): State<AppState>,
    _: Staff,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<axum::Json<List<MovementView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor)?;
    Ok(axum::Json(state.inventory.movements(id, page).await?.into()))
}

/// The category tree (same as the storefront's).
#[utoipa::path(get, path = "/api/v1/admin/categories", tag = "admin-catalog", security(("bearer" = [])), responses((status = 200, body = List<CategoryView>)))]
pub async fn list_categories(State(state): State<AppState>, _: Staff) -> Result<axum::Json<List<CategoryView>>, ApiError> {
    Ok(axum::Json(List::all(state.catalog.category_tree().await?)))
}

#[utoipa::path(post, path = "/api/v1/admin/categories", tag = "admin-catalog", security(("bearer" = [])), request_body = NewCategory,
    responses((status = 201, body = CategoryView), (status = 409, description = "slug taken"), (status = 422)))]
pub async fn create_category(
    State(state): State<AppState>,
    staff: Staff,
    Json(input): Json<NewCategory>,
) -> Result<(StatusCode, axum::Json<CategoryView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(state.catalog.create_category(&staff.meta, input).await?)))
}

/// Rename, re-slug, move (`parent_id`) or reorder (`position`).
#[utoipa::path(patch, path = "/api/v1/admin/categories/{id}", tag = "admin-catalog", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = CategoryPatch,
    responses((status = 200, body = CategoryView), (status = 404), (status = 409, description = "cycle or slug taken"), (status = 422)))]
pub async fn patch_category(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<Uuid>,
    Json(patch): Json<CategoryPatch>,
) -> Result<axum::Json<CategoryView>, ApiError> {
    Ok(axum::Json(state.catalog.update_category(&staff.meta, id, patch).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteCategoryQuery {
    /// `reparent`: move sub-categories up to this category's parent.
    pub children: Option<String>,
    /// `detach`: remove the category from its products.
    pub products: Option<String>,
}

/// Delete a category. With sub-categories or products it answers 409 unless told what to do.
#[utoipa::path(delete, path = "/api/v1/admin/categories/{id}", tag = "admin-catalog", security(("bearer" = [])), params(("id" = Uuid, Path), DeleteCategoryQuery),
    responses((status = 204), (status = 404), (status = 409, description = "has children or products"), (status = 422)))]
pub async fn delete_category(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<Uuid>,
    Query(q): Query<DeleteCategoryQuery>,
) -> Result<StatusCode, ApiError> {
    let mut errors = Vec::new();
    if q.children.as_deref().is_some_and(|c| c != "reparent") {
        errors.push(services::FieldError::new("children", "must be reparent"));
    }
    if q.products.as_deref().is_some_and(|p| p != "detach") {
        errors.push(services::FieldError::new("products", "must be detach"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let how = DeleteCategory { reparent_children: q.children.is_some(), detach_products: q.products.is_some() };
    state.catalog.delete_category(&staff.meta, id, how).await?;
    Ok(StatusCode::NO_CONTENT)
}
