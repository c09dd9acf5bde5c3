//! Graceful shutdown of the real binary: requests in flight when SIGTERM arrives complete.

use crate::support::{Binary, TestApp};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

fn in_flight(metrics: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix("valuva_http_requests_in_flight ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_sigterm_all_complete() {
    let app = TestApp::spawn().await;
    let mut server = Binary::start(&app, &[]);
    let base = server.base.clone();
    let client = reqwest::Client::new();

    const N: usize = 16;
    let requests: Vec<_> = (0..N)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{base}/api/v1/auth/register"));
            tokio::spawn(async move {
                let body = serde_json::json!({"email": format!("drain{i}@example.com"), "password": "correct horse battery"});
                client.post(url).json(&body).send().await.map(|r| r.status())
            })
        })
        .collect();
    // Wait (by polling, not sleeping blindly) until every request is being served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if in_flight(&metrics) >= (N + 1) as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "requests never were all in flight");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waiting = tokio::task::spawn_blocking(move || server.terminate());
    for r in requests {
        assert_eq!(r.await.unwrap().expect("request completed"), StatusCode::CREATED);
    }
    let status = waiting.await.unwrap();
    assert!(status.success(), "exit code {status:?}");
    // Stopped: new connections are refused.
    assert!(client.get(format!("{base}/live")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let app = TestApp::spawn().await;
    let server = Binary::start(&app, &[("LOG_LEVEL", "trace")]);
    let client = reqwest::Client::new();
    let password = "my very secret password";
    let reg: serde_json::Value = client
        .post(format!("{}/api/v1/auth/register", server.base))
        .json(&serde_json::json!({"email": "logs@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .header("cookie", "session=cookie-secret-value")
        .json(&serde_json::json!({"email": "logs@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap();
    client.get(format!("{}/api/v1/me", server.base)).bearer_auth(access).send().await.unwrap();
    client
        .post(format!("{}/api/v1/auth/refresh", server.base))
        .json(&serde_json::json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await
        .unwrap();
    client
        .post(format!("{}/api/v1/auth/password/forgot", server.base))
        .json(&serde_json::json!({"email": "logs@example.com"}))
        .send()
        .await
        .unwrap();
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("\"message\":\"request\""), "requests were logged");
    for secret in [
        password,
        access,
        reg["refresh_token"].as_str().unwrap(),
        login["refresh_token"].as_str().unwrap(),
        "cookie-secret-value",
        app.config.jwt_secret.as_ref().unwrap().expose(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
}
