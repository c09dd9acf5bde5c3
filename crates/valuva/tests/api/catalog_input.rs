//! Bad catalog input: 4xx problem+json, nothing written.

use crate::{
    catalog::product,
    support::{TestApp, assert_problem},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn snapshot(app: &TestApp) -> [i64; 5] {
    [
        app.count("products").await,
        app.count("variants").await,
        app.count("categories").await,
        app.count("inventory_movements").await,
        app.count("audit_logs").await,
    ]
}

#[tokio::test]
async fn invalid_products_and_variants_write_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let existing: Value =
        app.post("/api/v1/admin/products", Some(&staff), product("Existing", "TAKEN-SKU", 100)).await.json().await.unwrap();
    let pid = existing["id"].as_str().unwrap().to_owned();
    let vid = existing["variants"][0]["id"].as_str().unwrap().to_owned();
    let before = snapshot(&app).await;
    let variant = |price: Value, sku: &str| json!({"title": "X", "options": ["size"], "variants": [{"sku": sku, "price": price, "options": {"size": "M"}}]});
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (
            variant(json!({"amount": -1, "currency": "EUR"}), "A"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].price.amount",
        ),
        (
            variant(json!({"amount": 100, "currency": "XYZ"}), "A"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].price.currency",
        ),
        (
            variant(json!({"amount": 1.5, "currency": "EUR"}), "A"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].price.amount",
        ),
        (
            variant(json!({"amount": 100, "currency": "EUR"}), "bad sku!"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].sku",
        ),
        (variant(json!({"amount": 100, "currency": "EUR"}), "taken-sku"), StatusCode::CONFLICT, "sku_taken", ""),
        (json!({"title": ""}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "title"),
        (json!({"title": "X", "status": "published"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "status"),
        (json!({"title": "X", "status": "active"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "status"),
        (
            json!({"title": "X", "category_ids": ["01a200ae-75a5-7506-a3fd-153660f7b9ae"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "category_ids",
        ),
        (json!({"title": "X", "category_ids": ["not-a-uuid"]}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "category_ids[0]"),
        (json!({"title": "X", "slug": "Bad Slug"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "slug"),
        (json!({"title": "X", "options": ["size", "size"]}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "options"),
        (
            json!({"title": "X", "options": ["size"], "variants": [{"sku": "A1", "price": {"amount": 1, "currency": "EUR"}, "options": {"colour": "red"}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].options.colour",
        ),
        (
            json!({"title": "X", "options": ["size"], "variants": [
            {"sku": "A1", "price": {"amount": 1, "currency": "EUR"}, "options": {"size": "M"}},
            {"sku": "A2", "price": {"amount": 1, "currency": "EUR"}, "options": {"size": "m"}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants",
        ),
        (
            json!({"title": "X", "variants": [
            {"sku": "A1", "price": {"amount": 1, "currency": "EUR"}},
            {"sku": "A1", "price": {"amount": 1, "currency": "USD"}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants",
        ),
        (
            json!({"title": "X", "variants": [{"sku": "A1", "price": {"amount": 1, "currency": "EUR"}, "stock": -5}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].stock",
        ),
        (
            json!({"title": "X", "variants": [{"sku": "A1", "price": {"amount": 1, "currency": "EUR", "tax": 1}}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "variants[0].price.tax",
        ),
    ];
    for (body, status, code, field) in cases {
        let res = app.post("/api/v1/admin/products", Some(&staff), body.clone()).await;
        let problem = assert_problem(res, status, code).await;
        if !field.is_empty() {
            let fields: Vec<&str> = problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
            assert!(fields.contains(&field), "{body}: {fields:?}");
        }
    }
    let patches: Vec<(String, Value, StatusCode, &str)> = vec![
        (format!("/api/v1/admin/products/{pid}"), json!({"status": "gone"}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (format!("/api/v1/admin/products/{pid}"), json!({"options": ["colour"]}), StatusCode::CONFLICT, "options_in_use"),
        (
            format!("/api/v1/admin/products/{pid}"),
            json!({"category_ids": ["01a200ae-75a5-7506-a3fd-153660f7b9ae"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            format!("/api/v1/admin/products/{pid}/variants/{vid}"),
            json!({"price": {"amount": -5, "currency": "EUR"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            format!("/api/v1/admin/products/{pid}/variants/{vid}"),
            json!({"price": {"amount": 5, "currency": "USD"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            format!("/api/v1/admin/products/{pid}/variants/{vid}"),
            json!({"stock": 5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (format!("/api/v1/admin/products/{pid}/variants/{pid}"), json!({"sku": "NEW"}), StatusCode::NOT_FOUND, "not_found"),
        (format!("/api/v1/admin/categories/{pid}"), json!({"name": "x"}), StatusCode::NOT_FOUND, "not_found"),
    ];
    for (path, body, status, code) in patches {
        assert_problem(app.patch(&path, Some(&staff), body).await, status, code).await;
    }
    let res = app
        .post(
            &format!("/api/v1/admin/products/{pid}/variants"),
            Some(&staff),
            json!({"sku": "Z", "price": {"amount": 1, "currency": "EUR"}, "options": {"size": "XL"}, "stock": 1.5}),
        )
        .await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_problem(
        app.delete(&format!("/api/v1/admin/products/{pid}/variants/{vid}"), Some(&staff)).await,
        StatusCode::CONFLICT,
        "last_variant",
    )
    .await;
    for body in [json!({"name": ""}), json!({"name": "x", "parent_id": pid}), json!({"name": "x", "slug": "-bad-"})] {
        assert_problem(
            app.post("/api/v1/admin/categories", Some(&staff), body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(snapshot(&app).await, before, "nothing written");
}

#[tokio::test]
async fn bad_listing_parameters_are_4xx() {
    let app = TestApp::spawn().await;
    for (q, status, code) in [
        ("limit=101", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("limit=-3", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("min_price=-1", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("min_price=10&max_price=5", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("min_price=cheap", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("sort=random", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("sort=relevance", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("status=draft", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("category=ghost", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("cursor=abc", StatusCode::BAD_REQUEST, "invalid_cursor"),
        ("cursor=eyJzb3J0IjoibmV3ZXN0In0.AAAA", StatusCode::BAD_REQUEST, "invalid_cursor"),
        ("q=x&unknown=1", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ] {
        assert_problem(app.get(&format!("/api/v1/products?{q}"), None).await, status, code).await;
    }
    assert_problem(app.get("/api/v1/products/does-not-exist", None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.get("/api/v1/categories/none", None).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn catalog_admin_routes_need_staff() {
    let app = TestApp::spawn().await;
    let customer = app.customer_token("c@example.com").await;
    for path in ["/api/v1/admin/products", "/api/v1/admin/categories"] {
        assert_problem(app.get(path, None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        assert_problem(app.get(path, Some(&customer)).await, StatusCode::FORBIDDEN, "forbidden").await;
        assert_problem(app.post(path, Some(&customer), json!({})).await, StatusCode::FORBIDDEN, "forbidden").await;
    }
}
