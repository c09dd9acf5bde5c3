//! The HTTP edge: router, extractors, middleware, problem+json and the OpenAPI document.
//! Handlers parse input, call one service and shape the answer; no rules live here.

pub mod client;
pub mod extract;
pub mod middleware;
pub mod net;
pub mod problem;
pub mod routes;
mod security;
pub mod state;

pub use state::AppState;

use axum::http::{HeaderName, HeaderValue};
use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware::{from_fn, from_fn_with_state},
    response::IntoResponse,
};
use problem::ApiError;
use routes::{admin, admin_catalog as ac, admin_orders as ao, auth, carts, catalog, jobs, me, media, ops, webhooks};
use std::time::Duration;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::CompressionLayer,
    cors::{AllowOrigin, CorsLayer},
    timeout::TimeoutLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_swagger_ui::SwaggerUi;

/// JSON bodies larger than this are refused with 413.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(title = "Valuva", description = "Headless e-commerce API. Errors are application/problem+json (RFC 9457)."),
    modifiers(&BearerAuth),
    tags((name = "catalog"), (name = "auth"), (name = "me"), (name = "admin"), (name = "admin-catalog"), (name = "cart"), (name = "orders"), (name = "admin-orders"), (name = "webhooks"), (name = "ops"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

fn api(with_metrics: bool) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi());
    if with_metrics {
        api = api.routes(routes!(ops::metrics));
    }
    api.routes(routes!(ops::live))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::health))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::forgot))
        .routes(routes!(auth::reset))
        .routes(routes!(me::get_me, me::patch_me))
        .routes(routes!(me::list_addresses, me::add_address))
        .routes(routes!(me::get_address, me::patch_address, me::delete_address))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::patch_user))
        .routes(routes!(admin::audit_logs))
        .routes(routes!(catalog::categories))
        .routes(routes!(catalog::category))
        .routes(routes!(catalog::products))
        .routes(routes!(catalog::product))
        .routes(routes!(ac::list_products, ac::create_product))
        .routes(routes!(ac::get_product, ac::patch_product, ac::delete_product))
        .routes(routes!(ac::add_variant))
        .routes(routes!(ac::patch_variant, ac::delete_variant))
        .routes(routes!(ac::adjust_inventory))
        .routes(routes!(ac::movements))
        .routes(routes!(ac::list_categories, ac::create_category))
        .routes(routes!(ac::patch_category, ac::delete_category))
        .routes(routes!(carts::create))
        .routes(routes!(carts::get, carts::patch))
        .routes(routes!(carts::add_item))
        .routes(routes!(carts::set_quantity, carts::remove_item))
        .routes(routes!(carts::shipping_rates))
        .routes(routes!(carts::checkout))
        .routes(routes!(carts::my_orders))
        .routes(routes!(carts::my_order))
        .routes(routes!(carts::cancel_mine))
        .routes(routes!(ao::list))
        .routes(routes!(ao::get))
        .routes(routes!(ao::mark_paid))
        .routes(routes!(ao::fulfill))
        .routes(routes!(ao::ship))
        .routes(routes!(ao::deliver))
        .routes(routes!(ao::cancel))
        .routes(routes!(ao::refund))
        .routes(routes!(ao::zones, ao::create_zone))
        .routes(routes!(ao::zone, ao::patch_zone, ao::delete_zone))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::subscribe))
        // The upload enforces UPLOAD_MAX_BYTES itself, while streaming; the JSON limit is off.
        .merge(OpenApiRouter::new().routes(routes!(media::upload, media::list)).layer(DefaultBodyLimit::disable()))
        .routes(routes!(media::get, media::delete))
        .routes(routes!(media::file))
        .routes(routes!(webhooks::stripe))
        .routes(routes!(webhooks::shopify))
}

/// The OpenAPI document, as served at `/openapi.json` and printed by `valuva openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api(true).into_openapi()
}

/// The full application: API routes, docs, `/metrics` (unless it has its own port), and every
/// middleware layer, configured in one place.
pub fn router(state: AppState) -> Router {
    let (router, spec) = api(state.config.metrics_port.is_none()).split_for_parts();
    let router = router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this method is not allowed on this route")
        });
    with_layers(router, state)
}

/// `/metrics` alone, for METRICS_PORT.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", axum::routing::get(ops::metrics)).with_state(state)
}

/// Applies the middleware stack (outermost first): request id + access log + HTTP metrics,
/// CORS, compression, security headers, problem+json rendering, panic catching, timeout, body
/// limit.
pub fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    let timeout = Duration::from_millis(state.config.request_timeout_ms);
    let cors = cors(&state.config);
    let r = router
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "an unexpected error occurred").into_response()
        }))
        .layer(from_fn_with_state(state.clone(), client::identify_limit_route))
        .layer(from_fn(problem::render))
        .layer(from_fn(security::headers));
    r.layer(CompressionLayer::new()).layer(cors).layer(from_fn(middleware::request_id_and_log))
}

fn cors(config: &platform::Config) -> CorsLayer {
    use axum::http::{Method, header};
    let origins = config.cors_origins();
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-cart-token"),
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), HeaderName::from_static("idempotent-replayed"), header::RETRY_AFTER])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        // Any origin, but never with credentials (browsers refuse that combination anyway).
        base.allow_origin(AllowOrigin::any())
    } else {
        let list: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        base.allow_origin(AllowOrigin::list(list)).allow_credentials(true)
    }
}
