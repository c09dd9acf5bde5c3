//! Carts, checkout and order admin: merge on login, and bad input that changes nothing.

use crate::{
    orders_support::*,
    support::{PASSWORD, TestApp, assert_problem},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn a_guest_cart_merges_into_the_customers_cart_at_login() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let a = variant(&app, &shop, 100, 50).await;
    let b = variant(&app, &shop, 200, 50).await;
    app.register("ann@example.com").await;
    let login = app
        .post("/api/v1/auth/login", None, json!({"email": "ann@example.com", "password": PASSWORD}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let ann = login["access_token"].as_str().unwrap().to_owned();
    let own: Value = app.post("/api/v1/carts", Some(&ann), json!({})).await.json().await.unwrap();
    let own_id = own["id"].as_str().unwrap();
    app.post(&format!("/api/v1/carts/{own_id}/items"), Some(&ann), json!({"variant_id": a, "quantity": 1})).await;

    let guest = cart(&app, &[(&a, 2), (&b, 1)]).await;
    let res = app
        .req(Method::POST, "/api/v1/auth/login", None)
        .header("x-cart-token", &guest.token)
        .json(&json!({"email": "ann@example.com", "password": PASSWORD, "cart_id": guest.id}))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["cart_id"], own_id);
    let merged: Value = app.get(&format!("/api/v1/carts/{own_id}"), body["access_token"].as_str()).await.json().await.unwrap();
    let lines: Vec<(String, i64)> = merged["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["variant_id"].as_str().unwrap().to_owned(), l["quantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(lines, [(a.clone(), 3), (b.clone(), 1)]);
    // The guest cart is closed.
    assert_problem(
        guest.req(&app, Method::GET, &format!("/api/v1/carts/{}", guest.id)).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A wrong token merges nothing and still logs in.
    let res = app
        .req(Method::POST, "/api/v1/auth/login", None)
        .header("x-cart-token", "nope")
        .json(&json!({"email": "ann@example.com", "password": PASSWORD, "cart_id": guest.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.json::<Value>().await.unwrap()["cart_id"].is_null());
}

/// A guest cart handed to a customer at login, or an order a signed-in customer places, is
/// theirs alone: the cart token left behind on a shared device opens neither.
#[tokio::test]
async fn a_cart_token_left_behind_opens_no_customer_cart_or_order() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 100, 50).await;
    app.register("cy@example.com").await;
    let guest = cart(&app, &[(&v, 1)]).await;
    let login = json!({"email": "cy@example.com", "password": PASSWORD, "cart_id": guest.id});
    let res = app.req(Method::POST, "/api/v1/auth/login", None).header("x-cart-token", &guest.token).json(&login).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["cart_id"], guest.id.as_str(), "handed over, not merged: the customer had no cart");
    let cy = body["access_token"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/carts/{}", guest.id);
    assert_problem(guest.req(&app, Method::GET, &path).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.get(&path, Some(&cy)).await.status(), StatusCode::OK);

    let other = cart(&app, &[(&v, 1)]).await;
    let rate = rate(&app, &other).await;
    let res = other
        .req(&app, Method::POST, "/api/v1/checkout")
        .bearer_auth(&cy)
        .header("idempotency-key", "left-behind")
        .json(&json!({"cart_id": other.id, "shipping_rate_id": rate}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let order: Value = res.json().await.unwrap();
    let order_path = format!("/api/v1/orders/{}", order["order"]["id"].as_str().unwrap());
    assert_problem(other.req(&app, Method::GET, &order_path).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(app.get(&order_path, Some(&cy)).await.status(), StatusCode::OK);
    // A guest's own order stays reachable with its cart token.
    let anon = cart(&app, &[(&v, 1)]).await;
    let order: Value = checkout(&app, &anon).await.json().await.unwrap();
    let anon_path = format!("/api/v1/orders/{}", order["order"]["id"].as_str().unwrap());
    assert_eq!(anon.req(&app, Method::GET, &anon_path).send().await.unwrap().status(), StatusCode::OK);
}

/// A merge never makes a cart hold more lines than a cart may: a full customer cart takes no
/// guest lines, and both carts stay as they were.
#[tokio::test]
async fn a_merge_that_would_overfill_the_customers_cart_merges_nothing() {
    use sea_orm::{EntityTrait, QuerySelect};
    let app = TestApp::spawn().await;
    services::seed::bulk(&app.state.db, 51, 51, |_| {}).await.unwrap();
    let ids: Vec<uuid::Uuid> = store::entities::variants::Entity::find()
        .select_only()
        .column(store::entities::variants::Column::Id)
        .limit(101)
        .into_tuple()
        .all(app.state.db.primary())
        .await
        .unwrap();
    let dee = app.customer_token("dee@example.com").await;
    let own: Value = app.post("/api/v1/carts", Some(&dee), json!({})).await.json().await.unwrap();
    let own_items = format!("/api/v1/carts/{}/items", own["id"].as_str().unwrap());
    for v in &ids[..100] {
        assert_eq!(app.post(&own_items, Some(&dee), json!({"variant_id": v, "quantity": 1})).await.status(), StatusCode::OK);
    }
    let guest = cart(&app, &[(&ids[100].to_string(), 1)]).await;
    let login = json!({"email": "dee@example.com", "password": PASSWORD, "cart_id": guest.id});
    let res = app.req(Method::POST, "/api/v1/auth/login", None).header("x-cart-token", &guest.token).json(&login).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the login itself succeeds");
    assert!(res.json::<Value>().await.unwrap()["cart_id"].is_null());
    let still: Value = guest.req(&app, Method::GET, &format!("/api/v1/carts/{}", guest.id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(still["items"].as_array().unwrap().len(), 1);
    let mine: Value = app.get(&format!("/api/v1/carts/{}", own["id"].as_str().unwrap()), Some(&dee)).await.json().await.unwrap();
    assert_eq!(mine["items"].as_array().unwrap().len(), 100);
}

async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut v = Vec::new();
    for t in [
        "carts",
        "cart_items",
        "orders",
        "order_lines",
        "payments",
        "refunds",
        "inventory_movements",
        "shipping_zones",
        "shipping_rates",
        "outbox_events",
        "idempotency_keys",
    ] {
        v.push(app.count(t).await);
    }
    v
}

#[tokio::test]
async fn bad_cart_checkout_and_order_input_is_4xx_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 100, 5).await;
    let usd_product: Value = app
        .post("/api/v1/admin/products", Some(&shop.staff), json!({"title": "Dollar", "status": "active", "variants": [{"sku": "USD-1", "price": {"amount": 5, "currency": "USD"}, "stock": 5}]}))
        .await
        .json()
        .await
        .unwrap();
    let usd = usd_product["variants"][0]["id"].as_str().unwrap().to_owned();
    let c = cart(&app, &[(&v, 1)]).await;
    let empty_cart: Value = app.post("/api/v1/carts", None, json!({})).await.json().await.unwrap();
    let empty = Cart { id: empty_cart["id"].as_str().unwrap().to_owned(), token: empty_cart["token"].as_str().unwrap().to_owned() };
    let rate_id = rate(&app, &c).await;
    let paid = {
        let p = cart(&app, &[(&v, 1)]).await;
        let o: Value = checkout(&app, &p).await.json().await.unwrap();
        o["order"]["id"].as_str().unwrap().to_owned()
    };
    let before = snapshot(&app).await;
    let items = format!("/api/v1/carts/{}/items", c.id);
    let send = |cart: &Cart, method: Method, path: &str, body: Value| cart.req(&app, method, path).json(&body).send();

    for (body, status, code) in [
        (json!({"variant_id": v, "quantity": 0}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"variant_id": v, "quantity": 101}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"variant_id": v, "quantity": -1}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"variant_id": v, "quantity": 5}), StatusCode::CONFLICT, "insufficient_stock"),
        (json!({"variant_id": usd, "quantity": 1}), StatusCode::CONFLICT, "currency_mismatch"),
        (json!({"variant_id": uuid::Uuid::now_v7(), "quantity": 1}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        (json!({"variant_id": "nope", "quantity": 1}), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
    ] {
        assert_problem(send(&c, Method::POST, &items, body).await.unwrap(), status, code).await;
    }
    let line = {
        let view: Value = c.req(&app, Method::GET, &format!("/api/v1/carts/{}", c.id)).send().await.unwrap().json().await.unwrap();
        view["items"][0]["id"].as_str().unwrap().to_owned()
    };
    assert_problem(
        send(&c, Method::PATCH, &format!("{items}/{line}"), json!({"quantity": 0})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_problem(
        send(&c, Method::PATCH, &format!("{items}/{}", uuid::Uuid::now_v7()), json!({"quantity": 1})).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let cart_path = format!("/api/v1/carts/{}", c.id);
    assert_problem(
        send(&c, Method::PATCH, &cart_path, json!({"email": "bad"})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let p = send(
        &c,
        Method::PATCH,
        &cart_path,
        json!({"shipping_address": {"name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "ZZ"}}),
    )
    .await
    .unwrap();
    let p = assert_problem(p, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "shipping_address.country");
    // Without its token (or with another), a cart does not exist, and cannot be changed.
    assert_problem(app.get(&cart_path, None).await, StatusCode::NOT_FOUND, "not_found").await;
    let takeover = json!({"email": "mallory@example.com"});
    assert_problem(send(&empty, Method::PATCH, &cart_path, takeover.clone()).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.patch(&cart_path, None, takeover).await, StatusCode::NOT_FOUND, "not_found").await;
    let view: Value = c.req(&app, Method::GET, &cart_path).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["email"], "ann@example.com");
    assert_problem(
        app.req(Method::GET, &cart_path, None).header("x-cart-token", &empty.token).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        app.post("/api/v1/carts", None, json!({"currency": "XXX"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;

    let checkout = |cart: &Cart, body: Value, key: Option<&str>| {
        let r = cart.req(&app, Method::POST, "/api/v1/checkout").json(&body);
        match key {
            Some(k) => r.header("idempotency-key", k),
            None => r,
        }
        .send()
    };
    let ok_body = json!({"cart_id": c.id, "shipping_rate_id": rate_id});
    assert_problem(checkout(&c, ok_body.clone(), None).await.unwrap(), StatusCode::BAD_REQUEST, "idempotency_key_required").await;
    assert_problem(
        checkout(&c, json!({"cart_id": c.id, "shipping_rate_id": uuid::Uuid::now_v7()}), Some("k1")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_problem(
        checkout(&c, json!({"cart_id": c.id, "shipping_rate_id": rate_id, "payment_provider": "bitcoin"}), Some("k2")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_problem(
        checkout(&empty, json!({"cart_id": empty.id, "shipping_rate_id": rate_id}), Some("k3")).await.unwrap(),
        StatusCode::CONFLICT,
        "cart_empty",
    )
    .await;
    assert_problem(
        checkout(&empty, json!({"cart_id": c.id, "shipping_rate_id": rate_id}), Some("k4")).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(app.get(&format!("/api/v1/carts/{}/shipping-rates", empty.id), None).await, StatusCode::NOT_FOUND, "not_found").await;
    let no_address = empty.req(&app, Method::GET, &format!("/api/v1/carts/{}/shipping-rates", empty.id)).send().await.unwrap();
    assert_problem(no_address, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let admin = |path: String, body: Value| app.req(Method::POST, &path, Some(&shop.staff)).json(&body).send();
    assert_problem(
        admin(format!("/api/v1/admin/orders/{paid}/ship"), json!({"carrier": "DHL"})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_problem(
        admin(format!("/api/v1/admin/orders/{}/fulfill", uuid::Uuid::now_v7()), json!({})).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(
        admin(format!("/api/v1/admin/orders/{paid}/refunds"), json!({"amount": "all"})).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    for zone in [
        json!({"name": "", "countries": ["DE"], "rates": [{"name": "S", "price": {"amount": 1, "currency": "EUR"}}]}),
        json!({"name": "Z", "countries": ["XX"], "rates": [{"name": "S", "price": {"amount": 1, "currency": "EUR"}}]}),
        json!({"name": "Z", "countries": ["DE"], "rates": []}),
        json!({"name": "Z", "countries": ["DE"], "rates": [{"name": "S", "price": {"amount": -1, "currency": "EUR"}}]}),
        json!({"name": "Z", "countries": ["DE"], "rates": [{"name": "S", "price": {"amount": 1, "currency": "EUR"}, "min_weight_grams": 10, "max_weight_grams": 5}]}),
    ] {
        assert_problem(
            admin("/api/v1/admin/shipping/zones".into(), zone).await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    let customer = app.customer_token("nosy@example.com").await;
    assert_problem(app.get("/api/v1/admin/orders", Some(&customer)).await, StatusCode::FORBIDDEN, "forbidden").await;
    assert_problem(
        app.post(&format!("/api/v1/admin/orders/{paid}/mark-paid"), Some(&customer), json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(app.get("/api/v1/admin/shipping/zones", None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(snapshot(&app).await, before, "nothing written");
}

#[tokio::test]
async fn review_regressions_stay_fixed() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 10).await;

    // A product archived after it was put in a cart is not sold.
    let c = cart(&app, &[(&v, 1)]).await;
    let p: Value = app.get("/api/v1/admin/products?limit=1", Some(&shop.staff)).await.json().await.unwrap();
    let pid = p["data"][0]["id"].as_str().unwrap();
    app.patch(&format!("/api/v1/admin/products/{pid}"), Some(&shop.staff), json!({"status": "archived"})).await;
    let res = checkout(&app, &c).await;
    let problem = assert_problem(res, StatusCode::CONFLICT, "item_unavailable").await;
    assert!(problem["detail"].as_str().unwrap().contains("no longer for sale"));
    app.patch(&format!("/api/v1/admin/products/{pid}"), Some(&shop.staff), json!({"status": "active"})).await;

    // A signed-in customer checking out a guest cart owns the order.
    let ann = app.customer_token("owner@example.com").await;
    let g = cart(&app, &[(&v, 1)]).await;
    let r = rate(&app, &g).await;
    let res = g
        .req(&app, Method::POST, "/api/v1/checkout")
        .bearer_auth(&ann)
        .header("idempotency-key", "own-1")
        .json(&json!({"cart_id": g.id, "shipping_rate_id": r}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let order: Value = res.json().await.unwrap();
    let id = order["order"]["id"].as_str().unwrap().to_owned();
    let mine: Value = app.get("/api/v1/orders", Some(&ann)).await.json().await.unwrap();
    assert_eq!(mine["data"][0]["id"], id.as_str());

    // A key used by staff does not replay staff's answer to someone else.
    let staff_cancel = app
        .req(Method::POST, &format!("/api/v1/admin/orders/{id}/cancel"), Some(&shop.staff))
        .header("idempotency-key", "shared")
        .send()
        .await
        .unwrap();
    assert_eq!(staff_cancel.status(), StatusCode::OK);
    let bob = app.customer_token("bob@example.com").await;
    let other =
        app.req(Method::POST, &format!("/api/v1/orders/{id}/cancel"), Some(&bob)).header("idempotency-key", "shared").send().await.unwrap();
    assert_problem(other, StatusCode::NOT_FOUND, "not_found").await;

    // Refund restock quantities for one line add up and cannot exceed what was sold.
    let c2 = cart(&app, &[(&v, 2)]).await;
    let o2: Value = checkout(&app, &c2).await.json().await.unwrap();
    let (id2, line) = (o2["order"]["id"].as_str().unwrap().to_owned(), o2["order"]["items"][0]["id"].as_str().unwrap().to_owned());
    app.req(Method::POST, &format!("/api/v1/admin/orders/{id2}/mark-paid"), Some(&shop.staff)).send().await.unwrap();
    let twice = json!({"amount": 100, "restock_lines": [{"line_id": line, "quantity": 2}, {"line_id": line, "quantity": 2}]});
    let res = app.req(Method::POST, &format!("/api/v1/admin/orders/{id2}/refunds"), Some(&shop.staff)).json(&twice).send().await.unwrap();
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    // Absurd numbers are 4xx, not overflows.
    let huge = json!({"title": "Huge", "variants": [{"sku": "HUGE-1", "price": {"amount": i64::MAX, "currency": "EUR"}}]});
    assert_problem(
        app.post("/api/v1/admin/products", Some(&shop.staff), huge).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let min = app
        .req(Method::POST, &format!("/api/v1/admin/variants/{v}/inventory"), Some(&shop.staff))
        .json(&json!({"delta": i64::MIN, "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(min, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_ledger_ok(&app).await;
}

/// A signed, unexpired token whose account no longer exists (deleted since it was issued, or a
/// database restored from an older backup): 401, not the foreign-key failure of the insert.
#[tokio::test]
async fn a_token_whose_account_is_gone_cannot_open_a_cart() {
    let app = TestApp::spawn().await;
    let token = app.state.identity.tokens().issue_access(uuid::Uuid::now_v7(), domain::Role::Customer).unwrap();
    let res = app.post("/api/v1/carts", Some(&token), json!({"currency": "EUR"})).await;
    assert_problem(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_eq!(app.count("carts").await, 0, "nothing written");
}
