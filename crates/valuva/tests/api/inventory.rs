use crate::{
    catalog::product,
    support::{TestApp, assert_problem},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn variant(app: &TestApp, token: &str, stock: i64) -> String {
    let mut body = product("Stocked", &format!("STK-{}", uuid::Uuid::now_v7().simple()), 500);
    body["variants"][0]["stock"] = json!(stock);
    let p: Value = app.post("/api/v1/admin/products", Some(token), body).await.json().await.unwrap();
    p["variants"][0]["id"].as_str().unwrap().to_owned()
}

fn adjust(app: &TestApp, token: &str, variant: &str, key: Option<&str>, body: Value) -> reqwest::RequestBuilder {
    let r = app.req(Method::POST, &format!("/api/v1/admin/variants/{variant}/inventory"), Some(token)).json(&body);
    match key {
        Some(k) => r.header("idempotency-key", k),
        None => r,
    }
}

#[tokio::test]
async fn adjustments_are_idempotent_ledgered_and_audited() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let v = variant(&app, &staff, 10).await;

    let body = json!({"delta": 5, "reason": "restock"});
    let first = adjust(&app, &staff, &v, Some("key-1"), body.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["stock"], 15);
    // Replay: same answer, applied once.
    let replay = adjust(&app, &staff, &v, Some("key-1"), body.clone()).send().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    // Same key, other body: refused, nothing applied.
    let res = adjust(&app, &staff, &v, Some("key-1"), json!({"delta": 50, "reason": "restock"})).send().await.unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // Cannot go below zero.
    let res = adjust(&app, &staff, &v, Some("key-2"), json!({"delta": -16, "reason": "shrinkage"})).send().await.unwrap();
    assert_problem(res, StatusCode::CONFLICT, "insufficient_stock").await;
    // A failed attempt frees its key.
    let res = adjust(&app, &staff, &v, Some("key-2"), json!({"delta": -15, "reason": "shrinkage"})).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["stock"], 0);
    let p: Value = app.get("/api/v1/admin/products?limit=1", Some(&staff)).await.json().await.unwrap();
    assert_eq!(p["data"][0]["variants"][0]["availability"], "out_of_stock");

    let ledger: Value = app.get(&format!("/api/v1/admin/variants/{v}/inventory/movements"), Some(&staff)).await.json().await.unwrap();
    let deltas: Vec<i64> = ledger["data"].as_array().unwrap().iter().map(|m| m["delta"].as_i64().unwrap()).collect();
    assert_eq!(deltas, [-15, 5, 10]);
    assert_eq!(ledger["data"][0]["stock_after"], 0);
    let logs: Value =
        app.get(&format!("/api/v1/admin/audit-logs?action=INVENTORY&entity_id={v}"), Some(&staff)).await.json().await.unwrap();
    assert_eq!(logs["data"].as_array().unwrap().len(), 2);
    assert_eq!(logs["data"][1]["old_values"]["stock"], 10);
    assert_eq!(logs["data"][1]["new_values"]["stock"], 15);
    assert!(services::inventory::verify(&app.state.db).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_removals_never_drive_stock_negative() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let v = variant(&app, &staff, 20).await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let req = adjust(&app, &staff, &v, Some(&format!("k{i}")), json!({"delta": -1, "reason": "sold offline"}));
            tokio::spawn(async move { req.send().await.unwrap().status() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 20);
    let p: Value = app.get("/api/v1/admin/products?limit=1", Some(&staff)).await.json().await.unwrap();
    assert_eq!(p["data"][0]["variants"][0]["stock"], 0);
    assert!(services::inventory::verify(&app.state.db).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_adjustments_are_rejected_and_change_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let v = variant(&app, &staff, 3).await;
    let customer = app.customer_token("c@example.com").await;
    let before = (app.count("inventory_movements").await, app.count("audit_logs").await, app.count("idempotency_keys").await);
    for (body, status, code) in [
        (json!({"delta": 0, "reason": "x"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"delta": 1, "reason": ""}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"delta": 1.5, "reason": "x"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"delta": 1}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"delta": 99999999999i64, "reason": "x"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ] {
        assert_problem(adjust(&app, &staff, &v, Some("bad"), body).send().await.unwrap(), status, code).await;
    }
    let long_key = "k".repeat(300);
    assert_problem(
        adjust(&app, &staff, &v, Some(&long_key), json!({"delta": 1, "reason": "x"})).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    )
    .await;
    let ghost = uuid::Uuid::now_v7();
    assert_problem(
        adjust(&app, &staff, &ghost.to_string(), None, json!({"delta": 1, "reason": "x"})).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/admin/variants/{ghost}/inventory/movements"), Some(&staff)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.get(&format!("/api/v1/admin/variants/{v}/inventory/movements?cursor=x"), Some(&staff)).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
    assert_problem(
        adjust(&app, &customer, &v, None, json!({"delta": 1, "reason": "x"})).send().await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!((app.count("inventory_movements").await, app.count("audit_logs").await, app.count("idempotency_keys").await), before);
}
