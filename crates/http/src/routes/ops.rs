//! Probes. `/live` checks nothing but the process; `/ready` says whether this instance should
//! get traffic; `/health` reports details for people and dashboards.

use crate::state::AppState;
use axum::{extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use std::time::Instant;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Live {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers. Checks no dependency.
#[utoipa::path(get, path = "/live", tag = "ops", responses((status = 200, body = Live)))]
pub async fn live() -> axum::Json<Live> {
    axum::Json(Live { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    pub status: &'static str,
    pub latency_ms: Option<f64>,
    pub detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// healthy | unhealthy
    pub status: &'static str,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub uptime_seconds: u64,
    pub version: &'static str,
    pub shutting_down: bool,
    pub database: Check,
    pub migrations: Check,
}

async fn database(state: &AppState) -> (Check, Check) {
    let t = Instant::now();
    let db = match state.db.ping().await {
        Ok(()) => Check { status: "healthy", latency_ms: Some(t.elapsed().as_secs_f64() * 1000.0), detail: None },
        Err(_) => Check { status: "unhealthy", latency_ms: None, detail: Some("database unreachable".into()) },
    };
    let migrations = match state.db.pending_migrations().await {
        Ok(0) => Check { status: "healthy", latency_ms: None, detail: None },
        Ok(n) => Check { status: "unhealthy", latency_ms: None, detail: Some(format!("{n} migrations pending")) },
        Err(_) => Check { status: "unhealthy", latency_ms: None, detail: Some("cannot read migration state".into()) },
    };
    (db, migrations)
}

async fn report(state: &AppState) -> (StatusCode, Health) {
    let (database, migrations) = database(state).await;
    let healthy = database.status == "healthy" && migrations.status == "healthy" && !state.is_shutting_down();
    let health = Health {
        status: if healthy { "healthy" } else { "unhealthy" },
        timestamp: chrono::Utc::now(),
        uptime_seconds: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
        shutting_down: state.is_shutting_down(),
        database,
        migrations,
    };
    (if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, health)
}

/// Readiness: database reachable, migrations applied, not shutting down.
#[utoipa::path(get, path = "/ready", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let (status, health) = report(&state).await;
    (status, axum::Json(health))
}

/// Health details of every dependency.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (status, health) = report(&state).await;
    (status, axum::Json(health))
}
