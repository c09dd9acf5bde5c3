//! Operations: security headers, compression, CORS, timeouts, panics, metrics, probes,
//! database outages and graceful shutdown.

use crate::support::{TestApp, assert_problem, pg_base};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::spawn().await;
    for path in ["/api/v1/products", "/api/v1/nowhere", "/live"] {
        let res = app.get(path, None).await;
        let h = res.headers();
        assert_eq!(h["strict-transport-security"], "max-age=31536000; includeSubDomains; preload", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        assert_eq!(h["x-dns-prefetch-control"], "off");
        assert_eq!(h["x-permitted-cross-domain-policies"], "none");
        assert_eq!(h["x-xss-protection"], "0");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'")
                && csp.contains("img-src 'self' data: https:")
                && csp.contains("style-src 'self' 'unsafe-inline'")
        );
        assert!(!h.contains_key("x-powered-by") && !h.contains_key("server"));
    }
}

#[tokio::test]
async fn compression_follows_accept_encoding() {
    let app = TestApp::spawn_with(|c| c.seed_on_startup = Some(true)).await;
    for enc in ["gzip", "br", "zstd"] {
        let res = app.req(Method::GET, "/api/v1/products?limit=50", None).header("accept-encoding", enc).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-encoding"], enc);
    }
    let plain = app.get("/api/v1/products?limit=50", None).await;
    assert!(!plain.headers().contains_key("content-encoding"));
    assert!(plain.json::<Value>().await.unwrap()["data"].as_array().unwrap().len() > 10);
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let app = TestApp::spawn_with(|c| c.cors_origin = "https://shop.example, https://admin.example".into()).await;
    let preflight = |origin: &'static str| {
        app.req(Method::OPTIONS, "/api/v1/carts", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, x-cart-token")
            .send()
    };
    let ok = preflight("https://shop.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("x-cart-token"));
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
    let simple = app.req(Method::GET, "/api/v1/products", None).header("origin", "https://admin.example").send().await.unwrap();
    assert_eq!(simple.headers()["access-control-allow-origin"], "https://admin.example");
    assert!(simple.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));
}

#[tokio::test]
async fn slow_requests_time_out_with_a_problem() {
    let app = TestApp::spawn_with(|c| c.request_timeout_ms = 1).await;
    // Registration hashes a password: well over a millisecond.
    let res = app.post("/api/v1/auth/register", None, json!({"email": "slow@example.com", "password": "correct horse battery"})).await;
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
}

#[tokio::test]
async fn a_panicking_handler_answers_500_problem_with_the_request_id() {
    use tower::ServiceExt;
    let app = TestApp::spawn().await;
    let router = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if true {
                panic!("kaboom")
            }
        }),
    );
    let router = http_api::with_layers(router, app.state.clone());
    let req = axum::http::Request::get("/boom").header("x-request-id", "panic-1").body(axum::body::Body::empty()).unwrap();
    let res = router.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((body["code"].as_str(), body["request_id"].as_str()), (Some("internal_error"), Some("panic-1")));
    assert!(!body.to_string().contains("kaboom"), "the cause stays in the log");
}

