use crate::support::{TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn audit_rows_carry_context_and_filter_and_paginate() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..4 {
        let res = app
            .req(reqwest::Method::POST, "/api/v1/auth/register", None)
            .header("user-agent", "audit-test/1.0")
            .header("x-request-id", format!("req-{i}"))
            .json(&serde_json::json!({"email": format!("p{i}@example.com"), "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let page: Value = app.get("/api/v1/admin/audit-logs?action=CREATE&entity_type=user&limit=3", Some(&admin)).await.json().await.unwrap();
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["request_id"], "req-3");
    assert_eq!(rows[0]["user_agent"], "audit-test/1.0");
    assert_eq!(rows[0]["ip"], "127.0.0.1");
    assert_eq!(rows[0]["new_values"]["email"], "p3@example.com");
    let cursor = page["pagination"]["next_cursor"].as_str().unwrap();
    let next: Value = app
        .get(&format!("/api/v1/admin/audit-logs?action=CREATE&entity_type=user&limit=3&cursor={cursor}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let rest: Vec<&str> = next["data"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap_or("")).collect();
    assert_eq!(rest, ["req-0"]);
    assert_eq!(next["pagination"]["has_more"], false);

    // Time window: nothing before the epoch, everything since.
    let none: Value = app.get("/api/v1/admin/audit-logs?to=1970-01-01T00:00:00Z", Some(&admin)).await.json().await.unwrap();
    assert!(none["data"].as_array().unwrap().is_empty());
    let all: Value = app.get("/api/v1/admin/audit-logs?from=1970-01-01T00:00:00Z&limit=100", Some(&admin)).await.json().await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len() as i64, app.count("audit_logs").await);

    // A cursor from another filter still decodes (it is only a position), a forged one does not.
    let res = app.get("/api/v1/admin/audit-logs?cursor=MTIz.c2lnbmF0dXJl", Some(&admin)).await;
    assert_problem(res, StatusCode::BAD_REQUEST, "invalid_cursor").await;
}

#[tokio::test]
async fn chain_verifies_and_detects_edits_removals_and_pruning_keeps_it_valid() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.register(&format!("v{i}@example.com")).await;
    }
    let report = services::audit::verify(&app.state.db).await.unwrap();
    assert_eq!(report.first_problem, None);
    assert_eq!(report.rows_checked as i64, app.count("audit_logs").await);

    // Pruning everything older than "now + 1 day" keeps a verifiable chain (checkpoint).
    let removed = services::audit::prune(&app.state.db, &services::RequestMeta::system(), chrono::Utc::now() + chrono::TimeDelta::days(1))
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert_eq!(services::audit::verify(&app.state.db).await.unwrap().first_problem, None);
    app.register("after@example.com").await;
    assert_eq!(services::audit::verify(&app.state.db).await.unwrap().first_problem, None);

    app.exec("UPDATE audit_logs SET entity_type = 'forged' WHERE seq = 5").await;
    let report = services::audit::verify(&app.state.db).await.unwrap();
    assert_eq!(report.first_problem.map(|p| p.0), Some(5));

    // Deleting the newest row is caught by the head record.
    app.exec("UPDATE audit_logs SET entity_type = 'user' WHERE seq = 5").await;
    assert_eq!(services::audit::verify(&app.state.db).await.unwrap().first_problem, None);
    app.exec("DELETE FROM audit_logs WHERE seq = 5").await;
    assert!(services::audit::verify(&app.state.db).await.unwrap().first_problem.is_some());
}

/// The sealer writes its chain a chunk of rows per statement: a backlog spanning several chunks
/// is chained in creation order with no gap, and an edit deep inside it is found.
#[tokio::test]
async fn a_backlog_longer_than_a_chunk_is_chained_in_order() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let tx = db.begin().await.unwrap();
    for i in 0..250 {
        let change = services::audit::Change::new(domain::AuditAction::AdminAction, "backlog", i).new_values(serde_json::json!({"i": i}));
        services::audit::record(&tx, &services::RequestMeta::system(), change).await.unwrap();
    }
    // Committed together, so one sealer run (this one, or the instance's own) takes all 250.
    tx.commit().await.unwrap();
    services::audit::seal(db).await.unwrap();
    let unsealed = app.count("audit_logs WHERE seq IS NULL OR hash IS NULL").await;
    assert_eq!(unsealed, 0);
    let report = services::audit::verify(db).await.unwrap();
    assert_eq!(report.first_problem, None);
    assert_eq!(report.rows_checked as i64, app.count("audit_logs").await);

    app.exec("UPDATE audit_logs SET new_values = '{\"i\":0}' WHERE seq = 220").await;
    assert_eq!(services::audit::verify(db).await.unwrap().first_problem.map(|p| p.0), Some(220));
}
