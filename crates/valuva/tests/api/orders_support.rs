//! Shared set-up for the checkout and order tests.

use crate::support::TestApp;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

pub struct Shop {
    pub staff: String,
}

/// A staff token and a worldwide shipping zone (flat 500, free above 100000).
pub async fn shop(app: &TestApp) -> Shop {
    let staff = app.admin_token().await;
    let zone = json!({"name": "World", "countries": ["*"], "rates": [{"name": "Standard", "price": {"amount": 500, "currency": "EUR"}, "free_above": 100000}]});
    let res = app.post("/api/v1/admin/shipping/zones", Some(&staff), zone).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    Shop { staff }
}

/// A new active product with one variant; returns the variant id.
pub async fn variant(app: &TestApp, shop: &Shop, price: i64, stock: i64) -> String {
    let sku = format!("V-{}", uuid::Uuid::now_v7().simple());
    let body = json!({"title": format!("Item {sku}"), "status": "active",
        "variants": [{"sku": sku, "price": {"amount": price, "currency": "EUR"}, "stock": stock, "weight_grams": 100}]});
    let p: Value = app.post("/api/v1/admin/products", Some(&shop.staff), body).await.json().await.unwrap();
    p["variants"][0]["id"].as_str().unwrap().to_owned()
}

pub struct Cart {
    pub id: String,
    pub token: String,
}

impl Cart {
    pub fn req(&self, app: &TestApp, method: Method, path: &str) -> reqwest::RequestBuilder {
        app.req(method, path, None).header("x-cart-token", &self.token)
    }
}

/// A guest cart with the given lines (in this order), an email and a German address.
pub async fn cart(app: &TestApp, lines: &[(&str, i64)]) -> Cart {
    let c: Value = app.post("/api/v1/carts", None, json!({"currency": "EUR"})).await.json().await.unwrap();
    let cart = Cart { id: c["id"].as_str().unwrap().to_owned(), token: c["token"].as_str().unwrap().to_owned() };
    for (variant, qty) in lines {
        let res = cart
            .req(app, Method::POST, &format!("/api/v1/carts/{}/items", cart.id))
            .json(&json!({"variant_id": variant, "quantity": qty}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    }
    let address = json!({"name": "Ann", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"});
    let res = cart
        .req(app, Method::PATCH, &format!("/api/v1/carts/{}", cart.id))
        .json(&json!({"email": "ann@example.com", "shipping_address": address}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    cart
}

pub async fn rate(app: &TestApp, cart: &Cart) -> String {
    let rates: Value =
        cart.req(app, Method::GET, &format!("/api/v1/carts/{}/shipping-rates", cart.id)).send().await.unwrap().json().await.unwrap();
    rates["data"][0]["id"].as_str().unwrap().to_owned()
}

pub async fn checkout_with(app: &TestApp, cart: &Cart, rate: &str, key: &str) -> Response {
    cart.req(app, Method::POST, "/api/v1/checkout")
        .header("idempotency-key", key)
        .json(&json!({"cart_id": cart.id, "shipping_rate_id": rate}))
        .send()
        .await
        .unwrap()
}

pub async fn checkout(app: &TestApp, cart: &Cart) -> Response {
    let rate = rate(app, cart).await;
    checkout_with(app, cart, &rate, &uuid::Uuid::now_v7().to_string()).await
}

/// (stock, reserved) of a variant, from the admin product listing.
pub async fn stock(app: &TestApp, shop: &Shop, variant: &str) -> (i64, i64) {
    let ledger: Value =
        app.get(&format!("/api/v1/admin/variants/{variant}/inventory/movements?limit=100"), Some(&shop.staff)).await.json().await.unwrap();
    let rows = ledger["data"].as_array().unwrap();
    let stock: i64 = rows.iter().map(|m| m["delta"].as_i64().unwrap()).sum();
    let reserved: i64 = rows.iter().map(|m| m["reserved_delta"].as_i64().unwrap()).sum();
    (stock, reserved)
}

pub async fn assert_ledger_ok(app: &TestApp) {
    assert_eq!(services::inventory::verify(&app.state.db).await.unwrap(), vec![]);
}