#[tokio::test]
async fn metrics_use_route_templates_and_can_be_protected() {
    let app = TestApp::spawn_with(|c| {
        c.seed_on_startup = Some(true);
        c.metrics_token = Some(platform::Secret::new("scrape-me"));
    })
    .await;
    let page: Value = app.get("/api/v1/products?limit=1", None).await.json().await.unwrap();
    let slug = page["data"][0]["slug"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/api/v1/products/{slug}"), None).await.status(), StatusCode::OK);
    app.get("/api/v1/products/no-such-thing", None).await;
    assert_problem(app.get("/metrics", None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_problem(app.get("/metrics", Some("wrong")).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let res = app.get("/metrics", Some("scrape-me")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#"valuva_http_requests_total{method="GET",route="/api/v1/products/{id_or_slug}",status="2xx"}"#), "{text}");
    assert!(text.contains("valuva_http_request_duration_seconds_bucket"));
    assert!(!text.contains(&slug), "raw paths never become labels");
    assert!(text.contains(r#"valuva_http_errors_total{code="not_found"}"#));
    assert!(text.contains("valuva_db_queries_total"));
    assert!(text.contains(r#"valuva_db_pool_connections{pool="primary",state="max"}"#));
    assert!(text.contains("valuva_catalog_operations_total"));
    assert!(text.contains("valuva_process_resident_memory_bytes"));
    assert!(text.contains("valuva_http_connections_active"));
}

#[tokio::test]
async fn metrics_can_have_their_own_port() {
    let app = TestApp::spawn_with(|c| c.metrics_port = Some(0)).await;
    assert_problem(app.get("/metrics", None).await, StatusCode::NOT_FOUND, "not_found").await;
    let addr = app.metrics_addr.expect("metrics listener");
    let res = app.client.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("valuva_"));
}

#[tokio::test]
async fn ready_follows_the_database_and_recovers_without_a_restart() {
    let Some(base) = pg_base() else {
        // The embedded SQLite file cannot become unreachable; the PostgreSQL run covers this.
        return;
    };
    let (direct, name) = crate::support::create_pg_database(&base).await;
    let proxy = crate::proxy::Proxy::start("127.0.0.1:5432").await;
    let via_proxy = format!("{}?pool_timeout=2&connect_timeout=2", direct.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port)));
    let app = TestApp::spawn_with(|c| c.database_url = via_proxy.clone()).await;
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);

    proxy.down();
    let res = app.get("/ready", None).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"]["status"], "unhealthy");
    assert_eq!(app.get("/live", None).await.status(), StatusCode::OK, "liveness checks no dependency");
    let res = app.get("/api/v1/products", None).await;
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE, "database_unavailable").await;

    proxy.up();
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/products", None).await.status(), StatusCode::OK);
    drop(app);
    crate::support::drop_pg_database(base, name);
}

#[tokio::test]
async fn ready_waits_for_migrations() {
    let app = TestApp::spawn_with(|c| c.migrate_on_start = false).await;
    let res = app.get("/ready", None).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["migrations"]["status"], "unhealthy");
    app.state.db.migrate().await.unwrap();
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);
}

/// The CPUs a thread of this process may run on, as Linux lists them (`0-1`, `1`).
#[cfg(target_os = "linux")]
fn cpus_of(task: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{task}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(|c| c.trim().to_owned())
}

#[cfg(target_os = "linux")]
fn sqlite_connection_threads() -> std::collections::HashSet<String> {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap().flatten();
    let named = |t: &std::fs::DirEntry| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("sqlx-sqlite"));
    tasks.filter(named).map(|t| t.file_name().to_string_lossy().into_owned()).collect()
}

/// SQLite: the writer lane runs on one CPU, and the writer connection's thread (opened from the
/// lane) on the same one, so the statements they hand each other never wake the other CPU.
/// Fails if the connection is opened anywhere else: no new connection thread would share the
/// lane's CPU.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn sqlite_writer_lane_and_connection_share_one_cpu() {
    if pg_base().is_some() {
        return; // No lane on PostgreSQL.
    }
    let process = cpus_of("self").unwrap();
    let before = sqlite_connection_threads();
    let app = TestApp::spawn().await;
    let lane = app.state.db.writing(async { cpus_of("thread-self").unwrap() }).await.unwrap();
    if !process.contains(['-', ',']) {
        assert_eq!(lane, process, "one CPU: nothing to pin");
        return;
    }
    assert!(lane.parse::<usize>().is_ok(), "lane may run on {lane}, process on {process}");
    let new: Vec<String> = sqlite_connection_threads().difference(&before).filter_map(|t| cpus_of(&format!("self/task/{t}"))).collect();
    assert!(new.contains(&lane), "no new SQLite connection thread on the lane's CPU {lane}: {new:?}");
    assert!(new.contains(&process), "the read-only pool's threads stay free to run anywhere: {new:?}");
}

/// SQLite: the WAL is copied back into the database file by the checkpointer's connection,
/// not by the one writer (whose own automatic checkpoint only starts at 16,384 pages, far
/// beyond what this test writes): the file on disk catches up with every committed page.
#[tokio::test]
async fn sqlite_wal_is_checkpointed_beside_the_writer() {
    if pg_base().is_some() {
        return; // PostgreSQL manages its own WAL; the SQLite run covers this.
    }
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn_with(|c| c.seed_on_startup = Some(true)).await;
    let file = app.dir.path().join("valuva.db");
    let conn = app.state.db.current();
    let pragma = |name: &str| {
        let sql = format!("SELECT {name} AS n FROM pragma_{name}");
        async move {
            let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap().unwrap();
            row.try_get::<i64>("", "n").unwrap() as u64
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        // What the readers see (through the WAL) against what the file itself holds.
        let committed = pragma("page_count").await * pragma("page_size").await;
        let on_disk = std::fs::metadata(&file).unwrap().len();
        if on_disk == committed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "database file {on_disk} bytes, committed {committed}: never checkpointed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(text.contains("valuva_sqlite_wal_frames"), "{text}");
}
