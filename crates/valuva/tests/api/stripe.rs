//! Stripe payments end to end against a local fake Stripe: the real JSON and form shapes,
//! webhooks signed like Stripe signs them.

use crate::{
    orders_support::*,
    support::{TestApp, assert_problem},
};
use axum::{Form, Router, extract::State, http::HeaderMap, routing::post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

const WEBHOOK_SECRET: &str = "whsec_test_secret";

#[derive(Default)]
pub struct FakeStripe {
    pub intents: Mutex<Vec<HashMap<String, String>>>,
    pub refunds: Mutex<Vec<HashMap<String, String>>>,
    /// Idempotency key → intent id: Stripe answers a repeated key with the first result.
    keys: Mutex<HashMap<String, String>>,
    pub calls: AtomicU32,
    pub fail_next: AtomicU32,
    /// Refunds answer 400 `charge_already_refunded`, as for a charge refunded in the Dashboard.
    pub refuse_refunds: std::sync::atomic::AtomicBool,
}

async fn intents(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    f.calls.fetch_add(1, Ordering::SeqCst);
    if f.fail_next.load(Ordering::SeqCst) > 0 {
        f.fail_next.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": {"type": "api_error"}})));
    }
    assert!(headers["authorization"].to_str().unwrap().starts_with("Bearer sk_test"));
    // Stripe's keys are account-wide and at most 255 characters: one per order.
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    assert_eq!(key, format!("valuva-intent-{}", form["metadata[order_id]"]));
    let mut keys = f.keys.lock().unwrap();
    let id = keys.entry(key).or_insert_with(|| format!("pi_{}", uuid::Uuid::now_v7().simple())).clone();
    f.intents.lock().unwrap().push(form.clone());
    (
        StatusCode::OK,
        axum::Json(
            json!({"id": id, "object": "payment_intent", "client_secret": format!("{id}_secret_abc"), "status": "requires_payment_method", "amount": form["amount"].parse::<i64>().unwrap(), "currency": form["currency"]}),
        ),
    )
}

async fn refunds(State(f): State<Arc<FakeStripe>>, Form(form): Form<HashMap<String, String>>) -> (StatusCode, axum::Json<Value>) {
    f.calls.fetch_add(1, Ordering::SeqCst);
    if f.refuse_refunds.load(Ordering::SeqCst) {
        let error = json!({"error": {"type": "invalid_request_error", "code": "charge_already_refunded", "message": "Charge has already been refunded."}});
        return (StatusCode::BAD_REQUEST, axum::Json(error));
    }
    f.refunds.lock().unwrap().push(form.clone());
    let refund = json!({"id": format!("re_{}", uuid::Uuid::now_v7().simple()), "object": "refund", "status": "succeeded", "amount": form["amount"].parse::<i64>().unwrap()});
    (StatusCode::OK, axum::Json(refund))
}

pub async fn fake_stripe() -> (String, Arc<FakeStripe>) {
    let fake = Arc::new(FakeStripe::default());
    let app = Router::new().route("/v1/payment_intents", post(intents)).route("/v1/refunds", post(refunds)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), fake)
}

async fn stripe_app(fake_url: &str, tweak: impl FnOnce(&mut platform::Config)) -> TestApp {
    let url = fake_url.to_owned();
    TestApp::spawn_with(move |c| {
        c.stripe_secret_key = Some(platform::Secret::new("sk_test_123"));
        c.stripe_webhook_secret = Some(platform::Secret::new(WEBHOOK_SECRET));
        c.stripe_api_base = url;
        c.retry_base_delay_ms = 1;
        tweak(c);
    })
    .await
}

