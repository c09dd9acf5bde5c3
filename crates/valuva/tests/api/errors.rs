//! Bad input never costs data: every endpoint answers malformed, oversized and hostile input
//! with a 4xx problem+json, never a 5xx, and writes nothing.

use crate::support::{TestApp, assert_problem};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Every JSON-accepting endpoint, with a token that gets past authentication.
async fn json_endpoints(app: &TestApp) -> Vec<(Method, String, Option<String>)> {
    let customer = app.customer_token("victim@example.com").await;
    let admin = app.admin_token().await;
    let addr: serde_json::Value = app
        .post("/api/v1/me/addresses", Some(&customer), json!({"name": "A", "line1": "B", "city": "C", "postal_code": "D", "country": "DE"}))
        .await
        .json()
        .await
        .unwrap();
    let user_id = app.register("other@example.com").await["user"]["id"].as_str().unwrap().to_owned();
    let addr_path = format!("/api/v1/me/addresses/{}", addr["id"].as_str().unwrap());
    let p: serde_json::Value =
        app.post("/api/v1/admin/products", Some(&admin), crate::catalog::product("Target", "TGT-1", 100)).await.json().await.unwrap();
    let (pid, vid) = (p["id"].as_str().unwrap().to_owned(), p["variants"][0]["id"].as_str().unwrap().to_owned());
    let c: serde_json::Value = app.post("/api/v1/admin/categories", Some(&admin), json!({"name": "Target"})).await.json().await.unwrap();
    let cid = c["id"].as_str().unwrap().to_owned();
    let a = Some(admin.clone());
    let own: serde_json::Value = app.post("/api/v1/carts", Some(&customer), json!({})).await.json().await.unwrap();
    let cart = own["id"].as_str().unwrap().to_owned();
    let c = Some(customer.clone());
    let some_id = uuid::Uuid::now_v7();
    vec![
        (Method::POST, "/api/v1/carts".into(), c.clone()),
        (Method::PATCH, format!("/api/v1/carts/{cart}"), c.clone()),
        (Method::POST, format!("/api/v1/carts/{cart}/items"), c.clone()),
        (Method::PATCH, format!("/api/v1/carts/{cart}/items/{some_id}"), c.clone()),
        (Method::POST, "/api/v1/checkout".into(), c.clone()),
        (Method::POST, format!("/api/v1/admin/orders/{some_id}/ship"), a.clone()),
        (Method::POST, format!("/api/v1/admin/orders/{some_id}/refunds"), a.clone()),
        (Method::POST, "/api/v1/admin/shipping/zones".into(), a.clone()),
        (Method::PATCH, format!("/api/v1/admin/shipping/zones/{some_id}"), a.clone()),
        (Method::POST, "/api/v1/admin/products".into(), a.clone()),
        (Method::PATCH, format!("/api/v1/admin/products/{pid}"), a.clone()),
        (Method::POST, format!("/api/v1/admin/products/{pid}/variants"), a.clone()),
        (Method::PATCH, format!("/api/v1/admin/products/{pid}/variants/{vid}"), a.clone()),
        (Method::POST, format!("/api/v1/admin/variants/{vid}/inventory"), a.clone()),
        (Method::POST, format!("/api/v1/products/{pid}/variants/{vid}/stock-alerts"), c.clone()),
        (Method::POST, "/api/v1/admin/categories".into(), a.clone()),
        (Method::PATCH, format!("/api/v1/admin/categories/{cid}"), a),
        (Method::POST, "/api/v1/auth/register".into(), None),
        (Method::POST, "/api/v1/auth/login".into(), None),
        (Method::POST, "/api/v1/auth/refresh".into(), None),
        (Method::POST, "/api/v1/auth/logout".into(), None),
        (Method::POST, "/api/v1/auth/password/forgot".into(), None),
        (Method::POST, "/api/v1/auth/password/reset".into(), None),
        (Method::PATCH, "/api/v1/me".into(), Some(customer.clone())),
        (Method::POST, "/api/v1/me/addresses".into(), Some(customer.clone())),
        (Method::PATCH, addr_path, Some(customer)),
        (Method::PATCH, format!("/api/v1/admin/users/{user_id}"), Some(admin)),
    ]
}

/// Row counts of every table a bad request could touch.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for t in [
        "users",
        "refresh_tokens",
        "addresses",
        "audit_logs",
        "password_reset_tokens",
        "products",
        "variants",
        "categories",
        "inventory_movements",
        "idempotency_keys",
        "carts",
        "cart_items",
        "orders",
        "payments",
        "refunds",
        "shipping_zones",
        "webhook_events",
    ] {
        counts.push(app.count(t).await);
    }
    counts
}

