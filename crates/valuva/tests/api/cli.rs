//! The `valuva` binary's commands, run as a real process against the test's database.

use crate::support::TestApp;
use std::process::{Command, Output};

fn valuva(app: &TestApp, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_valuva"));
    cmd.args(args)
        .current_dir(app.dir.path())
        .env("DATABASE_URL", &app.config.database_url)
        .env("JWT_SECRET", app.config.jwt_secret.as_ref().unwrap().expose())
        .env("LOG_LEVEL", "warn")
        .env_remove("PORT");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("valuva runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

// Multi-threaded: the in-process server must keep running while this thread waits on the
// child process (it may hold SQLite's write lock the child needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_then_fails_after_a_direct_sql_edit() {
    let app = TestApp::spawn().await;
    app.register("a@example.com").await;
    app.register("b@example.com").await;
    let ok = valuva(&app, &["audit", "verify"], &[]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("audit chain OK: 2 rows"));

    app.exec("UPDATE audit_logs SET new_values = '{\"email\":\"mallory@example.com\"}' WHERE seq = 1").await;
    let bad = valuva(&app, &["audit", "verify"], &[]);
    assert!(!bad.status.success());
    assert!(stdout(&bad).contains("BROKEN at row 1"), "{}", stdout(&bad));
}

// Multi-threaded: the in-process server must keep running while this thread waits on the
// child process (it may hold SQLite's write lock the child needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_bootstraps_an_admin_who_can_log_in() {
    let app = TestApp::spawn().await;
    let out = valuva(&app, &["admin", "create", "--email", "root@example.com", "--password", "admin password 1"], &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    let res = app.post("/api/v1/auth/login", None, serde_json::json!({"email": "root@example.com", "password": "admin password 1"})).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"]["role"], "admin");
    let bad = valuva(&app, &["admin", "create", "--email", "nope", "--password", "x"], &[]);
    assert!(!bad.status.success());
    assert!(stdout(&bad).contains("email"));
}

// Multi-threaded: the in-process server must keep running while this thread waits on the
// child process (it may hold SQLite's write lock the child needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_non_zero_naming_the_variable() {
    let app = TestApp::spawn().await;
    for (var, value) in [
        ("PORT", "eighty"),
        ("DATABASE_URL", "mysql://x"),
        ("JWT_SECRET", "short"),
        ("DB_POOL_MAX", "0"),
        ("SESSION_MAX_AGE_DAYS", "100000000"),
    ] {
        let out = valuva(&app, &["migrate"], &[(var, value)]);
        assert!(!out.status.success(), "{var}={value} accepted");
        assert!(stdout(&out).contains(var), "{var}: {}", stdout(&out));
    }
}

// Multi-threaded: the server must keep answering while this thread waits on the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_migrate_and_healthcheck_commands() {
    let app = TestApp::spawn().await;
    let spec = valuva(&app, &["openapi"], &[]);
    assert!(spec.status.success());
    let v: serde_json::Value = serde_json::from_slice(&spec.stdout).unwrap();
    assert!(v["paths"]["/api/v1/auth/login"].is_object());
    assert!(valuva(&app, &["migrate"], &[]).status.success());
    let live = format!("{}/live", app.base);
    assert!(valuva(&app, &["healthcheck", "--url", &live], &[]).status.success());
    assert!(!valuva(&app, &["healthcheck", "--url", "http://127.0.0.1:1/live"], &[]).status.success());
}

// Multi-threaded: the in-process server must keep running while this thread waits on the
// child process (it may hold SQLite's write lock the child needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_commands_and_ledger_verification() {
    let app = TestApp::spawn().await;
    let out = valuva(&app, &["seed", "--products", "300", "--batch", "128"], &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("seeded 300 products"), "{}", stdout(&out));
    assert_eq!(app.count("products").await, 300);
    assert_eq!(app.count("variants").await, 600);
    let demo = valuva(&app, &["seed"], &[]);
    assert!(stdout(&demo).contains("0 products created"), "demo seeding skips a non-empty catalog: {}", stdout(&demo));
    let ok = valuva(&app, &["inventory", "verify"], &[]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    app.exec("UPDATE variants SET stock = stock + 1 WHERE id IN (SELECT id FROM variants ORDER BY id LIMIT 1)").await;
    let bad = valuva(&app, &["inventory", "verify"], &[]);
    assert!(!bad.status.success());
    assert!(stdout(&bad).contains("MISMATCH SYN-"), "{}", stdout(&bad));
}

// Multi-threaded: the in-process server must keep running while this thread waits on the
// child process (it may hold SQLite's write lock the child needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_embedded_database_gets_the_demo_catalog() {
    let app = TestApp::spawn_with(|c| c.seed_on_startup = Some(true)).await;
    let page: serde_json::Value = app.get("/api/v1/products?limit=100", None).await.json().await.unwrap();
    let n = page["data"].as_array().unwrap().len();
    assert!((40..=60).contains(&n), "{n} demo products");
    let tree: serde_json::Value = app.get("/api/v1/categories", None).await.json().await.unwrap();
    assert_eq!(tree["data"].as_array().unwrap().len(), 3);
    assert!(services::inventory::verify(&app.state.db).await.unwrap().is_empty());
    assert_eq!(services::audit::verify(&app.state.db).await.unwrap().first_problem, None);
}
