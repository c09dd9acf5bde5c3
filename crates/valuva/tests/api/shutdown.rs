//! Graceful shutdown of the real binary: requests in flight when SIGTERM arrives complete.

use crate::support::TestApp;
use reqwest::StatusCode;
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn in_flight(metrics: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix("valuva_http_requests_in_flight ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_sigterm_all_complete() {
    let app = TestApp::spawn().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_valuva"))
        .current_dir(app.dir.path())
        .env("DATABASE_URL", &app.config.database_url)
        .env("JWT_SECRET", app.config.jwt_secret.as_ref().unwrap().expose())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .env("SEED_ON_STARTUP", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The server logs its address once it listens.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).ok()?;
            (v["message"] == "serving").then(|| v["addr"].as_str().unwrap().to_owned())
        })
        .expect("server started");
    std::thread::spawn(move || lines.for_each(drop));
    let base = format!("http://{addr}");
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
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    for r in requests {
        assert_eq!(r.await.unwrap().expect("request completed"), StatusCode::CREATED);
    }
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit code {status:?}");
    // Stopped: new connections are refused.
    assert!(client.get(format!("{base}/live")).send().await.is_err());
}
