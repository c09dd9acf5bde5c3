//! Invariants under concurrency, over HTTP against the running server.

use crate::{orders_support::*, support::TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;

/// Checks out every prepared cart at once, each with a fresh key; returns the statuses.
async fn checkout_all(app: &Arc<TestApp>, carts: Vec<(Cart, String)>) -> Vec<StatusCode> {
    let tasks: Vec<_> = carts
        .into_iter()
        .map(|(c, r)| {
            let app = app.clone();
            tokio::spawn(async move { checkout_with(&app, &c, &r, &uuid::Uuid::now_v7().to_string()).await.status() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_checkouts_for_ten_units_sell_exactly_ten() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1000, 10).await;
    let mut carts = Vec::new();
    for _ in 0..200 {
        let c = cart(&app, &[(&v, 1)]).await;
        let r = rate(&app, &c).await;
        carts.push((c, r));
    }
    let app = Arc::new(app);
    let (mut created, mut conflicts) = (0, 0);
    for status in checkout_all(&app, carts).await {
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, conflicts), (10, 190));
    assert_eq!(app.count("orders").await, 10);
    assert_eq!(stock(&app, &shop, &v).await, (0, 10));
    assert_ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_multi_line_checkouts_never_deadlock_into_errors() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let a = variant(&app, &shop, 100, 1000).await;
    let b = variant(&app, &shop, 100, 1000).await;
    let mut carts = Vec::new();
    for i in 0..60 {
        let lines: [(&str, i64); 2] = if i % 2 == 0 { [(&a, 2), (&b, 3)] } else { [(&b, 3), (&a, 2)] };
        let c = cart(&app, &lines).await;
        let r = rate(&app, &c).await;
        carts.push((c, r));
    }
    let app = Arc::new(app);
    for status in checkout_all(&app, carts).await {
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(stock(&app, &shop, &a).await, (1000 - 120, 120));
    assert_eq!(stock(&app, &shop, &b).await, (1000 - 180, 180));
    assert_ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_twenty_times_at_once_creates_one_order() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 100, 50).await;
    let c = cart(&app, &[(&v, 1)]).await;
    let r = rate(&app, &c).await;
    let app = Arc::new(app);
    let c = Arc::new(c);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, c, r) = (app.clone(), c.clone(), r.clone());
            tokio::spawn(async move {
                let res = checkout_with(&app, &c, &r, "the-one-key").await;
                let status = res.status();
                let body: Value = res.json().await.unwrap();
                (status, body)
            })
        })
        .collect();
    // Each duplicate waits for the first (on the cart it converts) and replays its answer.
    let mut order_ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        order_ids.insert(body["order"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(order_ids.len(), 1);
    assert_eq!(app.count("orders").await, 1);
    assert_eq!(stock(&app, &shop, &v).await, (49, 1));
    assert_ledger_ok(&app).await;
}

/// Adds that cross on one cart lose nothing: units added to the same line at once all count,
/// and distinct variants added at once all become lines (on PostgreSQL a write that finds the
/// cart changed since its read starts over; on SQLite writers take turns).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_to_one_cart_lose_no_units_and_no_lines() {
    let app = TestApp::spawn().await;
    let shop = shop(&app).await;
    let same = variant(&app, &shop, 100, 1000).await;
    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(variant(&app, &shop, 100, 1000).await);
    }
    let c = cart(&app, &[]).await;
    let (app, c) = (Arc::new(app), Arc::new(c));
    let adds = std::iter::repeat_n((same.clone(), 2), 16).chain(others.iter().map(|v| (v.clone(), 1)));
    let tasks: Vec<_> = adds
        .map(|(v, q)| {
            let (app, c) = (app.clone(), c.clone());
            tokio::spawn(async move {
                let res = c
                    .req(&app, reqwest::Method::POST, &format!("/api/v1/carts/{}/items", c.id))
                    .json(&serde_json::json!({"variant_id": v, "quantity": q}))
                    .send()
                    .await
                    .unwrap();
                (res.status(), res.text().await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let view: Value = c.req(&app, reqwest::Method::GET, &format!("/api/v1/carts/{}", c.id)).send().await.unwrap().json().await.unwrap();
    let items = view["items"].as_array().unwrap();
    assert_eq!(items.len(), 9, "{view}");
    let quantity = |v: &str| items.iter().find(|i| i["variant_id"] == v).map(|i| i["quantity"].as_i64().unwrap());
    assert_eq!(quantity(&same), Some(32));
    for v in &others {
        assert_eq!(quantity(v), Some(1));
    }
    assert_eq!(view["subtotal"]["amount"], 100 * 40);
}

/// A line added while the cart is being checked out is either in the order or refused: never
/// accepted and then missing (checkout reads the lines only once it holds the cart's lock, and
/// a line write that finds the cart converted writes nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_line_added_during_checkout_is_in_the_order_or_refused() {
    let app = Arc::new(TestApp::spawn().await);
    let shop = shop(&app).await;
    let (a, b) = (variant(&app, &shop, 100, 1000).await, variant(&app, &shop, 250, 1000).await);
    let (mut in_order, mut refused) = (0, 0);
    for _ in 0..30 {
        let c = Arc::new(cart(&app, &[(&a, 1)]).await);
        let rate = rate(&app, &c).await;
        let add = {
            let (app, c, b) = (app.clone(), c.clone(), b.clone());
            tokio::spawn(async move {
                let path = format!("/api/v1/carts/{}/items", c.id);
                c.req(&app, reqwest::Method::POST, &path)
                    .json(&serde_json::json!({"variant_id": b, "quantity": 1}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        };
        let res = checkout_with(&app, &c, &rate, &uuid::Uuid::now_v7().to_string()).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let order: Value = res.json().await.unwrap();
        let added = add.await.unwrap();
        let lines = order["order"]["items"].as_array().unwrap().len();
        match added {
            StatusCode::OK => {
                // Accepted before the cart closed: then it was a line of the cart checked out.
                assert_eq!(lines, 2, "{order}");
                assert_eq!(order["order"]["subtotal"]["amount"], 350);
                in_order += 1;
            }
            s => {
                assert!(s.is_client_error(), "{s}");
                assert_eq!(lines, 1, "{order}");
                refused += 1;
            }
        }
    }
    assert_eq!(in_order + refused, 30);
}
