//! Shopify webhooks: HMAC of the raw body, de-duplication by event id, orders/paid and
//! refunds/create applied to the matching order.

use crate::{
    orders_support::*,
    support::{TestApp, assert_problem},
};
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const SECRET: &str = "shpss_test_secret";

pub fn sign(body: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(services::payments::signatures::hmac_sha256(SECRET.as_bytes(), &[body.as_bytes()]))
}

pub async fn deliver(app: &TestApp, topic: &str, event: &str, body: &str, hmac: &str) -> reqwest::Response {
    app.req(Method::POST, "/api/v1/webhooks/shopify", None)
        .header("x-shopify-topic", topic)
        .header("x-shopify-event-id", event)
        .header("x-shopify-hmac-sha256", hmac)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

pub fn decimal(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

#[tokio::test]
async fn orders_paid_and_refunds_from_shopify() {
    let app = TestApp::spawn_with(|c| c.shopify_webhook_secret = Some(platform::Secret::new(SECRET))).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1250, 5).await;
    let c = cart(&app, &[(&v, 2)]).await;
    let body: Value = checkout(&app, &c).await.json().await.unwrap();
    let id = body["order"]["id"].as_str().unwrap().to_owned();
    let total = body["order"]["total"]["amount"].as_i64().unwrap();
    let status = || async { app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json::<Value>().await.unwrap() };
    let paid = |price: i64| {
        json!({"id": 820982911946154508i64, "total_price": decimal(price), "currency": "EUR", "note_attributes": [{"name": "valuva_order_id", "value": id}]}).to_string()
    };

    let event = paid(total);
    let before = app.count("webhook_events").await;
    assert_problem(deliver(&app, "orders/paid", "e1", &event, "bm90IGl0").await, StatusCode::BAD_REQUEST, "invalid_signature").await;
    let no_id = app
        .req(Method::POST, "/api/v1/webhooks/shopify", None)
        .header("x-shopify-hmac-sha256", sign(&event))
        .body(event.clone())
        .send()
        .await
        .unwrap();
    assert_problem(no_id, StatusCode::BAD_REQUEST, "missing_event_id").await;
    assert_eq!(app.count("webhook_events").await, before);
    let wrong = paid(total - 1);
    let res: Value = deliver(&app, "orders/paid", "e0", &wrong, &sign(&wrong)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "amount_mismatch");
    assert_eq!(status().await["status"], "pending_payment");

    let res: Value = deliver(&app, "orders/paid", "e1", &event, &sign(&event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied");
    assert_eq!(status().await["status"], "paid");
    let res: Value = deliver(&app, "orders/paid", "e1", &event, &sign(&event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "duplicate");

    // A payment already recorded, re-sent under a fresh event id (the header is not signed).
    let res: Value = deliver(&app, "orders/paid", "forged-1", &event, &sign(&event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "duplicate");

    let refund = |refund_id: i64, amount: i64| {
        json!({"id": refund_id, "order_id": 820982911946154508i64, "transactions": [{"kind": "refund", "status": "success", "amount": decimal(amount)}]}).to_string()
    };
    let r1 = refund(1, 1000);
    let res: Value = deliver(&app, "refunds/create", "e2", &r1, &sign(&r1)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied");
    assert_eq!(status().await["refunded_total"]["amount"], 1000);
    // Someone holding that signed refund re-sends it with new event ids: it is still refund 1.
    for forged in ["forged-2", "forged-3"] {
        let res: Value = deliver(&app, "refunds/create", forged, &r1, &sign(&r1)).await.json().await.unwrap();
        assert_eq!(res["outcome"], "duplicate");
    }
    assert_eq!(status().await["refunded_total"]["amount"], 1000);
    let too_much = refund(2, total);
    let res: Value = deliver(&app, "refunds/create", "e3", &too_much, &sign(&too_much)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "amount_mismatch");
    let rest = refund(3, total - 1000);
    deliver(&app, "refunds/create", "e4", &rest, &sign(&rest)).await;
    let order = status().await;
    assert_eq!((order["status"].as_str(), order["refunded_total"]["amount"].as_i64()), (Some("refunded"), Some(total)));
    let logs: Value =
        app.get(&format!("/api/v1/admin/audit-logs?action=REFUND&entity_id={id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(logs["data"].as_array().unwrap().len(), 2);
    assert_ledger_ok(&app).await;
}

#[tokio::test]
async fn webhooks_without_a_configured_secret_do_not_exist() {
    let app = TestApp::spawn().await;
    assert_problem(deliver(&app, "orders/paid", "e1", "{}", "x").await, StatusCode::NOT_FOUND, "not_found").await;
    let res =
        app.req(Method::POST, "/api/v1/webhooks/stripe", None).header("stripe-signature", "t=1,v1=00").body("{}").send().await.unwrap();
    assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

/// A checked-out order's id and total.
async fn placed(app: &TestApp, c: &Cart) -> (String, i64) {
    let body: Value = checkout(app, c).await.json().await.unwrap();
    (body["order"]["id"].as_str().unwrap().to_owned(), body["order"]["total"]["amount"].as_i64().unwrap())
}

/// What a signed Shopify event must not do: put an id PostgreSQL cannot store (NUL, over 255
/// bytes) into its tables, wrap an overflowing refund sum into a small refund, or relabel an
/// order another provider already took the money for. And an order paid in Shopify is
/// refunded there: staff asking here get a 409 that says so.
#[tokio::test]
async fn shopify_events_that_cannot_apply_change_nothing() {
    let app = TestApp::spawn_with(|c| c.shopify_webhook_secret = Some(platform::Secret::new(SECRET))).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1250, 5).await;
    let (id, total) = placed(&app, &cart(&app, &[(&v, 1)]).await).await;
    let paid = |shopify_id: Value, ours: &str, price: i64| {
        json!({"id": shopify_id, "total_price": decimal(price), "currency": "EUR", "note_attributes": [{"name": "valuva_order_id", "value": ours}]})
            .to_string()
    };
    let before = (app.count("webhook_events").await, app.count("audit_logs").await);
    for (i, bad) in [json!("a\u{0}b"), json!("s".repeat(300)), json!(1.5), json!(-3), Value::Null].into_iter().enumerate() {
        let event = paid(bad, &id, total);
        let res = deliver(&app, "orders/paid", &format!("bad-{i}"), &event, &sign(&event)).await;
        assert_problem(res, StatusCode::BAD_REQUEST, "malformed_event").await;
    }
    assert_eq!((app.count("webhook_events").await, app.count("audit_logs").await), before);

    let event = paid(json!(4242), &id, total);
    let res: Value = deliver(&app, "orders/paid", "p1", &event, &sign(&event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied");
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!((view["status"].as_str(), view["payment_provider"].as_str()), (Some("paid"), Some("shopify")));
    let refund = app.post(&format!("/api/v1/admin/orders/{id}/refunds"), Some(&shop.staff), json!({"amount": 1})).await;
    assert_problem(refund, StatusCode::CONFLICT, "refund_at_provider").await;
    let cancel = app.post(&format!("/api/v1/admin/orders/{id}/cancel"), Some(&shop.staff), json!({})).await;
    assert_problem(cancel, StatusCode::CONFLICT, "refund_at_provider").await;

    // Two amounts near i64::MAX and a small one: summed, they would wrap to a 1-cent refund.
    let huge = json!({"kind": "refund", "status": "success", "amount": "92233720368547758.07"});
    let wraps = json!({"id": 9, "order_id": 4242, "transactions": [huge, huge, {"kind": "refund", "status": "success", "amount": "0.03"}]})
        .to_string();
    let res: Value = deliver(&app, "refunds/create", "r1", &wraps, &sign(&wraps)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "amount_mismatch");
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!((view["status"].as_str(), view["refunded_total"]["amount"].as_i64()), (Some("paid"), Some(0)));

    // Paid by hand first: a later Shopify payment event does not relabel the payment.
    let (other, total) = placed(&app, &cart(&app, &[(&v, 1)]).await).await;
    assert_eq!(app.post(&format!("/api/v1/admin/orders/{other}/mark-paid"), Some(&shop.staff), json!({})).await.status(), StatusCode::OK);
    let late = paid(json!(777), &other, total);
    let res: Value = deliver(&app, "orders/paid", "p2", &late, &sign(&late)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "already_applied");
    assert_eq!(app.count("payments WHERE provider = 'shopify'").await, 1, "only the order Shopify took the money for");
    assert_eq!(
        app.post(&format!("/api/v1/admin/orders/{other}/refunds"), Some(&shop.staff), json!({"amount": 1})).await.status(),
        StatusCode::CREATED
    );
    // Paid in Shopify after the order was cancelled here: kept cancelled, and answered so
    // that it stands out (the audit trail and a metric record it for staff to refund there).
    let (closed, total) = placed(&app, &cart(&app, &[(&v, 1)]).await).await;
    assert_eq!(app.post(&format!("/api/v1/admin/orders/{closed}/cancel"), Some(&shop.staff), json!({})).await.status(), StatusCode::OK);
    let late = paid(json!(778), &closed, total);
    let res: Value = deliver(&app, "orders/paid", "p3", &late, &sign(&late)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "paid_after_close");
    let view: Value = app.get(&format!("/api/v1/admin/orders/{closed}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(view["status"], "cancelled");
    assert_eq!(app.count(&format!("audit_logs WHERE action = 'PAYMENT' AND entity_id = '{closed}'")).await, 1);
    assert_ledger_ok(&app).await;
}
