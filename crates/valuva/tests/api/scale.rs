//! Scale-out: the two-tier cache (hits, invalidation, single flight), rate limits, and two
//! instances sharing one database and one (private, stoppable) Redis.

use crate::{
    catalog::product,
    orders_support::{cart as new_cart, checkout_with, shop, variant},
    support::{RedisServer, TestApp, assert_problem},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_product(app: &TestApp, token: &str, title: &str, price: i64) -> Value {
    let sku = format!("S-{}", uuid::Uuid::now_v7().simple());
    let res = app.post("/api/v1/admin/products", Some(token), product(title, &sku, price)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

/// A storefront GET as the client at `ip` (through the trusted local proxy).
async fn get_as(app: &TestApp, ip: &str, path: &str) -> reqwest::Response {
    app.req(Method::GET, path, None).header("x-forwarded-for", ip).send().await.unwrap()
}

/// A client address no other request used (limits are per client).
fn fresh_ip() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

async fn price_on(app: &TestApp, slug: &str) -> i64 {
    let res = get_as(app, &fresh_ip(), &format!("/api/v1/products/{slug}")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let p: Value = res.json().await.unwrap();
    p["variants"][0]["price"]["amount"].as_i64().unwrap()
}

async fn set_price(app: &TestApp, token: &str, p: &Value, amount: i64) {
    let path = format!("/api/v1/admin/products/{}/variants/{}", p["id"].as_str().unwrap(), p["variants"][0]["id"].as_str().unwrap());
    let res = app.patch(&path, Some(token), json!({"price": {"amount": amount, "currency": "EUR"}})).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
}

fn trusting_localhost(c: &mut platform::Config) {
    c.trusted_proxies = "127.0.0.1".into();
}

/// For tests that count statements: no background worker polling the database.
fn quiet(c: &mut platform::Config) {
    trusting_localhost(c);
    c.worker_enabled = false;
}

#[tokio::test]
async fn cached_reads_cost_no_queries_and_every_write_is_seen() {
    let app = TestApp::spawn_with(quiet).await;
    let staff = app.admin_token().await;
    let p = create_product(&app, &staff, "Cached Tee", 1500).await;
    let slug = p["slug"].as_str().unwrap().to_owned();
    let listing = "/api/v1/products?limit=5";

    assert_eq!(price_on(&app, &slug).await, 1500);
    let first: Value = app.get(listing, None).await.json().await.unwrap();
    assert_eq!(first["data"][0]["variants"][0]["price"]["amount"], 1500);
    let before = app.statements();
    for _ in 0..5 {
        assert_eq!(price_on(&app, &slug).await, 1500);
        assert_eq!(app.get(listing, None).await.json::<Value>().await.unwrap(), first);
        assert_eq!(app.get(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()), None).await.status(), StatusCode::OK);
    }
    let id_fill = app.statements().0 - before.0;
    let again = app.statements();
    for _ in 0..5 {
        app.get(&format!("/api/v1/products/{}", p["id"].as_str().unwrap()), None).await;
        price_on(&app, &slug).await;
        app.get(listing, None).await;
    }
    assert_eq!(app.statements(), again, "cached reads run no statement");
    assert!(id_fill <= 3, "reading by id after by slug reuses the product entry ({id_fill} statements)");

    // A price change is visible at once, on the page and in the listing.
    set_price(&app, &staff, &p, 1700).await;
    assert_eq!(price_on(&app, &slug).await, 1700);
    let listed: Value = app.get(listing, None).await.json().await.unwrap();
    assert_eq!(listed["data"][0]["variants"][0]["price"]["amount"], 1700);

    // Stock that changes what the storefront shows (in stock -> out of stock) too.
    let variant = p["variants"][0]["id"].as_str().unwrap();
    let res =
        app.post(&format!("/api/v1/admin/variants/{variant}/inventory"), Some(&staff), json!({"delta": -10, "reason": "count"})).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let page: Value = get_as(&app, "192.0.2.1", &format!("/api/v1/products/{slug}")).await.json().await.unwrap();
    assert_eq!(page["variants"][0]["availability"], "out_of_stock");

    // Unpublishing removes it from the page and the listing; a new category shows in the tree.
    let res =
        app.patch(&format!("/api/v1/admin/products/{}", p["id"].as_str().unwrap()), Some(&staff), json!({"status": "archived"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(get_as(&app, "192.0.2.1", &format!("/api/v1/products/{slug}")).await.status(), StatusCode::NOT_FOUND);
    let listed: Value = app.get(listing, None).await.json().await.unwrap();
    assert!(listed["data"].as_array().unwrap().iter().all(|x| x["slug"] != slug.as_str()));
    let tree: Value = app.get("/api/v1/categories", None).await.json().await.unwrap();
    assert_eq!(tree["data"].as_array().unwrap().len(), 0);
    app.post("/api/v1/admin/categories", Some(&staff), json!({"name": "Fresh"})).await;
    let tree: Value = app.get("/api/v1/categories", None).await.json().await.unwrap();
    assert_eq!(tree["data"][0]["slug"], "fresh");

    // Counted per cache.
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("valuva_cache_requests_total{cache=\"product\",result=\"hit_local\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_misses_for_one_product_makes_one_load() {
    let app = TestApp::spawn_with(quiet).await;
    let staff = app.admin_token().await;
    let warm = create_product(&app, &staff, "Baseline", 900).await;
    let cold = create_product(&app, &staff, "Burst", 900).await;

    let before = app.statements();
    assert_eq!(app.get(&format!("/api/v1/products/{}", warm["slug"].as_str().unwrap()), None).await.status(), StatusCode::OK);
    let one_load = app.statements().0 - before.0;
    assert!(one_load > 0);

    let before = app.statements();
    let path = format!("/api/v1/products/{}", cold["slug"].as_str().unwrap());
    let burst: Vec<_> = (0..100)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url(&path));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for r in burst {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(app.statements().0 - before.0, one_load, "100 concurrent cold requests cost what one does");
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers_and_spare_probes() {
    let app = TestApp::spawn_with(|c| {
        trusting_localhost(c);
        c.rate_limit_max_requests = 3;
        c.rate_limit_window_ms = 60_000;
        c.rate_limit_auth_max_requests = 2;
    })
    .await;
    for i in 0..3 {
        let res = get_as(&app, "198.51.100.1", "/api/v1/categories").await;
        assert_eq!(res.status(), StatusCode::OK, "request {i}");
        assert_eq!(res.headers()["ratelimit-policy"], "\"default\";q=3;w=60");
        assert_eq!(res.headers()["ratelimit"].to_str().unwrap().split(';').nth(1).unwrap(), format!("r={}", 2 - i));
    }
    let res = get_as(&app, "198.51.100.1", "/api/v1/categories").await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "retry after {retry}s (one request per 20 s)");
    assert!(res.headers().contains_key("ratelimit"));
    assert_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another client is not affected; probes and metrics are never limited.
    assert_eq!(get_as(&app, "198.51.100.2", "/api/v1/categories").await.status(), StatusCode::OK);
    for path in ["/live", "/ready", "/health", "/metrics"] {
        for _ in 0..5 {
            assert_eq!(get_as(&app, "198.51.100.1", path).await.status(), StatusCode::OK, "{path}");
        }
    }
    // X-Forwarded-For from an untrusted peer is ignored: the other app sees only 127.0.0.1.

    // Login has its own, stricter limit per address.
    let login = json!({"email": "nobody@example.com", "password": "wrong password here"});
    for _ in 0..2 {
        let res =
            app.req(Method::POST, "/api/v1/auth/login", None).header("x-forwarded-for", "198.51.100.3").json(&login).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res =
        app.req(Method::POST, "/api/v1/auth/login", None).header("x-forwarded-for", "198.51.100.3").json(&login).send().await.unwrap();
    assert_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// `RATE_LIMIT_RULES` gives chosen endpoints a policy of their own instead of the default.
#[tokio::test]
async fn per_endpoint_rules_replace_the_default_limit() {
    let app = TestApp::spawn_with(|c| {
        trusting_localhost(c);
        c.rate_limit_rules = "carts=POST /api/v1/carts 2/1m, lines=/api/v1/carts/{id}/items 1/1m, everything=/api/* 1000/1m".into();
        c.rate_limit_auth_max_requests = 1;
    })
    .await;
    // No rule lifts the auth routes' own limit.
    let login = json!({"email": "nobody@example.com", "password": "wrong password here"});
    let try_login = || app.req(Method::POST, "/api/v1/auth/login", None).header("x-forwarded-for", "198.51.100.9").json(&login).send();
    let first = try_login().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(first.headers()["ratelimit-policy"], "\"auth\";q=1;w=60");
    assert_problem(try_login().await.unwrap(), StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let post_as = |ip: &str, path: &str| app.req(Method::POST, path, None).header("x-forwarded-for", ip).json(&json!({})).send();
    let mut cart = Value::Null;
    for _ in 0..2 {
        let res = post_as("198.51.100.7", "/api/v1/carts").await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert_eq!(res.headers()["ratelimit-policy"], "\"carts\";q=2;w=60");
        cart = res.json().await.unwrap();
    }
    assert_problem(post_as("198.51.100.7", "/api/v1/carts").await.unwrap(), StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(post_as("198.51.100.8", "/api/v1/carts").await.unwrap().status(), StatusCode::CREATED, "another client");
    // Other methods and paths fall through to the next rule that matches.
    let path = format!("/api/v1/carts/{}", cart["id"].as_str().unwrap());
    let res =
        app.req(Method::GET, &path, None).header("x-forwarded-for", "198.51.100.7").header("x-cart-token", cart["token"].as_str().unwrap());
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["ratelimit-policy"].to_str().unwrap().starts_with("\"everything\""));
    // A `{…}` segment matches any cart: the second line write is over the rule's limit of one.
    let items = format!("{path}/items");
    let line = |ip: &str| {
        app.req(Method::POST, &items, None)
            .header("x-forwarded-for", ip)
            .header("x-cart-token", cart["token"].as_str().unwrap())
            .json(&json!({"variant_id": uuid::Uuid::now_v7(), "quantity": 1}))
            .send()
    };
    let first = line("198.51.100.7").await.unwrap();
    assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.headers()["ratelimit-policy"], "\"lines\";q=1;w=60");
    assert_problem(line("198.51.100.7").await.unwrap(), StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers() {
    let app = TestApp::spawn_with(|c| c.rate_limit_max_requests = 2).await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(get_as(&app, ip, "/api/v1/categories").await.status(), StatusCode::OK);
    }
    // Both counted against 127.0.0.1: a client cannot escape its limit by inventing hops.
    assert_eq!(get_as(&app, "203.0.113.3", "/api/v1/categories").await.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Sends `n` GETs as `ip`, alternating between the instances; returns how many were 429.
async fn spread(a: &TestApp, b: &TestApp, ip: &str, n: usize) -> usize {
    let mut rejected = 0;
    for i in 0..n {
        let app = if i % 2 == 0 { a } else { b };
        match get_as(app, ip, "/api/v1/categories").await.status() {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => rejected += 1,
            s => panic!("unexpected {s}"),
        }
    }
    rejected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_cache_invalidation_and_limits_and_survive_redis_loss() {
    let mut redis = RedisServer::start();
    const LIMIT: usize = 6;
    let a = TestApp::spawn_with(|c| {
        trusting_localhost(c);
        c.redis_url = Some(platform::Secret::new(redis.url()));
        c.rate_limit_max_requests = LIMIT as u32;
        c.rate_limit_window_ms = 600_000;
        // Long enough that only invalidation, never expiry, can explain a fresh read.
        c.cache_local_ttl_ms = 600_000;
    })
    .await;
    let b = a.sibling().await;
    let staff = a.admin_token().await;
    let p = create_product(&a, &staff, "Shared Hoodie", 5000).await;
    let slug = p["slug"].as_str().unwrap().to_owned();

    // A price change through A is what B serves on the very next request.
    for (i, price) in [5100, 5200, 5300].into_iter().enumerate() {
        let ip = format!("192.0.2.{}", 10 + i);
        let res = get_as(&b, &ip, &format!("/api/v1/products/{slug}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        set_price(&a, &staff, &p, price).await;
        let page: Value = get_as(&b, &ip, &format!("/api/v1/products/{slug}")).await.json().await.unwrap();
        assert_eq!(page["variants"][0]["price"]["amount"], price, "B is not stale");
    }

    // One limit across both instances: LIMIT + 3 requests, 3 rejected.
    assert_eq!(spread(&a, &b, "198.51.100.20", LIMIT + 3).await, 3);

    // Redis gone: both keep answering (tier 1, database, in-process limits).
    redis.stop();
    for i in 0..10 {
        let ip = format!("198.51.100.{}", 100 + i);
        for app in [&a, &b] {
            let res = get_as(app, &ip, &format!("/api/v1/products/{slug}")).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(get_as(app, &ip, "/api/v1/products?limit=3").await.status(), StatusCode::OK);
        }
    }
    set_price(&a, &staff, &p, 5400).await;
    assert_eq!(price_on(&a, &slug).await, 5400, "the writer sees its change without Redis");
    let health: Value = a.get("/health", None).await.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["redis"]["status"], "unhealthy");

    // Redis back: limits are shared again (in-process fallback would allow 2 × LIMIT).
    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut round = 0;
    loop {
        round += 1;
        let ip = format!("198.51.100.{}", 200 + round);
        if spread(&a, &b, &ip, LIMIT + 2).await == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "shared limits never came back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // And B, which missed the price change while Redis was away, serves it now.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while price_on(&b, &slug).await != 5400 {
        assert!(std::time::Instant::now() < deadline, "B never caught up after Redis returned");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let health: Value = b.get("/health", None).await.json().await.unwrap();
    assert_eq!(health["redis"]["status"], "healthy");
}

/// Shipping zones and rates are quoted from the cache (no statement for them), and a change
/// made through one instance is what the other quotes and accepts at checkout right after.
#[tokio::test]
async fn shipping_rate_changes_reach_every_instance_at_once() {
    let redis = RedisServer::start();
    let a = TestApp::spawn_with(|c| {
        quiet(c);
        c.redis_url = Some(platform::Secret::new(redis.url()));
        // Long enough that only invalidation, never expiry, can explain a fresh quote.
        c.cache_local_ttl_ms = 600_000;
    })
    .await;
    let b = a.sibling().await;
    let shop = shop(&a).await;
    let v = variant(&a, &shop, 1000, 10).await;
    let cart = new_cart(&b, &[(&v, 1)]).await;
    let quotes = |app: &TestApp| {
        let req = cart.req(app, Method::GET, &format!("/api/v1/carts/{}/shipping-rates", cart.id));
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()["data"].as_array().unwrap().clone()
        }
    };
    let first = quotes(&b).await;
    assert_eq!(first[0]["price"]["amount"], 500);
    // Cached now: the cart and its lines are read, the zones and rates are not.
    let before = b.statements();
    quotes(&b).await;
    let after = b.statements();
    assert_eq!((after.0 - before.0) + (after.1 - before.1), 2, "a quote from the cached table reads only the cart and its lines");

    let zones: Value = a.get("/api/v1/admin/shipping/zones", Some(&shop.staff)).await.json().await.unwrap();
    let zone = zones["data"][0]["id"].as_str().unwrap().to_owned();
    let rates = json!({"rates": [{"name": "Courier", "price": {"amount": 900, "currency": "EUR"}}]});
    let res = a.patch(&format!("/api/v1/admin/shipping/zones/{zone}"), Some(&shop.staff), rates).await;
    assert_eq!(res.status(), StatusCode::OK);
    let now = quotes(&b).await;
    assert_eq!((now.len(), now[0]["name"].as_str(), now[0]["price"]["amount"].as_i64()), (1, Some("Courier"), Some(900)), "B is not stale");

    // The replaced rate is refused at checkout on B; the new one is accepted.
    let old = first[0]["id"].as_str().unwrap();
    let res = checkout_with(&b, &cart, old, "old-rate").await;
    let p = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "shipping_rate_id");
    let res = checkout_with(&b, &cart, now[0]["id"].as_str().unwrap(), "new-rate").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["order"]["shipping_total"]["amount"], 900);

    // Deleted through A: B offers nothing.
    assert_eq!(a.delete(&format!("/api/v1/admin/shipping/zones/{zone}"), Some(&shop.staff)).await.status(), StatusCode::NO_CONTENT);
    let other = new_cart(&b, &[(&v, 1)]).await;
    let res = other.req(&b, Method::GET, &format!("/api/v1/carts/{}/shipping-rates", other.id)).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["data"], json!([]));
}

/// A rollout starts several instances at once on a database none has migrated yet: they take
/// turns (PostgreSQL's advisory lock), so both start, and the demo catalog is seeded once.
/// Only PostgreSQL serves several instances; SQLite's file is one instance's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_and_seed_once() {
    if crate::support::pg_base().is_none() {
        return;
    }
    let (a, b) = TestApp::spawn_pair_on_fresh_database(|c| c.seed_on_startup = Some(true)).await;
    let (alone, _) = TestApp::spawn_pair_on_fresh_database(|c| c.seed_on_startup = Some(false)).await;
    alone.state.shipping.seed_demo(&services::RequestMeta::system()).await.unwrap();
    let one_seed = services::seed::demo(&alone.state.db, &alone.state.catalog).await.unwrap() as i64;
    assert!(one_seed > 0);
    assert_eq!(a.count("products").await, one_seed);
    assert_eq!(a.count("shipping_zones").await, 1);
    for app in [&a, &b] {
        let res = app.get("/api/v1/products?limit=1", None).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

/// Product pages show their categories: renaming one, or deleting it, is seen on the cached
/// page of every product in it at once.
#[tokio::test]
async fn category_changes_reach_cached_product_pages() {
    let app = TestApp::spawn_with(trusting_localhost).await;
    let token = app.admin_token().await;
    let c: Value = app.post("/api/v1/admin/categories", Some(&token), json!({"name": "Summer"})).await.json().await.unwrap();
    let cid = c["id"].as_str().unwrap();
    let mut body = product("Sandal", &format!("S-{}", uuid::Uuid::now_v7().simple()), 900);
    body["category_ids"] = json!([cid]);
    let p: Value = app.post("/api/v1/admin/products", Some(&token), body).await.json().await.unwrap();
    let path = format!("/api/v1/products/{}", p["slug"].as_str().unwrap());
    let page = || async { app.get(&path, None).await.json::<Value>().await.unwrap()["categories"].clone() };
    assert_eq!(page().await[0]["name"], "Summer");
    assert_eq!(page().await[0]["name"], "Summer", "served from the cache now");
    let res = app.patch(&format!("/api/v1/admin/categories/{cid}"), Some(&token), json!({"name": "Sale", "slug": "sale"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let shown = page().await;
    assert_eq!((shown[0]["name"].as_str(), shown[0]["slug"].as_str()), (Some("Sale"), Some("sale")));
    let res = app.delete(&format!("/api/v1/admin/categories/{cid}?products=detach"), Some(&token)).await;
    assert!(res.status().is_success());
    assert_eq!(page().await, json!([]));
}

/// Redis refuses writes for a moment while every connection stays up (out of memory here; a
/// stall or failover does the same): a price change made then reaches Redis, and the other
/// instance, once Redis takes writes again, not a whole TTL later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_that_missed_redis_is_sent_again() {
    let redis = RedisServer::start();
    let a = TestApp::spawn_with(|c| {
        trusting_localhost(c);
        c.redis_url = Some(platform::Secret::new(redis.url()));
        // Tier 1 expires fast: what B serves after that comes from Redis.
        c.cache_local_ttl_ms = 100;
    })
    .await;
    let b = a.sibling().await;
    let staff = a.admin_token().await;
    let p = create_product(&a, &staff, "Paused Hoodie", 5000).await;
    let slug = p["slug"].as_str().unwrap().to_owned();
    assert_eq!(price_on(&b, &slug).await, 5000);
    let config = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli").args(["-p", &redis.port.to_string(), "config", "set"]).args(args).output();
        assert!(out.expect("redis-cli runs").status.success());
    };
    config(&["maxmemory-policy", "noeviction"]);
    config(&["maxmemory", "1"]);
    set_price(&a, &staff, &p, 6100).await;
    // B's tier-1 copy expires; Redis still has the old page.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(price_on(&b, &slug).await, 5000, "the invalidation did not reach Redis");
    config(&["maxmemory", "0"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while price_on(&b, &slug).await != 6100 {
        assert!(std::time::Instant::now() < deadline, "B still serves the old price from Redis");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
