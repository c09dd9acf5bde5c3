use crate::{
    orders_support::*,
    support::{TestApp, assert_problem},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn guest_checkout_reserves_stock_freezes_totals_and_replays() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let a = variant(&app, &shop, 1999, 5).await;
    let b = variant(&app, &shop, 500, 3).await;
    let cart = cart(&app, &[(&a, 2), (&b, 1)]).await;
    let view: Value = cart.req(&app, Method::GET, &format!("/api/v1/carts/{}", cart.id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["subtotal"]["amount"], 2 * 1999 + 500);
    assert!(view["token"].is_null(), "the token is shown only at creation");
    let rate = rate(&app, &cart).await;
    let key = "checkout-key-1";
    let res = checkout_with(&app, &cart, &rate, key).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let order = &body["order"];
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["subtotal"]["amount"], 4498);
    assert_eq!(order["shipping_total"]["amount"], 500);
    assert_eq!(order["total"]["amount"], 4998);
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    assert_eq!(body["payment"]["provider"], "manual");
    assert_eq!(body["payment"]["status"], "pending");
    assert_eq!(stock(&app, &shop, &a).await, (3, 2));

    // Replay with the same key: the same response, nothing new.
    let replay = checkout_with(&app, &cart, &rate, key).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["order"]["id"], order["id"]);
    let other = cart
        .req(&app, Method::POST, "/api/v1/checkout")
        .header("idempotency-key", key)
        .json(&json!({"cart_id": cart.id, "shipping_rate_id": rate, "payment_provider": "manual"}))
        .send()
        .await
        .unwrap();
    assert_problem(other, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(app.count("orders").await, 1);

    // The guest sees the order with the cart token; the cart itself is closed.
    let id = order["id"].as_str().unwrap();
    let seen: Value = cart.req(&app, Method::GET, &format!("/api/v1/orders/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["number"], order["number"]);
    assert_problem(app.get(&format!("/api/v1/orders/{id}"), None).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(
        cart.req(&app, Method::GET, &format!("/api/v1/carts/{}", cart.id)).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A new checkout of the closed cart is refused.
    assert_problem(checkout_with(&app, &cart, &rate, "another-key").await, StatusCode::NOT_FOUND, "not_found").await;
    assert_ledger_ok(&app).await;
}

#[tokio::test]
async fn a_checkout_that_fails_half_way_changes_nothing() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let plenty = variant(&app, &shop, 100, 50).await;
    let scarce = variant(&app, &shop, 100, 2).await;
    let cart = cart(&app, &[(&plenty, 3), (&scarce, 2)]).await;
    // Someone else buys the scarce units first.
    let other = crate::orders_support::cart(&app, &[(&scarce, 1)]).await;
    assert_eq!(checkout(&app, &other).await.status(), StatusCode::CREATED);
    let before = (
        app.count("orders").await,
        app.count("audit_logs").await,
        app.count("inventory_movements").await,
        stock(&app, &shop, &plenty).await,
        stock(&app, &shop, &scarce).await,
        app.count("idempotency_keys").await,
    );
    let rate = rate(&app, &cart).await;
    let res = checkout_with(&app, &cart, &rate, "short-then-restocked").await;
    let problem = assert_problem(res, StatusCode::CONFLICT, "insufficient_stock").await;
    assert!(problem["detail"].as_str().unwrap().contains(&scarce), "{problem}");
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "only the short line is named: {problem}");
    assert_eq!(problem["errors"][0]["field"], format!("items.{scarce}"));
    let after = (
        app.count("orders").await,
        app.count("audit_logs").await,
        app.count("inventory_movements").await,
        stock(&app, &shop, &plenty).await,
        stock(&app, &shop, &scarce).await,
        app.count("idempotency_keys").await,
    );
    assert_eq!(after, before);
    assert_ledger_ok(&app).await;

    // The failure was not stored under the key: once restocked, the same key places the order.
    let restock = app
        .req(Method::POST, &format!("/api/v1/admin/variants/{scarce}/inventory"), Some(&shop.staff))
        .json(&json!({"delta": 1, "reason": "found one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(restock.status(), StatusCode::OK);
    let res = checkout_with(&app, &cart, &rate, "short-then-restocked").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().get("idempotent-replayed").is_none());
    assert_eq!(stock(&app, &shop, &scarce).await, (0, 3));
    assert_eq!(stock(&app, &shop, &plenty).await, (47, 3));
    assert_ledger_ok(&app).await;
}

#[tokio::test]
async fn every_allowed_transition_works_and_every_other_is_409() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 20).await;
    let place = || async {
        let c = cart(&app, &[(&v, 1)]).await;
        let body: Value = checkout(&app, &c).await.json().await.unwrap();
        body["order"]["id"].as_str().unwrap().to_owned()
    };
    let post = |id: String, action: &'static str, body: Option<Value>| {
        let r = app.req(Method::POST, &format!("/api/v1/admin/orders/{id}/{action}"), Some(&shop.staff));
        let r = match body {
            Some(b) => r.json(&b),
            None => r,
        };
        r.send()
    };
    let ship = json!({"carrier": "DHL", "tracking_number": "123"});

    let id = place().await;
    for (action, body, to) in [
        ("mark-paid", None, "paid"),
        ("fulfill", None, "processing"),
        ("ship", Some(ship.clone()), "shipped"),
        ("deliver", None, "delivered"),
    ] {
        // Before the right moment, the later steps are refused.
        for wrong in ["deliver", "ship", "fulfill", "mark-paid"].into_iter().filter(|w| *w != action) {
            let b = (wrong == "ship").then(|| ship.clone());
            let current: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
            let res = post(id.clone(), wrong, b).await.unwrap();
            assert_problem(res, StatusCode::CONFLICT, "invalid_transition").await;
            let unchanged: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
            assert_eq!(unchanged["status"], current["status"]);
        }
        let res = post(id.clone(), action, body).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{action}");
        assert_eq!(res.json::<Value>().await.unwrap()["status"], to);
    }
    let done: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!((done["carrier"].as_str(), done["tracking_number"].as_str()), (Some("DHL"), Some("123")));
    assert_problem(post(id.clone(), "cancel", None).await.unwrap(), StatusCode::CONFLICT, "invalid_transition").await;
    assert_eq!(stock(&app, &shop, &v).await, (19, 0), "the sale left the ledger");

    // Shipping needs a carrier and tracking number.
    let id2 = place().await;
    post(id2.clone(), "mark-paid", None).await.unwrap();
    post(id2.clone(), "fulfill", None).await.unwrap();
    assert_problem(
        post(id2.clone(), "ship", Some(json!({"carrier": "", "tracking_number": ""}))).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // Cancelling a processing order refunds it in full and restocks.
    let res = post(id2.clone(), "cancel", None).await.unwrap();
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["refunded_total"], cancelled["total"]);
    assert_eq!(stock(&app, &shop, &v).await, (19, 0));

    // Cancelling an unpaid order releases the reservation.
    let id3 = place().await;
    assert_eq!(stock(&app, &shop, &v).await, (18, 1));
    assert_eq!(post(id3.clone(), "cancel", None).await.unwrap().status(), StatusCode::OK);
    assert_eq!(stock(&app, &shop, &v).await, (19, 0));
    for action in ["mark-paid", "fulfill", "deliver", "cancel"] {
        assert_problem(post(id3.clone(), action, None).await.unwrap(), StatusCode::CONFLICT, "invalid_transition").await;
    }
    assert_ledger_ok(&app).await;
}

#[tokio::test]
async fn refunds_are_bounded_by_the_captured_amount() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 3000, 5).await;
    let c = cart(&app, &[(&v, 2)]).await;
    let body: Value = checkout(&app, &c).await.json().await.unwrap();
    let id = body["order"]["id"].as_str().unwrap().to_owned();
    let total = body["order"]["total"]["amount"].as_i64().unwrap();
    let refund = |amount: Option<i64>, restock: bool, key: &str| {
        let mut b = json!({"restock": restock});
        if let Some(a) = amount {
            b["amount"] = json!(a);
        }
        app.req(Method::POST, &format!("/api/v1/admin/orders/{id}/refunds"), Some(&shop.staff))
            .header("idempotency-key", key)
            .json(&b)
            .send()
    };
    // Nothing captured yet.
    assert_problem(refund(Some(100), false, "r0").await.unwrap(), StatusCode::CONFLICT, "invalid_transition").await;
    app.req(Method::POST, &format!("/api/v1/admin/orders/{id}/mark-paid"), Some(&shop.staff)).send().await.unwrap();
    let res = refund(Some(1000), false, "r1").await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let r: Value = res.json().await.unwrap();
    assert_eq!((r["refunded_total"]["amount"].as_i64(), r["order_status"].as_str()), (Some(1000), Some("paid")));
    // Replaying the same refund does not refund twice.
    let replay: Value = refund(Some(1000), false, "r1").await.unwrap().json().await.unwrap();
    assert_eq!(replay["id"], r["id"]);
    for bad in [0, -5] {
        let res = refund(Some(bad), false, &format!("bad{bad}")).await.unwrap();
        assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert_problem(refund(Some(total), false, "over").await.unwrap(), StatusCode::CONFLICT, "refund_exceeds_captured").await;
    // Restock one unit of one line with a partial refund.
    let line = body["order"]["items"][0]["id"].as_str().unwrap().to_owned();
    let by_line = |qty: i64, key: &'static str| {
        app.req(Method::POST, &format!("/api/v1/admin/orders/{id}/refunds"), Some(&shop.staff))
            .header("idempotency-key", key)
            .json(&json!({"amount": 500, "restock_lines": [{"line_id": line, "quantity": qty}]}))
            .send()
    };
    assert_problem(by_line(3, "l0").await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(by_line(1, "l1").await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(stock(&app, &shop, &v).await, (4, 0));
    let both = app
        .req(Method::POST, &format!("/api/v1/admin/orders/{id}/refunds"), Some(&shop.staff))
        .json(&json!({"restock": true, "restock_lines": []}))
        .send()
        .await
        .unwrap();
    assert_problem(both, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // The rest, with restock: the order is refunded and the units are back.
    let r: Value = refund(None, true, "r2").await.unwrap().json().await.unwrap();
    assert_eq!((r["refunded_total"]["amount"].as_i64(), r["order_status"].as_str()), (Some(total), Some("refunded")));
    assert_eq!(stock(&app, &shop, &v).await, (5, 0));
    assert_problem(refund(Some(1), false, "r3").await.unwrap(), StatusCode::CONFLICT, "invalid_transition").await;
    let logs: Value =
        app.get(&format!("/api/v1/admin/audit-logs?action=REFUND&entity_id={id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(logs["data"].as_array().unwrap().len(), 3);
    assert_ledger_ok(&app).await;
}

#[tokio::test]
async fn customers_see_and_cancel_only_their_own_unpaid_orders() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 10).await;
    let ann = app.customer_token("ann@example.com").await;
    let bob = app.customer_token("bob@example.com").await;
    // Ann's own cart (bearer, no token), checked out with her bearer token.
    let c: Value = app.post("/api/v1/carts", Some(&ann), json!({})).await.json().await.unwrap();
    let cid = c["id"].as_str().unwrap();
    assert_eq!(
        app.post(&format!("/api/v1/carts/{cid}/items"), Some(&ann), json!({"variant_id": v, "quantity": 2})).await.status(),
        StatusCode::OK
    );
    let address = json!({"name": "Ann", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country": "FR"});
    assert_eq!(app.patch(&format!("/api/v1/carts/{cid}"), Some(&ann), json!({"shipping_address": address})).await.status(), StatusCode::OK);
    assert_problem(app.get(&format!("/api/v1/carts/{cid}"), Some(&bob)).await, StatusCode::NOT_FOUND, "not_found").await;
    let rates: Value = app.get(&format!("/api/v1/carts/{cid}/shipping-rates"), Some(&ann)).await.json().await.unwrap();
    let rate = rates["data"][0]["id"].as_str().unwrap();
    let res = app
        .req(Method::POST, "/api/v1/checkout", Some(&ann))
        .header("idempotency-key", "ann-1")
        .json(&json!({"cart_id": cid, "shipping_rate_id": rate}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["order"]["email"], "ann@example.com", "falls back to the account email");
    let id = order["order"]["id"].as_str().unwrap();

    let mine: Value = app.get("/api/v1/orders", Some(&ann)).await.json().await.unwrap();
    assert_eq!(mine["data"].as_array().unwrap().len(), 1);
    let theirs: Value = app.get("/api/v1/orders", Some(&bob)).await.json().await.unwrap();
    assert!(theirs["data"].as_array().unwrap().is_empty());
    assert_problem(app.get(&format!("/api/v1/orders/{id}"), Some(&bob)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.post(&format!("/api/v1/orders/{id}/cancel"), Some(&bob), json!({})).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.get("/api/v1/orders", None).await, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    let res = app.post(&format!("/api/v1/orders/{id}/cancel"), Some(&ann), json!({})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_eq!(stock(&app, &shop, &v).await, (10, 0));
    // Paid orders are cancelled by the shop, not the customer.
    let c2 = cart(&app, &[(&v, 1)]).await;
    let o2: Value = checkout(&app, &c2).await.json().await.unwrap();
    let id2 = o2["order"]["id"].as_str().unwrap();
    app.req(Method::POST, &format!("/api/v1/admin/orders/{id2}/mark-paid"), Some(&shop.staff)).send().await.unwrap();
    let admin_list: Value = app.get("/api/v1/admin/orders?status=paid", Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(admin_list["data"].as_array().unwrap().len(), 1);
    assert_problem(
        app.get("/api/v1/admin/orders?status=lost", Some(&shop.staff)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_ledger_ok(&app).await;
}

#[tokio::test]
async fn expired_reservations_return_stock_exactly_once_with_two_workers() {
    // The job worker's scheduled expiry (every 15 s) would race the assertions below: here
    // only the two calls under test expire anything.
    let app = TestApp::spawn_with(|c| {
        c.reservation_ttl_minutes = 0;
        c.worker_enabled = false;
    })
    .await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 4).await;
    for _ in 0..3 {
        let c = cart(&app, &[(&v, 1)]).await;
        assert_eq!(checkout(&app, &c).await.status(), StatusCode::CREATED);
    }
    assert_eq!(stock(&app, &shop, &v).await, (1, 3));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (a, b) = tokio::join!(app.state.orders.expire_overdue(), app.state.orders.expire_overdue());
    assert!(a.unwrap() + b.unwrap() <= 3);
    assert_eq!(stock(&app, &shop, &v).await, (4, 0), "stock came back exactly once");
    let cancelled: Value = app.get("/api/v1/admin/orders?status=cancelled", Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(cancelled["data"].as_array().unwrap().len(), 3);
    let ledger: Value = app.get(&format!("/api/v1/admin/variants/{v}/inventory/movements"), Some(&shop.staff)).await.json().await.unwrap();
    let expiries = ledger["data"].as_array().unwrap().iter().filter(|m| m["kind"] == "expiry").count();
    assert_eq!(expiries, 3);
    assert_ledger_ok(&app).await;
}
