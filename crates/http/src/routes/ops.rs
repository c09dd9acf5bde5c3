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
    /// healthy | degraded (Redis or the replica is away; still serving) | unhealthy
    pub status: &'static str,
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub uptime_seconds: u64,
    pub version: &'static str,
    pub shutting_down: bool,
    pub database: Check,
    pub migrations: Check,
    /// Absent without `REDIS_URL`. Unhealthy Redis leaves the instance ready (degraded): cache
    /// and rate limits fall back to in-process.
    pub redis: Option<Check>,
    /// Resident memory of the process, MiB.
    pub memory_rss_mb: Option<f64>,
    #[schema(value_type = Object)]
    pub pools: serde_json::Value,
    /// The same, in the shape of the seed system's health check, for its dashboards.
    pub uptime: u64,
    /// `SENTRY_ENVIRONMENT`: the deployment's name.
    pub environment: String,
    pub checks: Checks,
}

/// One word per dependency (`healthy`, `unhealthy`), and memory.
#[derive(Serialize, ToSchema)]
pub struct Checks {
    pub database: &'static str,
    pub migrations: &'static str,
    /// Absent without `REDIS_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
    pub memory: MemoryCheck,
}

/// Resident memory against the cgroup's limit (a container's), in MiB. There is no
/// garbage-collected heap to report: resident memory is the figure.
#[derive(Serialize, ToSchema)]
pub struct MemoryCheck {
    /// `healthy`, or `high` at 90% of the limit or more.
    pub status: &'static str,
    pub rss: Option<f64>,
    /// Absent when the process has no memory limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
}

fn memory() -> MemoryCheck {
    let mib = |b: u64| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0;
    let (rss, limit) = (platform::metrics::rss_bytes(), platform::metrics::memory_limit_bytes());
    let high = matches!((rss, limit), (Some(r), Some(l)) if r >= l / 10 * 9);
    MemoryCheck { status: if high { "high" } else { "healthy" }, rss: rss.map(mib), limit: limit.map(mib) }
}

async fn database(state: &AppState) -> (Check, Check) {
    let t = Instant::now();
    let db = match state.db.ping().await {
        Ok(()) => Check { status: "healthy", latency_ms: Some(t.elapsed().as_secs_f64() * 1000.0), detail: None },
        Err(_) => Check { status: "unhealthy", latency_ms: None, detail: Some("database unreachable".into()) },
    };
    let migrations = match state.schema_current().await {
        Ok(true) => Check { status: "healthy", latency_ms: None, detail: None },
        Ok(false) => Check { status: "unhealthy", latency_ms: None, detail: Some("migrations pending".into()) },
        Err(_) => Check { status: "unhealthy", latency_ms: None, detail: Some("cannot read migration state".into()) },
    };
    (db, migrations)
}

async fn redis(state: &AppState) -> Option<Check> {
    let redis = state.redis.as_ref()?;
    let t = Instant::now();
    Some(match redis.ping().await {
        Ok(()) => Check { status: "healthy", latency_ms: Some(t.elapsed().as_secs_f64() * 1000.0), detail: None },
        Err(_) => {
            Check { status: "unhealthy", latency_ms: None, detail: Some("redis unreachable; serving from in-process fallbacks".into()) }
        }
    })
}

async fn report(state: &AppState) -> (StatusCode, Health) {
    let ((database, migrations), redis) = tokio::join!(database(state), redis(state));
    let healthy = database.status == "healthy" && migrations.status == "healthy" && !state.is_shutting_down();
    let replica = state.db.replica_status();
    let degraded = redis.as_ref().is_some_and(|r| r.status != "healthy") || replica.is_some_and(|r| !r.usable);
    let (primary_statements, replica_statements) = state.db.statement_counts();
    let checks =
        Checks { database: database.status, migrations: migrations.status, redis: redis.as_ref().map(|r| r.status), memory: memory() };
    let uptime = state.started.elapsed().as_secs();
    let health = Health {
        status: match (healthy, degraded) {
            (false, _) => "unhealthy",
            (true, true) => "degraded",
            (true, false) => "healthy",
        },
        timestamp: chrono::Utc::now(),
        uptime_seconds: uptime,
        version: env!("CARGO_PKG_VERSION"),
        shutting_down: state.is_shutting_down(),
        database,
        migrations,
        redis,
        memory_rss_mb: platform::metrics::rss_bytes().map(|b| b as f64 / 1_048_576.0),
        pools: {
            let (primary, replica) = state.db.pool_stats();
            let mut pools = serde_json::json!({"primary": {"connections": primary, "statements": primary_statements}, "replica": null});
            pools[state.db.read_pool_label()] = serde_json::json!(
                replica
                    .map(|r| serde_json::json!({"connections": r, "statements": replica_statements, "status": state.db.replica_status()}))
            );
            pools
        },
        uptime,
        environment: state.config.sentry_environment.clone(),
        checks,
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

/// Prometheus metrics (text exposition format). With METRICS_TOKEN set it needs
/// `Authorization: Bearer <token>`; with METRICS_PORT set it is served on that port only.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String), (status = 401)))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, crate::problem::ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let sent = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), token.expose().as_bytes())) {
            return Err(crate::problem::ApiError::unauthorized());
        }
    }
    // Gauges read at scrape time.
    let (primary, replica) = state.db.pool_stats();
    for (pool, s) in [("primary", Some(primary)), ("replica", replica)] {
        if let Some(s) = s {
            metrics::gauge!("valuva_db_pool_connections", "pool" => pool, "state" => "idle").set(s.idle as f64);
            metrics::gauge!("valuva_db_pool_connections", "pool" => pool, "state" => "in_use").set(s.size.saturating_sub(s.idle) as f64);
            metrics::gauge!("valuva_db_pool_connections", "pool" => pool, "state" => "max").set(s.max as f64);
        }
    }
    // Queue depth, read at scrape time (indexed by status).
    if let Ok(depth) = state.jobs.depth().await {
        for status in ["queued", "running", "dead"] {
            let n = depth.iter().find(|(s, _)| s == status).map(|(_, n)| *n).unwrap_or(0);
            metrics::gauge!("valuva_jobs", "status" => status).set(n as f64);
        }
    }
    if let Some(rss) = platform::metrics::rss_bytes() {
        metrics::gauge!("valuva_process_resident_memory_bytes").set(rss as f64);
    }
    let body = state.metrics.render();
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}
