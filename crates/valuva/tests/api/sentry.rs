//! Error reporting against a local server speaking Sentry's envelope protocol: a 5xx in the real
//! binary is reported with its request context and without secrets.

use crate::support::{Binary, PASSWORD, TestApp};
use axum::{Router, body::Bytes, extract::State, routing::post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

type Received = Arc<Mutex<Vec<String>>>;

/// Accepts `POST /api/{project}/envelope/` like Sentry does and keeps the bodies.
async fn fake_sentry() -> (String, Received) {
    let received: Received = Arc::default();
    async fn envelope(State(r): State<Received>, body: Bytes) -> StatusCode {
        r.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
        StatusCode::OK
    }
    let app = Router::new().route("/api/{project}/envelope/", post(envelope)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://public@{addr}/1"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_reported_with_context_and_without_secrets() {
    let (dsn, received) = fake_sentry().await;
    let app = TestApp::spawn().await;
    let server = Binary::start(&app, &[("SENTRY_DSN", &dsn)]);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let session: Value = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "s@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    // Break the database under the server: the next address query fails inside the server.
    app.exec("DROP TABLE addresses").await;
    let res =
        client.get(format!("{base}/api/v1/me/addresses")).bearer_auth(&token).header("x-request-id", "sentry-req-1").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let deadline = Instant::now() + Duration::from_secs(15);
    let envelope = loop {
        if let Some(e) = received.lock().unwrap().iter().find(|e| e.contains("internal error")).cloned() {
            break e;
        }
        assert!(Instant::now() < deadline, "no event reached the fake Sentry");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(server);
    assert!(envelope.contains("sentry-req-1"), "request context (request id) in the event: {envelope}");
    assert!(envelope.contains("/api/v1/me/addresses"), "route in the event");
    assert!(!envelope.contains(&token), "no bearer token");
    assert!(!envelope.contains(PASSWORD), "no password");
}
