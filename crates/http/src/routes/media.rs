//! Image uploads (staff) and, for the local storage directory, the stored files.

use super::List;
use crate::{
    extract::{Path, Query, Staff},
    problem::ApiError,
    state::AppState,
};
use axum::{
    extract::{Multipart, State, multipart::MultipartRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use services::{media::MediaView, pagination::PageRequest};
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadsQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The media library: every upload, newest first.
#[utoipa::path(get, path = "/api/v1/admin/uploads", tag = "admin-catalog", params(UploadsQuery), security(("bearer" = [])),
    responses((status = 200, body = List<MediaView>), (status = 401), (status = 403), (status = 422)))]
pub async fn list(_: Staff, State(state): State<AppState>, Query(q): Query<UploadsQuery>) -> Result<axum::Json<List<MediaView>>, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor)?;
    Ok(axum::Json(state.media.list(page).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/admin/uploads/{id}", tag = "admin-catalog", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = MediaView), (status = 404)))]
pub async fn get(_: Staff, State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<axum::Json<MediaView>, ApiError> {
    Ok(axum::Json(state.media.get(id).await?))
}

/// Deletes an upload and its files; refused while a product still shows it.
#[utoipa::path(delete, path = "/api/v1/admin/uploads/{id}", tag = "admin-catalog", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 404), (status = 409, description = "media_in_use: a product lists one of its URLs")))]
pub async fn delete(staff: Staff, State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    state.media.delete(&staff.meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One image (multipart field `file`): JPEG, PNG, WebP or GIF up to UPLOAD_MAX_BYTES. The type
/// is read from the bytes; metadata is stripped; WebP renditions 200/800/1600 px wide are made.
#[utoipa::path(post, path = "/api/v1/admin/uploads", tag = "admin-catalog", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "field `file`: the image"),
    responses((status = 201, body = MediaView), (status = 400), (status = 413), (status = 415), (status = 422), (status = 503)))]
pub async fn upload(
    staff: Staff,
    State(state): State<AppState>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, axum::Json<MediaView>), ApiError> {
    // Its one rejection: the content type is not multipart/form-data (or has no boundary).
    let mut form = form.map_err(|_| {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "the request body must be multipart/form-data")
    })?;
    let max = state.config.upload_max_bytes;
    let malformed = |e: axum::extract::multipart::MultipartError| ApiError::bad_request("invalid_multipart", e.body_text());
    let mut file = None;
    while let Some(mut field) = form.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue;
        }
        // Counted while streaming: an oversized body is refused without being held in memory.
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if (bytes.len() + chunk.len()) as u64 > max {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("uploads are limited to {max} bytes"),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(bytes);
    }
    let bytes = file.filter(|b| !b.is_empty()).ok_or_else(|| ApiError::field("file", "is required (multipart field `file`)"))?;
    Ok((StatusCode::CREATED, axum::Json(state.media.upload(&staff.meta, bytes).await?)))
}

/// A stored upload, from the local storage directory (`STORAGE_URL=file://…`); cached for a year
/// (names never change).
#[utoipa::path(get, path = "/media/{id}/{name}", tag = "catalog", params(("id" = String, Path), ("name" = String, Path, example = "w800.webp")),
    responses((status = 200, description = "the file", content_type = "image/webp"), (status = 404)))]
pub async fn file(State(state): State<AppState>, Path((id, name)): Path<(String, String)>) -> Result<Response, ApiError> {
    let body = state.media.read(&format!("{id}/{name}")).await?.ok_or_else(ApiError::not_found)?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(services::media::image::content_type_of(&name))),
        (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
    ];
    Ok((headers, body).into_response())
}