fn signature(secret: &str, t: i64, body: &str) -> String {
    let mac = services::payments::signatures::hmac_sha256(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body.as_bytes()]);
    format!("t={t},v1={}", hex_encode(&mac))
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn deliver(app: &TestApp, body: &str, sig: &str) -> reqwest::Response {
    app.req(Method::POST, "/api/v1/webhooks/stripe", None)
        .header("stripe-signature", sig)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn succeeded(event: &str, intent: &str, amount: i64, currency: &str) -> String {
    json!({"id": event, "object": "event", "type": "payment_intent.succeeded",
           "data": {"object": {"id": intent, "object": "payment_intent", "amount": amount, "amount_received": amount, "currency": currency}}})
    .to_string()
}

/// A capture as Stripe sends it: the intent carries the metadata checkout gave it.
fn captured(event: &str, intent: &str, order: &str, amount: i64) -> String {
    json!({"id": event, "object": "event", "type": "payment_intent.succeeded",
           "data": {"object": {"id": intent, "object": "payment_intent", "amount": amount, "amount_received": amount,
                               "currency": "eur", "metadata": {"order_id": order}}}})
    .to_string()
}

/// A Stripe checkout's order id, total and PaymentIntent id (the client secret's prefix).
fn order_of(body: &Value) -> (String, i64, String) {
    let intent = body["payment"]["client_secret"].as_str().unwrap().split("_secret_").next().unwrap().to_owned();
    (body["order"]["id"].as_str().unwrap().to_owned(), body["order"]["total"]["amount"].as_i64().unwrap(), intent)
}

async fn stripe_checkout(app: &TestApp, c: &Cart) -> Value {
    stripe_checkout_with_key(app, c, &uuid::Uuid::now_v7().to_string()).await
}

async fn stripe_checkout_with_key(app: &TestApp, c: &Cart, key: &str) -> Value {
    let r = rate(app, c).await;
    let res = c
        .req(app, Method::POST, "/api/v1/checkout")
        .header("idempotency-key", key)
        .json(&json!({"cart_id": c.id, "shipping_rate_id": r, "payment_provider": "stripe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// A client's key is its own (scoped to its cart): two shoppers who send the same key, of the
/// longest length accepted, each get a PaymentIntent of their own.
#[tokio::test]
async fn each_order_gets_its_own_intent_whatever_key_the_client_sent() {
    let (url, fake) = fake_stripe().await;
    let app = stripe_app(&url, |_| {}).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 2500, 5).await;
    let key = "k".repeat(255);
    let a = stripe_checkout_with_key(&app, &cart(&app, &[(&v, 1)]).await, &key).await;
    let b = stripe_checkout_with_key(&app, &cart(&app, &[(&v, 1)]).await, &key).await;
    assert_ne!(a["order"]["id"], b["order"]["id"]);
    assert_ne!(a["payment"]["client_secret"], b["payment"]["client_secret"]);
    assert_eq!(fake.intents.lock().unwrap().len(), 2);
    // Its payment comes from Stripe's webhook: staff cannot record it by hand.
    let res =
        app.post(&format!("/api/v1/admin/orders/{}/mark-paid", a["order"]["id"].as_str().unwrap()), Some(&shop.staff), json!({})).await;
    assert_problem(res, StatusCode::CONFLICT, "paid_at_provider").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_intent_signed_webhook_paid_then_refunds() {
    let (url, fake) = fake_stripe().await;
    let app = stripe_app(&url, |_| {}).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 2500, 5).await;
    let c = cart(&app, &[(&v, 2)]).await;
    let body = stripe_checkout(&app, &c).await;
    let (order, payment) = (&body["order"], &body["payment"]);
    let total = order["total"]["amount"].as_i64().unwrap();
    assert_eq!((payment["provider"].as_str(), payment["status"].as_str()), (Some("stripe"), Some("pending")));
    assert!(payment["client_secret"].as_str().unwrap().contains("_secret_"));
    let sent = fake.intents.lock().unwrap()[0].clone();
    assert_eq!((sent["amount"].parse::<i64>().unwrap(), sent["currency"].as_str()), (total, "eur"));
    assert_eq!(sent["metadata[order_id]"], order["id"].as_str().unwrap());
    let intent = payment["client_secret"].as_str().unwrap().split("_secret_").next().unwrap().to_owned();
    let id = order["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let status = || async {
        app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json::<Value>().await.unwrap()["status"].clone()
    };

    // Forged, stale and missing signatures change nothing.
    let event = succeeded("evt_1", &intent, total, "eur");
    let before = (app.count("webhook_events").await, app.count("audit_logs").await);
    assert_problem(deliver(&app, &event, &signature("whsec_wrong", now, &event)).await, StatusCode::BAD_REQUEST, "invalid_signature").await;
    assert_problem(deliver(&app, &event, &signature(WEBHOOK_SECRET, now - 600, &event)).await, StatusCode::BAD_REQUEST, "stale_webhook")
        .await;
    assert_problem(deliver(&app, &event, "t=1,v1=zz").await, StatusCode::BAD_REQUEST, "invalid_signature").await;
    let tampered = event.replace(&total.to_string(), "1");
    assert_problem(deliver(&app, &tampered, &signature(WEBHOOK_SECRET, now, &event)).await, StatusCode::BAD_REQUEST, "invalid_signature")
        .await;
    assert_eq!((app.count("webhook_events").await, app.count("audit_logs").await), before);
    assert_eq!(status().await, "pending_payment");

    // A wrong amount never pays the order.
    let short = succeeded("evt_short", &intent, total - 1, "eur");
    let res: Value = deliver(&app, &short, &signature(WEBHOOK_SECRET, now, &short)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "amount_mismatch");
    assert_eq!(status().await, "pending_payment");

    // The real event pays it, once.
    let res: Value = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied");
    assert_eq!(status().await, "paid");
    let audit_after = app.count("audit_logs").await;
    let replay: Value = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json().await.unwrap();
    assert_eq!(replay["outcome"], "duplicate");
    assert_eq!(app.count("audit_logs").await, audit_after);
    assert_eq!(stock(&app, &shop, &v).await, (3, 0), "sold units left the reservation");
    let payments: Value =
        app.get(&format!("/api/v1/admin/audit-logs?action=PAYMENT&entity_id={id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(payments["data"].as_array().unwrap().len(), 1);

    // Refunds go through Stripe's Refund API and never exceed the captured total.
    let refund = |amount: Option<i64>| {
        let b = amount.map_or(json!({}), |a| json!({"amount": a}));
        app.req(Method::POST, &format!("/api/v1/admin/orders/{id}/refunds"), Some(&shop.staff)).json(&b).send()
    };
    assert_eq!(refund(Some(1000)).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(fake.refunds.lock().unwrap()[0]["payment_intent"], intent);
    assert_eq!(fake.refunds.lock().unwrap()[0]["amount"], "1000");
    assert_problem(refund(Some(total)).await.unwrap(), StatusCode::CONFLICT, "refund_exceeds_captured").await;
    let rest: Value = refund(None).await.unwrap().json().await.unwrap();
    assert_eq!((rest["amount"]["amount"].as_i64(), rest["order_status"].as_str()), (Some(total - 1000), Some("refunded")));
    assert_problem(refund(Some(1)).await.unwrap(), StatusCode::CONFLICT, "invalid_transition").await;
    assert_eq!(fake.refunds.lock().unwrap().len(), 2);

    // Unknown event types are acknowledged and ignored; failures are recorded.
    let other = json!({"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).to_string();
    let res: Value = deliver(&app, &other, &signature(WEBHOOK_SECRET, now, &other)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "ignored");
    assert_ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_on_two_deliveries_at_once_applies_once() {
    let (url, _fake) = fake_stripe().await;
    let app = stripe_app(&url, |_| {}).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 5).await;
    let c = cart(&app, &[(&v, 1)]).await;
    let body = stripe_checkout(&app, &c).await;
    let total = body["order"]["total"]["amount"].as_i64().unwrap();
    let intent = body["payment"]["client_secret"].as_str().unwrap().split("_secret_").next().unwrap().to_owned();
    let event = succeeded("evt_twice", &intent, total, "eur");
    let sig = signature(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &event);
    let (a, b) = tokio::join!(deliver(&app, &event, &sig), deliver(&app, &event, &sig));
    let mut outcomes = vec![a.json::<Value>().await.unwrap()["outcome"].clone(), b.json::<Value>().await.unwrap()["outcome"].clone()];
    outcomes.sort_by_key(|o| o.to_string());
    assert_eq!(outcomes, [json!("applied"), json!("duplicate")]);
    assert_eq!(stock(&app, &shop, &v).await, (4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_breaker_opens_fails_fast_and_recovers() {
    let (url, fake) = fake_stripe().await;
    let app = stripe_app(&url, |c| {
        c.retry_max_attempts = 1;
        c.breaker_payments_failures = 5;
        c.breaker_payments_open_seconds = 1;
    })
    .await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 50).await;
    fake.fail_next.store(5, Ordering::SeqCst);
    let attempt = || async {
        let c = cart(&app, &[(&v, 1)]).await;
        let r = rate(&app, &c).await;
        c.req(&app, Method::POST, "/api/v1/checkout")
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(&json!({"cart_id": c.id, "shipping_rate_id": r, "payment_provider": "stripe"}))
            .send()
            .await
            .unwrap()
    };
    for _ in 0..5 {
        assert_problem(attempt().await, StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable").await;
    }
    assert_eq!(fake.calls.load(Ordering::SeqCst), 5);
    // Open: the next call fails at once without reaching Stripe.
    assert_problem(attempt().await, StatusCode::SERVICE_UNAVAILABLE, "dependency_unavailable").await;
    assert_eq!(fake.calls.load(Ordering::SeqCst), 5);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    // The state gauge is process-wide (other tests' apps share it); the transition counter only
    // grows, and only this test opens the payments breaker.
    assert!(metrics.contains(r#"valuva_circuit_breaker_transitions_total{service="payments",to="open"}"#), "the opening is exported");
    assert!(metrics.contains(r#"valuva_circuit_breaker_state{service="payments"}"#));
    // After the open period one probe goes through, succeeds and closes the breaker.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(attempt().await.status(), StatusCode::CREATED);
    assert_eq!(fake.calls.load(Ordering::SeqCst), 6);
    assert_eq!(attempt().await.status(), StatusCode::CREATED);
}

/// Signed events that cannot apply: ids PostgreSQL cannot store are malformed (400, so nothing
/// is recorded), and a payment failure reported after the order was paid leaves it paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_that_cannot_apply_change_nothing() {
    let (url, _fake) = fake_stripe().await;
    let app = stripe_app(&url, |_| {}).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 2500, 5).await;
    let body = stripe_checkout(&app, &cart(&app, &[(&v, 1)]).await).await;
    let (id, total, intent) = order_of(&body);
    let now = chrono::Utc::now().timestamp();
    let app = &app;
    let send = |event: String| async move { deliver(app, &event, &signature(WEBHOOK_SECRET, now, &event)).await };

    let before = (app.count("webhook_events").await, app.count("audit_logs").await);
    for event in [
        succeeded("evt_nul\u{0}", &intent, total, "eur"),
        succeeded(&"e".repeat(256), &intent, total, "eur"),
        succeeded("evt_ok", "pi_\u{0}", total, "eur"),
        json!({"id": "evt_t", "type": "customer\u{0}created", "data": {"object": {}}}).to_string(),
    ] {
        assert_problem(send(event).await, StatusCode::BAD_REQUEST, "malformed_event").await;
    }
    assert_eq!((app.count("webhook_events").await, app.count("audit_logs").await), before);

    let res: Value = send(succeeded("evt_paid", &intent, total, "eur")).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied");
    let failed = json!({"id": "evt_late_failure", "type": "payment_intent.payment_failed",
        "data": {"object": {"id": intent, "last_payment_error": {"message": "card declined"}}}})
    .to_string();
    let res: Value = send(failed).await.json().await.unwrap();
    assert_eq!(res["outcome"], "ignored");
    assert_eq!(app.count("payments WHERE status = 'failed'").await, 0, "the payment stays captured");
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(view["status"], "paid");
}

/// The customer confirms a payment after the unpaid order was cancelled (or expired): the
/// stock is back on sale, so the captured money goes back through Stripe, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_captured_after_cancellation_is_refunded() {
    let (url, fake) = fake_stripe().await;
    let app = stripe_app(&url, |_| {}).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 2500, 5).await;
    let body = stripe_checkout(&app, &cart(&app, &[(&v, 2)]).await).await;
    let (id, total, intent) = order_of(&body);
    let cancelled = app.post(&format!("/api/v1/admin/orders/{id}/cancel"), Some(&shop.staff), json!({})).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(stock(&app, &shop, &v).await, (5, 0), "the units are back on sale");

    let event = succeeded("evt_late", &intent, total, "eur");
    let now = chrono::Utc::now().timestamp();
    let res: Value = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "refunded");
    let refunds = fake.refunds.lock().unwrap().clone();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0]["payment_intent"].as_str(), refunds[0]["amount"].parse::<i64>().ok()), (intent.as_str(), Some(total)));
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!((view["status"].as_str(), view["refunded_total"]["amount"].as_i64()), (Some("cancelled"), Some(total)));
    let replay: Value = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json().await.unwrap();
    assert_eq!(replay["outcome"], "duplicate");
    // Another event for the same capture (Stripe may send one per attempt) refunds nothing more.
    let again = succeeded("evt_late_2", &intent, total, "eur");
    let res: Value = deliver(&app, &again, &signature(WEBHOOK_SECRET, now, &again)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "already_applied");
    assert_eq!(fake.refunds.lock().unwrap().len(), 1);
    assert_eq!(stock(&app, &shop, &v).await, (5, 0), "nothing restocked twice");
    assert_ledger_ok(&app).await;
}

/// An app with Stripe and Shopify, and an order checked out with Stripe (1 unit at 25.00) that
/// the customer then paid in Shopify.
struct PaidInShopify {
    app: TestApp,
    fake: Arc<FakeStripe>,
    shop: Shop,
    v: String,
    id: String,
    total: i64,
    intent: String,
    /// What Shopify's `orders/paid` was answered.
    outcome: Value,
}

async fn paid_in_shopify() -> PaidInShopify {
    use crate::shopify;
    let (url, fake) = fake_stripe().await;
    let app = stripe_app(&url, |c| c.shopify_webhook_secret = Some(platform::Secret::new(shopify::SECRET))).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 2500, 5).await;
    let body = stripe_checkout(&app, &cart(&app, &[(&v, 1)]).await).await;
    let (id, total, intent) = order_of(&body);
    let paid = json!({"id": 820982911946154508i64, "total_price": shopify::decimal(total), "currency": "EUR",
                      "note_attributes": [{"name": "valuva_order_id", "value": id}]})
    .to_string();
    let res = shopify::deliver(&app, "orders/paid", "shp-1", &paid, &shopify::sign(&paid)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let outcome = res.json::<Value>().await.unwrap()["outcome"].clone();
    PaidInShopify { app, fake, shop, v, id, total, intent, outcome }
}

/// The customer paid through Shopify while the order's Stripe payment was still open, then
/// completed that one too: Stripe's capture is refunded in full (once), and the order stays paid
/// through Shopify with nothing refunded from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_payment_through_stripe_is_refunded() {
    let PaidInShopify { app, fake, shop, v, id, total, intent, outcome } = paid_in_shopify().await;
    assert_eq!(outcome, "applied");

    // Stripe's events carry the intent's metadata, which names the order (see `captured`).
    let now = chrono::Utc::now().timestamp();
    let send = |event: String| {
        let app = &app;
        async move { deliver(app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json::<Value>().await.unwrap()["outcome"].clone() }
    };
    // Not what this order was paid: another amount, or an order still unpaid, refunds nothing.
    assert_eq!(send(captured("evt_other_amount", &intent, &id, total + 1)).await, "unknown_payment");
    let unpaid = stripe_checkout(&app, &cart(&app, &[(&v, 1)]).await).await;
    let stray = captured("evt_unpaid", "pi_stray", unpaid["order"]["id"].as_str().unwrap(), total);
    assert_eq!(send(stray).await, "unknown_payment");
    assert!(fake.refunds.lock().unwrap().is_empty());

    let event = captured("evt_second", &intent, &id, total);
    assert_eq!(send(event.clone()).await, "refunded_second_payment");
    let refunds = fake.refunds.lock().unwrap().clone();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0]["payment_intent"].as_str(), refunds[0]["amount"].parse::<i64>().ok()), (intent.as_str(), Some(total)));
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(
        (view["status"].as_str(), view["payment_provider"].as_str(), view["refunded_total"]["amount"].as_i64()),
        (Some("paid"), Some("shopify"), Some(0))
    );
    let audited = app.count(&format!("audit_logs WHERE entity_id = '{id}' AND new_values LIKE '%\"status\":\"refunded\"%'")).await;
    assert_eq!(audited, 1);
    // The same event again, or another event for the same capture: nothing more is refunded.
    assert_eq!(send(event).await, "duplicate");
    assert_eq!(send(captured("evt_second_again", &intent, &id, total)).await, "already_applied");
    assert_eq!(fake.refunds.lock().unwrap().len(), 1);
    assert_eq!(app.count(&format!("audit_logs WHERE entity_id = '{id}' AND new_values LIKE '%second_payment%'")).await, 1);

    // A capture naming no order of ours refunds nothing.
    let stranger = succeeded("evt_stranger", "pi_unknown", total, "eur");
    assert_eq!(send(stranger).await, "unknown_payment");
    assert_eq!(fake.refunds.lock().unwrap().len(), 1);
    assert_ledger_ok(&app).await;
}

/// Checkout created the intent but could not store its id (the write after Stripe answered
/// failed): the capture still pays the order, matched by the intent's metadata, and the
/// payment takes the intent's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_of_an_intent_checkout_did_not_store_pays_its_order() {
    let (url, _fake) = fake_stripe().await;
    let app = stripe_app(&url, |_| {}).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 2500, 5).await;
    let body = stripe_checkout(&app, &cart(&app, &[(&v, 1)]).await).await;
    let (id, total, intent) = order_of(&body);
    app.exec("UPDATE payments SET reference = NULL").await;

    let now = chrono::Utc::now().timestamp();
    let event = captured("evt_unstored", &intent, &id, total);
    let res: Value = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "applied");
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!(view["status"], "paid");
    assert_eq!(app.count(&format!("payments WHERE reference = '{intent}'")).await, 1);
    // Another order's metadata cannot take an intent away from a payment that has one.
    let other = stripe_checkout(&app, &cart(&app, &[(&v, 1)]).await).await;
    let event = captured("evt_foreign", "pi_foreign", other["order"]["id"].as_str().unwrap(), total);
    let res: Value = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await.json().await.unwrap();
    assert_eq!(res["outcome"], "unknown_payment");
    assert_eq!(app.count("payments WHERE reference = 'pi_foreign'").await, 0);
}

/// A second payment Stripe will not refund (refunded in the Dashboard already, say) is recorded
/// for staff and acknowledged: redelivering the event for days would not change Stripe's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_payment_stripe_refuses_to_refund_is_recorded_and_acknowledged() {
    let PaidInShopify { app, fake, shop, id, total, intent, .. } = paid_in_shopify().await;
    fake.refuse_refunds.store(true, Ordering::SeqCst);

    let now = chrono::Utc::now().timestamp();
    let event = captured("evt_refused", &intent, &id, total);
    let res = deliver(&app, &event, &signature(WEBHOOK_SECRET, now, &event)).await;
    assert_eq!(res.status(), StatusCode::OK, "acknowledged, not redelivered");
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "refund_refused");
    assert_eq!(app.count(&format!("audit_logs WHERE entity_id = '{id}' AND new_values LIKE '%\"status\":\"refund_refused\"%'")).await, 1);
    let view: Value = app.get(&format!("/api/v1/admin/orders/{id}"), Some(&shop.staff)).await.json().await.unwrap();
    assert_eq!((view["status"].as_str(), view["refunded_total"]["amount"].as_i64()), (Some("paid"), Some(0)));
}
