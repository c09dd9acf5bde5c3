use crate::support::{TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;

pub fn product(title: &str, sku: &str, price: i64) -> Value {
    json!({
        "title": title, "status": "active", "options": ["size"],
        "variants": [{"sku": sku, "price": {"amount": price, "currency": "EUR"}, "options": {"size": "M"}, "stock": 10}]
    })
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/api/v1/admin/products", Some(token), body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

#[tokio::test]
async fn product_crud_round_trip_with_variants_and_audit() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let cat: Value = app.post("/api/v1/admin/categories", Some(&staff), json!({"name": "Shirts"})).await.json().await.unwrap();
    let body = json!({
        "title": "Linen Shirt", "description": "Breathable linen.", "status": "draft",
        "category_ids": [cat["id"]], "options": ["size", "colour"], "images": ["https://cdn.example/1.jpg"],
        "variants": [
            {"sku": "ls-m-white", "price": {"amount": 4900, "currency": "EUR"}, "compare_at_price": {"amount": 5900, "currency": "EUR"}, "options": {"size": "M", "colour": "White"}, "stock": 8, "weight_grams": 210},
            {"sku": "LS-L-WHITE", "price": {"amount": 5200, "currency": "EUR"}, "options": {"Size": "L", "colour": "White"}, "stock": 2}
        ]
    });
    let p = create(&app, &staff, body).await;
    let id = p["id"].as_str().unwrap().to_owned();
    assert_eq!(p["slug"], "linen-shirt");
    assert_eq!(p["status"], "draft");
    assert_eq!(p["categories"][0]["slug"], "shirts");
    assert_eq!(p["variants"][0]["sku"], "LS-M-WHITE");
    assert_eq!(p["variants"][0]["stock"], 8, "admin views show exact stock");
    assert_eq!(p["variants"][1]["availability"], "low_stock");
    assert_eq!(p["variants"][0]["compare_at_price"]["amount"], 5900);

    // Drafts are invisible to the storefront.
    assert_problem(app.get(&format!("/api/v1/products/{id}"), None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.get("/api/v1/products/linen-shirt", None).await, StatusCode::NOT_FOUND, "not_found").await;

    let res =
        app.patch(&format!("/api/v1/admin/products/{id}"), Some(&staff), json!({"title": "Linen Shirt Deluxe", "status": "active"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["slug"], "linen-shirt-deluxe", "slug follows the title until published");
    let public: Value = app.get("/api/v1/products/linen-shirt-deluxe", None).await.json().await.unwrap();
    assert_eq!(public["id"], id.as_str());
    assert!(public["variants"][0].get("stock").is_none(), "storefront hides exact stock");

    // Once published the slug is stable.
    let p: Value =
        app.patch(&format!("/api/v1/admin/products/{id}"), Some(&staff), json!({"title": "Renamed"})).await.json().await.unwrap();
    assert_eq!(p["slug"], "linen-shirt-deluxe");
    let res = app.patch(&format!("/api/v1/admin/products/{id}"), Some(&staff), json!({"slug": "other"})).await;
    assert_problem(res, StatusCode::CONFLICT, "slug_locked").await;

    // Variants: add, patch, duplicate option combination, delete.
    let variant = json!({"sku": "LS-S-WHITE", "price": {"amount": 4700, "currency": "EUR"}, "options": {"size": "S", "colour": "White"}});
    let res = app.post(&format!("/api/v1/admin/products/{id}/variants"), Some(&staff), variant.clone()).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let p: Value = res.json().await.unwrap();
    let small = p["variants"].as_array().unwrap().iter().find(|v| v["sku"] == "LS-S-WHITE").unwrap()["id"].as_str().unwrap().to_owned();
    let dup = json!({"sku": "LS-S2", "price": {"amount": 4700, "currency": "EUR"}, "options": {"size": "s", "colour": "white"}});
    let res = app.post(&format!("/api/v1/admin/products/{id}/variants"), Some(&staff), dup).await;
    assert_problem(res, StatusCode::CONFLICT, "duplicate_options").await;
    let res = app
        .patch(
            &format!("/api/v1/admin/products/{id}/variants/{small}"),
            Some(&staff),
            json!({"price": {"amount": 3900, "currency": "EUR"}, "compare_at_price": null}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["price"]["amount"], 3900);
    let sorted: Value = app.get("/api/v1/products?sort=price_asc&max_price=3900", None).await.json().await.unwrap();
    assert_eq!(sorted["data"][0]["id"], id.as_str(), "min price follows the cheapest variant");
    assert_eq!(app.delete(&format!("/api/v1/admin/products/{id}/variants/{small}"), Some(&staff)).await.status(), StatusCode::NO_CONTENT);

    // Audit rows carry old and new values.
    let logs: Value =
        app.get(&format!("/api/v1/admin/audit-logs?entity_type=product&entity_id={id}"), Some(&staff)).await.json().await.unwrap();
    let actions: Vec<&str> = logs["data"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["UPDATE", "UPDATE", "CREATE"]);
    assert_eq!(logs["data"][1]["old_values"]["status"], "draft");
    assert_eq!(logs["data"][1]["new_values"]["status"], "active");

    // Delete: gone from storefront and admin.
    assert_eq!(app.delete(&format!("/api/v1/admin/products/{id}"), Some(&staff)).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&format!("/api/v1/admin/products/{id}"), Some(&staff)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.get("/api/v1/products/linen-shirt-deluxe", None).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn storefront_lists_only_active_products_and_slugs_never_collide() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let a = create(&app, &staff, product("Wool Scarf", "S-1", 1000)).await;
    let b = create(&app, &staff, product("Wool Scarf", "S-2", 1100)).await;
    let c = create(&app, &staff, product("Wool Scarf!", "S-3", 1200)).await;
    assert_eq!(
        (a["slug"].as_str(), b["slug"].as_str(), c["slug"].as_str()),
        (Some("wool-scarf"), Some("wool-scarf-2"), Some("wool-scarf-3"))
    );
    let mut draft = product("Secret Scarf", "S-4", 900);
    draft["status"] = json!("draft");
    create(&app, &staff, draft).await;
    let mut archived = product("Old Scarf", "S-5", 900);
    archived["status"] = json!("archived");
    create(&app, &staff, archived).await;

    let list: Value = app.get("/api/v1/products", None).await.json().await.unwrap();
    let titles: HashSet<&str> = list["data"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, HashSet::from(["Wool Scarf", "Wool Scarf!"]));
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    let search: Value = app.get("/api/v1/products?q=scarf", None).await.json().await.unwrap();
    assert_eq!(search["data"].as_array().unwrap().len(), 3, "search hides drafts too");
    let admin: Value = app.get("/api/v1/admin/products?status=draft", Some(&staff)).await.json().await.unwrap();
    assert_eq!(admin["data"][0]["title"], "Secret Scarf");
    let all: Value = app.get("/api/v1/admin/products", Some(&staff)).await.json().await.unwrap();
    assert_eq!(all["data"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn categories_tree_move_and_guarded_delete() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let post = |body: Value| app.post("/api/v1/admin/categories", Some(&staff), body);
    let root: Value = post(json!({"name": "Clothing"})).await.json().await.unwrap();
    let tops: Value = post(json!({"name": "Tops", "parent_id": root["id"], "position": 1})).await.json().await.unwrap();
    let tees: Value = post(json!({"name": "Tees", "parent_id": tops["id"]})).await.json().await.unwrap();
    let mut p = product("Plain Tee", "TEE-1", 1500);
    p["category_ids"] = json!([tees["id"]]);
    let tee = create(&app, &staff, p).await;

    let tree: Value = app.get("/api/v1/categories", None).await.json().await.unwrap();
    assert_eq!(tree["data"][0]["children"][0]["children"][0]["slug"], "tees");
    let one: Value = app.get("/api/v1/categories/tops", None).await.json().await.unwrap();
    assert_eq!(one["children"][0]["name"], "Tees");
    // Listing by a parent category includes sub-categories.
    let list: Value = app.get("/api/v1/products?category=clothing", None).await.json().await.unwrap();
    assert_eq!(list["data"][0]["id"], tee["id"]);
    assert_problem(app.get("/api/v1/products?category=nope", None).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // A category cannot move under its own descendant.
    let res = app
        .patch(&format!("/api/v1/admin/categories/{}", root["id"].as_str().unwrap()), Some(&staff), json!({"parent_id": tees["id"]}))
        .await;
    assert_problem(res, StatusCode::CONFLICT, "category_cycle").await;
    let res = app
        .patch(
            &format!("/api/v1/admin/categories/{}", tees["id"].as_str().unwrap()),
            Some(&staff),
            json!({"parent_id": null, "name": "T-Shirts"}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["parent_id"], Value::Null);
    let res = post(json!({"name": "Again", "slug": "tops"})).await;
    assert_problem(res, StatusCode::CONFLICT, "slug_taken").await;

    // Delete refuses silently orphaning children or products.
    let tops_path = format!("/api/v1/admin/categories/{}", tops["id"].as_str().unwrap());
    let root_path = format!("/api/v1/admin/categories/{}", root["id"].as_str().unwrap());
    let tees_path = format!("/api/v1/admin/categories/{}", tees["id"].as_str().unwrap());
    post(json!({"name": "Tanks", "parent_id": tops["id"]})).await;
    assert_problem(app.delete(&tops_path, Some(&staff)).await, StatusCode::CONFLICT, "category_has_children").await;
    assert_problem(app.delete(&tees_path, Some(&staff)).await, StatusCode::CONFLICT, "category_has_products").await;
    assert_problem(
        app.delete(&format!("{tees_path}?products=keep"), Some(&staff)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(app.delete(&format!("{tops_path}?children=reparent"), Some(&staff)).await.status(), StatusCode::NO_CONTENT);
    let root_view: Value = app.get("/api/v1/categories/clothing", None).await.json().await.unwrap();
    assert_eq!(root_view["children"][0]["slug"], "tanks", "children moved up");
    assert_eq!(app.delete(&format!("{tees_path}?products=detach"), Some(&staff)).await.status(), StatusCode::NO_CONTENT);
    let p: Value = app.get(&format!("/api/v1/admin/products/{}", tee["id"].as_str().unwrap()), Some(&staff)).await.json().await.unwrap();
    assert!(p["categories"].as_array().unwrap().is_empty());
    assert_problem(app.delete(&root_path, Some(&staff)).await, StatusCode::CONFLICT, "category_has_children").await;
}

#[tokio::test]
async fn search_ranks_title_matches_first_and_folds_accents() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let mut body_match = product("Trail Socks", "SOCK-1", 900);
    body_match["description"] = json!("Great for running on rough ground.");
    create(&app, &staff, body_match).await;
    create(&app, &staff, product("Running Shoes", "SHOE-1", 9900)).await;
    create(&app, &staff, product("Crème Brûlée Candle", "CANDLE-1", 1900)).await;
    create(&app, &staff, product("Garden Hose", "HOSE-1", 2900)).await;

    let res: Value = app.get("/api/v1/products?q=running", None).await.json().await.unwrap();
    let titles: Vec<&str> = res["data"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Running Shoes", "Trail Socks"], "title match ranks first");
    // A word prefix finds it on both backends (PostgreSQL also stems: "runs" → run).
    let res: Value = app.get("/api/v1/products?q=runn", None).await.json().await.unwrap();
    assert_eq!(res["data"].as_array().unwrap().len(), 2);
    if crate::support::pg_base().is_some() {
        let res: Value = app.get("/api/v1/products?q=runs", None).await.json().await.unwrap();
        assert_eq!(res["data"].as_array().unwrap().len(), 2, "stemming on PostgreSQL");
    }
    for q in ["creme", "CRÈME", "brulee candle"] {
        let res: Value = app.get(&format!("/api/v1/products?q={q}"), None).await.json().await.unwrap();
        assert_eq!(res["data"][0]["title"], "Crème Brûlée Candle", "{q}");
    }
    let res: Value = app.get("/api/v1/products?q=nothing%20matches%20this", None).await.json().await.unwrap();
    assert!(res["data"].as_array().unwrap().is_empty());
    // Hostile search text is just text.
    for q in ["%22%29%20OR%201%3D1--", "a%27%3B%20DROP%20TABLE%20products", "NEAR(%22x%22)", "%26%7C!%3A*"] {
        assert_eq!(app.get(&format!("/api/v1/products?q={q}"), None).await.status(), StatusCode::OK, "{q}");
    }
    // Relevance pagination works with a cursor.
    let first: Value = app.get("/api/v1/products?q=running&limit=1", None).await.json().await.unwrap();
    let cursor = first["pagination"]["next_cursor"].as_str().unwrap();
    let second: Value = app.get(&format!("/api/v1/products?q=running&limit=1&cursor={cursor}"), None).await.json().await.unwrap();
    assert_eq!(second["data"][0]["title"], "Trail Socks");
    assert_eq!(second["pagination"]["has_more"], false);
}