#[tokio::test]
async fn malformed_bodies_are_4xx_problems_and_change_nothing() {
    let app = TestApp::spawn().await;
    let endpoints = json_endpoints(&app).await;
    let before = snapshot(&app).await;
    let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(1024 * 1024 + 10));
    for (method, path, token) in &endpoints {
        let send = |body: String, ct: &'static str| {
            let mut r = app.req(method.clone(), path, token.as_deref()).header("content-type", ct).body(body);
            if token.is_none() {
                r = r.header("user-agent", "fuzzer");
            }
            r.send()
        };
        let cases: Vec<(String, &'static str, StatusCode, &str)> = vec![
            ("{\"email\": ".into(), "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
            ("not json at all".into(), "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
            ("{} trailing".into(), "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
            ("{\"email\": \"a@b.io\"}".into(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ("[1, 2, 3]".into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ("{\"surprise\": true}".into(), "application/json", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            (
                "{\"email\": 42, \"password\": [], \"role\": {}, \"name\": 1, \"token\": 7, \"refresh_token\": 5, \"country\": 3}".into(),
                "application/json",
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (huge.clone(), "application/json", StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ];
        for (body, ct, status, code) in cases {
            let res = send(body.clone(), ct).await.unwrap();
            let got = res.status();
            assert!(got.is_client_error(), "{method} {path} with {:.40}: {got}", body);
            assert_eq!(got, status, "{method} {path} with {:.40}", body);
            assert_problem(res, status, code).await;
        }
        let res = send("{\"surprise\": true}".into(), "application/json").await.unwrap();
        let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "surprise", "{method} {path} names the unknown field");
        // PostgreSQL text cannot hold U+0000: refused on both backends, naming the field.
        let res = send("{\"rates\": [{\"name\": \"a\\u0000b\"}]}".into(), "application/json").await.unwrap();
        let body = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "rates[0].name", "{method} {path} names the field with a NUL");
    }
    assert_eq!(snapshot(&app).await, before, "rejected requests wrote nothing");
}

#[tokio::test]
async fn invalid_values_are_422_with_field_names() {
    let app = TestApp::spawn().await;
    let before = snapshot(&app).await;
    let cases = [
        (json!({"email": "nope", "password": "correct horse battery"}), "email"),
        (json!({"email": "a@example.com", "password": "short"}), "password"),
        (json!({"email": "a@example.com", "password": "x".repeat(200)}), "password"),
        (json!({"email": "a@example.com", "password": "correct horse battery", "name": "n".repeat(300)}), "name"),
        (json!({"password": "correct horse battery"}), "email"),
    ];
    for (body, field) in cases {
        let res = app.post("/api/v1/auth/register", None, body).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field);
    }
    let res = app.post("/api/v1/auth/password/forgot", None, json!({"email": "@@"})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app.post("/api/v1/auth/password/reset", None, json!({"token": "made-up", "password": "long enough password"})).await;
    assert_problem(res, StatusCode::BAD_REQUEST, "invalid_reset_token").await;
    let res = app.post("/api/v1/auth/refresh", None, json!({"refresh_token": "made-up"})).await;
    assert_problem(res, StatusCode::UNAUTHORIZED, "invalid_refresh_token").await;
    let res = app.post("/api/v1/auth/refresh", None, json!({})).await;
    assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn hostile_query_strings_and_paths() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let before = snapshot(&app).await;
    for (path, status, code) in [
        ("/api/v1/admin/users?limit=0", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/users?limit=101", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/users?limit=abc", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/users?role=god", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/users?unknown=1", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/users?cursor=forged", StatusCode::BAD_REQUEST, "invalid_cursor"),
        ("/api/v1/admin/users?cursor=eyJhIjoxfQ.AAAA", StatusCode::BAD_REQUEST, "invalid_cursor"),
        ("/api/v1/admin/audit-logs?action=HACK", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/audit-logs?actor=me", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/audit-logs?from=yesterday", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/audit-logs?cursor=%01%02", StatusCode::BAD_REQUEST, "invalid_cursor"),
        ("/api/v1/admin/audit-logs?cursor=%00%01", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/audit-logs?entity_type=a%00", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/jobs?kind=%00", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/uploads?limit=abc", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/uploads?unknown=1", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/uploads?cursor=%00%01", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/admin/uploads/not-a-uuid", StatusCode::NOT_FOUND, "not_found"),
        ("/api/v1/admin/uploads/%00", StatusCode::NOT_FOUND, "not_found"),
        ("/api/v1/products?q=a%00b", StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
        ("/api/v1/products/a%00b", StatusCode::NOT_FOUND, "not_found"),
        ("/api/v1/categories/%00", StatusCode::NOT_FOUND, "not_found"),
        ("/api/v1/admin/audit-logs?entity_id=%27%3B%20DROP%20TABLE%20users%3B--", StatusCode::OK, ""),
        ("/api/v1/admin/users/not-a-uuid", StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ("/api/v1/nowhere", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let res = app.get(path, Some(&admin)).await;
        if status == StatusCode::OK {
            assert_eq!(res.status(), status, "{path}");
        } else {
            assert_problem(res, status, code).await;
        }
    }
    let res = app.req(Method::PUT, "/api/v1/me", Some(&admin)).send().await.unwrap();
    assert_problem(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let res = app.patch("/api/v1/admin/users/not-a-uuid", Some(&admin), json!({"role": "staff"})).await;
    assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/live")).header("x-request-id", "trace-abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc-123");
    let res = app.client.get(app.url("/nowhere")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(generated, "bad id with spaces");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["request_id"], generated);
}

#[tokio::test]
async fn probes_and_docs() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/live", None).await.status(), StatusCode::OK);
    let ready: serde_json::Value = app.get("/ready", None).await.json().await.unwrap();
    assert_eq!(ready["status"], "healthy");
    let health: serde_json::Value = app.get("/health", None).await.json().await.unwrap();
    assert_eq!(health["database"]["status"], "healthy");
    assert_eq!(health["migrations"]["status"], "healthy");
    // The seed system's shape too.
    assert_eq!(health["checks"]["database"], "healthy");
    assert_eq!(health["checks"]["migrations"], "healthy");
    assert_eq!(health["checks"]["redis"].as_str(), app.config.redis_url.as_ref().map(|_| "healthy"));
    assert_eq!(health["checks"]["memory"]["status"], "healthy");
    assert!(health["checks"]["memory"]["rss"].as_f64().unwrap() > 1.0, "{health}");
    assert_eq!(health["environment"], "production");
    assert!(health["uptime"].is_u64());
    if app.state.db.backend() == platform::config::Backend::Sqlite {
        // One writer connection; reads that need no transaction use read-only connections.
        assert_eq!(health["pools"]["primary"]["connections"]["max"], 1, "{health}");
        assert!(health["pools"]["readers"]["connections"]["max"].as_u64().unwrap() >= 1, "{health}");
        let before = app.statements();
        assert_eq!(app.get("/api/v1/products?limit=5", None).await.status(), StatusCode::OK);
        let after = app.statements();
        assert!(after.1 > before.1, "a storefront listing reads from the readers: {before:?} → {after:?}");
    } else {
        assert!(health["pools"].get("readers").is_none(), "{health}");
    }
    let docs = app.get("/docs/", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let spec: serde_json::Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for p in [
        "/live",
        "/ready",
        "/health",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/password/forgot",
        "/api/v1/auth/password/reset",
        "/api/v1/me",
        "/api/v1/me/addresses",
        "/api/v1/me/addresses/{id}",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/audit-logs",
        "/metrics",
        "/api/v1/categories",
        "/api/v1/categories/{id_or_slug}",
        "/api/v1/products",
        "/api/v1/products/{id_or_slug}",
        "/api/v1/admin/products",
        "/api/v1/admin/products/{id}",
        "/api/v1/admin/products/{id}/variants",
        "/api/v1/admin/products/{id}/variants/{variant_id}",
        "/api/v1/admin/variants/{id}/inventory",
        "/api/v1/admin/variants/{id}/inventory/movements",
        "/api/v1/admin/categories",
        "/api/v1/admin/categories/{id}",
        "/api/v1/carts",
        "/api/v1/carts/{id}",
        "/api/v1/carts/{id}/items",
        "/api/v1/carts/{id}/items/{item_id}",
        "/api/v1/carts/{id}/shipping-rates",
        "/api/v1/checkout",
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/orders/{id}/cancel",
        "/api/v1/admin/orders",
        "/api/v1/admin/orders/{id}",
        "/api/v1/admin/orders/{id}/mark-paid",
        "/api/v1/admin/orders/{id}/fulfill",
        "/api/v1/admin/orders/{id}/ship",
        "/api/v1/admin/orders/{id}/deliver",
        "/api/v1/admin/orders/{id}/cancel",
        "/api/v1/admin/orders/{id}/refunds",
        "/api/v1/admin/shipping/zones",
        "/api/v1/admin/shipping/zones/{id}",
        "/api/v1/admin/uploads",
        "/api/v1/admin/uploads/{id}",
        "/api/v1/webhooks/stripe",
        "/api/v1/webhooks/shopify",
    ] {
        assert!(paths.contains_key(p), "spec documents {p}");
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
    // Each parameter is where the route takes it: path parameters are the template's, the
    // rest are query parameters.
    let mut query_params = 0;
    for (template, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let mut in_path: Vec<&str> = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                match p["in"].as_str().unwrap() {
                    "path" => in_path.push(name),
                    "query" => query_params += 1,
                    "header" => {}
                    other => panic!("{method} {template}: parameter {name} in {other}"),
                }
            }
            let placeholders: Vec<&str> = template.split('{').skip(1).filter_map(|s| s.split_once('}')).map(|(n, _)| n).collect();
            in_path.sort_unstable();
            let mut expected = placeholders.clone();
            expected.sort_unstable();
            assert_eq!(in_path, expected, "{method} {template}: path parameters");
        }
    }
    assert!(query_params >= 30, "list endpoints document their query parameters ({query_params})");
}
