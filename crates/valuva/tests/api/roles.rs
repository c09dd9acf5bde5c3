use crate::support::{TestApp, assert_problem};
use domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn admin_routes_answer_401_then_403_then_200() {
    let app = TestApp::spawn().await;
    let customer = app.customer_token("c@example.com").await;
    let (staff, _) = app.token_with_role("s@example.com", Role::Staff).await;
    let admin = app.admin_token().await;

    assert_problem(app.get("/api/v1/admin/users", None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_problem(app.get("/api/v1/admin/users", Some(&customer)).await, StatusCode::FORBIDDEN, "forbidden").await;
    // Staff run the shop but do not manage users.
    assert_problem(app.get("/api/v1/admin/users", Some(&staff)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.get("/api/v1/admin/users", Some(&admin)).await.status(), StatusCode::OK);

    assert_problem(app.get("/api/v1/admin/audit-logs", Some(&customer)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(app.get("/api/v1/admin/audit-logs", Some(&staff)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_changes_roles_and_cannot_demote_self() {
    let app = TestApp::spawn().await;
    let (admin, admin_id) = app.token_with_role("boss@example.com", Role::Admin).await;
    let reg = app.register("worker@example.com").await;
    let id = reg["user"]["id"].as_str().unwrap();

    let res = app.patch(&format!("/api/v1/admin/users/{id}"), Some(&admin), json!({"role": "staff"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "staff");
    // The new role applies from the next token on.
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": reg["refresh_token"]})).await;
    let staff_token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/admin/audit-logs", Some(&staff_token)).await.status(), StatusCode::OK);

    let rows_before = app.count("audit_logs").await;
    let res = app.patch(&format!("/api/v1/admin/users/{admin_id}"), Some(&admin), json!({"role": "customer"})).await;
    assert_problem(res, StatusCode::CONFLICT, "cannot_demote_self").await;
    let res = app.patch(&format!("/api/v1/admin/users/{id}"), Some(&admin), json!({"role": "root"})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app.patch(&format!("/api/v1/admin/users/{}", uuid::Uuid::now_v7()), Some(&admin), json!({"role": "staff"})).await;
    assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.count("audit_logs").await, rows_before);

    // Role change is audited with old and new values.
    let logs: Value =
        app.get(&format!("/api/v1/admin/audit-logs?action=ADMIN_ACTION&entity_id={id}"), Some(&admin)).await.json().await.unwrap();
    let row = &logs["data"][0];
    assert_eq!(row["old_values"]["role"], "customer");
    assert_eq!(row["new_values"]["role"], "staff");
    assert_eq!(row["actor_id"], admin_id.to_string());
    assert_eq!(row["ip"], "127.0.0.1");
}

#[tokio::test]
async fn user_listing_paginates_with_opaque_cursors() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..5 {
        app.register(&format!("u{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/admin/users?limit=2&cursor={c}"),
            None => "/api/v1/admin/users?limit=2".into(),
        };
        let page: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
        seen.extend(page["data"].as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap().to_owned()));
        assert_eq!(page["pagination"]["has_more"], page["pagination"]["next_cursor"].is_string());
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0], "u4@example.com", "newest first");
    let customers: Value = app.get("/api/v1/admin/users?role=customer", Some(&admin)).await.json().await.unwrap();
    assert_eq!(customers["data"].as_array().unwrap().len(), 5);
}
