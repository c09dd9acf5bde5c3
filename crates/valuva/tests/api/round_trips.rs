//! Statements per step of the checkout flow, counted by the server's own pools. The flow is
//! database-bound (the benchmark's checkout saturates PostgreSQL first), so these budgets
//! guard its speed without timing anything: a new N+1 query or a re-read fails here.

use crate::{
    orders_support::{Cart, rate, shop, variant},
    support::TestApp,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Statements the server ran while answering `step` (both pools), and its response.
async fn counted(app: &TestApp, expect: StatusCode, step: impl Future<Output = reqwest::Response>) -> (u64, reqwest::Response) {
    let before = app.statements();
    let res = step.await;
    let after = app.statements();
    assert_eq!(res.status(), expect);
    ((after.0 - before.0) + (after.1 - before.1), res)
}

/// Statements for: new cart, one per line added, address set, checkout.
async fn flow(app: &TestApp, lines: &[String]) -> (u64, Vec<u64>, u64, u64) {
    let (create, res) = counted(app, StatusCode::CREATED, app.post("/api/v1/carts", None, json!({"currency": "EUR"}))).await;
    let body: serde_json::Value = res.json().await.unwrap();
    let cart = Cart { id: body["id"].as_str().unwrap().into(), token: body["token"].as_str().unwrap().into() };
    let mut adds = Vec::new();
    for v in lines {
        let add = cart.req(app, Method::POST, &format!("/api/v1/carts/{}/items", cart.id)).json(&json!({"variant_id": v, "quantity": 1}));
        adds.push(counted(app, StatusCode::OK, async { add.send().await.unwrap() }).await.0);
    }
    let address = json!({"name": "Ann", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115", "country": "DE"});
    let patch = cart
        .req(app, Method::PATCH, &format!("/api/v1/carts/{}", cart.id))
        .json(&json!({"email": "a@example.com", "shipping_address": address}));
    let (patched, _) = counted(app, StatusCode::OK, async { patch.send().await.unwrap() }).await;
    let rate = rate(app, &cart).await;
    let checkout = cart
        .req(app, Method::POST, "/api/v1/checkout")
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .json(&json!({"cart_id": cart.id, "shipping_rate_id": rate}));
    let (ordered, _) = counted(app, StatusCode::CREATED, async { checkout.send().await.unwrap() }).await;
    (create, adds, patched, ordered)
}

#[tokio::test]
async fn the_checkout_flow_stays_within_its_statement_budget() {
    let app = TestApp::spawn_counting().await;
    let shop = shop(&app).await;
    let mut variants = Vec::new();
    for _ in 0..3 {
        variants.push(variant(&app, &shop, 1000, 50).await);
    }

    let (create, adds, patched, three_lines) = flow(&app, &variants).await;
    assert_eq!(create, 1, "a new cart is one INSERT");
    let postgres = app.state.db.backend() == store::Backend::Postgres;
    for add in &adds {
        // The cart, its lines and the variant in one read; the write that stamps the cart if
        // it is unchanged and writes the line (one statement on PostgreSQL, one string of two
        // on SQLite), with no transaction around them.
        assert!(*add <= 2, "adding a line took {add} statements");
    }
    // The update that checks access and stamps the cart; its lines.
    assert!(patched <= 2, "setting the address took {patched} statements");
    // Close the cart; its lines; the reservation of every line; order number (SQLite's
    // counter row; on PostgreSQL the order's insert draws it); order; then lines, ledger,
    // payment, audit, event and the key with its response in one batch. (Zones and rates
    // come from the cache, filled when the client asked for the cart's shipping options.)
    let budget = if postgres { 5 } else { 6 };
    assert!(three_lines <= budget, "checking out three lines took {three_lines} statements");

    // Nothing grows with the cart: every step is one statement for all lines.
    let (_, _, _, one_line) = flow(&app, &variants[..1]).await;
    assert_eq!(three_lines, one_line, "1 line: {one_line} statements, 3 lines: {three_lines}");
}

/// Reads of a cart or an order outside any transaction see the latest commit without taking
/// SQLite's one writer connection: they run on its read-only pool (every commit is visible
/// there at once). PostgreSQL without a replica has one pool for both.
#[tokio::test]
async fn current_reads_leave_the_sqlite_writer_to_writers() {
    let app = TestApp::spawn_counting().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 50).await;
    let cart = crate::orders_support::cart(&app, &[(&v, 1)]).await;
    let before = app.statements();
    let res = cart.req(&app, Method::GET, &format!("/api/v1/carts/{}", cart.id)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["items"][0]["quantity"], 1, "the read sees the line just added");
    let after = app.statements();
    let (writer, readers) = (after.0 - before.0, after.1 - before.1);
    if app.state.db.backend() == store::Backend::Sqlite {
        assert_eq!((writer, readers), (0, 2), "cart read: {writer} on the writer, {readers} on the readers");
    } else {
        assert_eq!((writer, readers), (2, 0));
    }
}

/// Adding a line holds SQLite's one writer connection for a single hand-off: the cart, its
/// lines and the variant are read on the read-only pool, and the conditional write is one
/// string of statements on the writer. PostgreSQL without a replica has one pool for both.
#[tokio::test]
async fn adding_a_line_takes_the_sqlite_writer_once() {
    let app = TestApp::spawn_counting().await;
    let shop = shop(&app).await;
    let (a, b) = (variant(&app, &shop, 1000, 50).await, variant(&app, &shop, 1000, 50).await);
    let cart = crate::orders_support::cart(&app, &[(&a, 1)]).await;
    for (v, expect) in [(&b, 1), (&a, 2)] {
        let before = app.statements();
        let add = cart.req(&app, Method::POST, &format!("/api/v1/carts/{}/items", cart.id)).json(&json!({"variant_id": v, "quantity": 1}));
        let body: serde_json::Value = add.send().await.unwrap().json().await.unwrap();
        let line = body["items"].as_array().unwrap().iter().find(|i| i["variant_id"] == v.as_str()).cloned().unwrap();
        assert_eq!(line["quantity"], expect, "{body}");
        let after = app.statements();
        let (writer, readers) = (after.0 - before.0, after.1 - before.1);
        if app.state.db.backend() == store::Backend::Sqlite {
            assert_eq!((writer, readers), (1, 1), "add: {writer} on the writer, {readers} on the readers");
        } else {
            assert_eq!((writer, readers), (2, 0));
        }
    }
}
