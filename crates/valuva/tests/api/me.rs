use crate::support::{TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn address() -> Value {
    json!({"name": "Ann Example", "line1": "1 Main Street", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

#[tokio::test]
async fn profile_can_be_changed_and_email_stays_unique() {
    let app = TestApp::spawn().await;
    app.register("taken@example.com").await;
    let token = app.customer_token("me@example.com").await;
    let res = app.patch("/api/v1/me", Some(&token), json!({"name": "Me Myself"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Me Myself");
    let res = app.patch("/api/v1/me", Some(&token), json!({"name": null})).await;
    assert!(res.json::<Value>().await.unwrap()["name"].is_null());
    let with_password = |email: &str| json!({"email": email, "current_password": crate::support::PASSWORD});
    let res = app.patch("/api/v1/me", Some(&token), with_password("TAKEN@example.com")).await;
    assert_problem(res, StatusCode::CONFLICT, "email_taken").await;
    let res = app.patch("/api/v1/me", Some(&token), json!({"email": "not-an-email"})).await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "email");
    // A token alone cannot move the account to another address: that takes the password.
    let res = app.patch("/api/v1/me", Some(&token), json!({"email": "thief@example.com"})).await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "current_password");
    let res = app.patch("/api/v1/me", Some(&token), json!({"email": "thief@example.com", "current_password": "guess guess guess"})).await;
    assert_problem(res, StatusCode::FORBIDDEN, "wrong_password").await;
    let me: Value = app.get("/api/v1/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["email"], "me@example.com");
    // The same address again needs nothing; a new one with the password is taken.
    assert_eq!(app.patch("/api/v1/me", Some(&token), json!({"email": "ME@example.com"})).await.status(), StatusCode::OK);
    let res = app.patch("/api/v1/me", Some(&token), with_password("new@example.com")).await;
    assert_eq!(res.json::<Value>().await.unwrap()["email"], "new@example.com");
}

#[tokio::test]
async fn address_book_crud_and_isolation() {
    let app = TestApp::spawn().await;
    let ann = app.customer_token("ann@example.com").await;
    let bob = app.customer_token("bob@example.com").await;

    let res = app.post("/api/v1/me/addresses", Some(&ann), address()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let a: Value = res.json().await.unwrap();
    let path = format!("/api/v1/me/addresses/{}", a["id"].as_str().unwrap());
    assert_eq!(a["country"], "DE");

    let res = app.patch(&path, Some(&ann), json!({"city": "Hamburg", "line2": "Floor 2"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(
        (updated["city"].as_str(), updated["line2"].as_str(), updated["name"].as_str()),
        (Some("Hamburg"), Some("Floor 2"), Some("Ann Example"))
    );
    let res = app.patch(&path, Some(&ann), json!({"line2": null})).await;
    assert!(res.json::<Value>().await.unwrap()["line2"].is_null());

    let list: Value = app.get("/api/v1/me/addresses", Some(&ann)).await.json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["pagination"]["has_more"], false);

    // Another customer cannot see, change or delete it: 404, not 403.
    assert_problem(app.get(&path, Some(&bob)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.patch(&path, Some(&bob), json!({"city": "X"})).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.delete(&path, Some(&bob)).await, StatusCode::NOT_FOUND, "not_found").await;
    let bobs: Value = app.get("/api/v1/me/addresses", Some(&bob)).await.json().await.unwrap();
    assert!(bobs["data"].as_array().unwrap().is_empty());

    assert_eq!(app.delete(&path, Some(&ann)).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&path, Some(&ann)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.get("/api/v1/me/addresses/not-a-uuid", Some(&ann)).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn invalid_addresses_name_every_bad_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let token = app.customer_token("ann@example.com").await;
    let before = (app.count("addresses").await, app.count("audit_logs").await);
    let res = app
        .post(
            "/api/v1/me/addresses",
            Some(&token),
            json!({"name": " ", "line1": "x", "city": "y", "postal_code": "1", "country": "XX", "phone": "call me"}),
        )
        .await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["name", "phone", "country"]);
    let res = app.post("/api/v1/me/addresses", Some(&token), json!({"line1": "x"})).await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "name");
    let a: Value = app.post("/api/v1/me/addresses", Some(&token), address()).await.json().await.unwrap();
    let path = format!("/api/v1/me/addresses/{}", a["id"].as_str().unwrap());
    let after_create = (app.count("addresses").await, app.count("audit_logs").await);
    assert_eq!(after_create, (before.0 + 1, before.1 + 1));
    let res = app.patch(&path, Some(&token), json!({"country": "ZZ"})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app.patch(&path, Some(&token), json!({"colour": "red"})).await;
    let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "colour");
    assert_eq!((app.count("addresses").await, app.count("audit_logs").await), after_create);
    let unchanged: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
    assert_eq!(unchanged["country"], "DE");
}
