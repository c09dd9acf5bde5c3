//! Storefront catalog: categories, product listing/search, product pages.

use super::List;
use crate::{
    extract::{Path, Query},
    problem::ApiError,
    state::AppState,
};
use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use services::catalog::{CategoryView, ListingQuery, ProductView};
use utoipa::IntoParams;

/// The category tree.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog", responses((status = 200, body = List<CategoryView>)))]
pub async fn categories(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(json(state.catalog.category_tree_json().await?))
}

/// One category (by id or slug) with its sub-categories.
#[utoipa::path(get, path = "/api/v1/categories/{id_or_slug}", tag = "catalog", params(("id_or_slug" = String, Path)),
    responses((status = 200, body = CategoryView), (status = 404)))]
pub async fn category(State(state): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    Ok(json(state.catalog.category_json(&key).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductsQuery {
    /// Category id or slug; includes its sub-categories.
    pub category: Option<String>,
    /// Full-text search (title weighs more than description).
    pub q: Option<String>,
    /// Minor units; compared with the cheapest variant.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// newest (default) | price_asc | price_desc | title | relevance (default with q)
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl From<ProductsQuery> for ListingQuery {
    fn from(q: ProductsQuery) -> Self {
        ListingQuery {
            category: q.category,
            q: q.q,
            min_price: q.min_price,
            max_price: q.max_price,
            sort: q.sort,
            status: None,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

/// Active products, filtered, searched and keyset-paginated.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ProductsQuery),
    responses((status = 200, body = List<ProductView>), (status = 400, description = "invalid cursor"), (status = 422)))]
pub async fn products(State(state): State<AppState>, Query(q): Query<ProductsQuery>) -> Result<Response, ApiError> {
    Ok(json(state.catalog.products_json(q.into()).await?))
}

/// An active product by id or slug, with variants and availability.
#[utoipa::path(get, path = "/api/v1/products/{id_or_slug}", tag = "catalog", params(("id_or_slug" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404)))]
pub async fn product(State(state): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    Ok(json(state.catalog.product_json(&key).await?))
}

/// Cached, pre-serialized JSON as is.
fn json(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
