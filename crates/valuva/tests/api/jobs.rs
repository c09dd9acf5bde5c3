//! Background jobs end to end: the outbox turns events into jobs, email goes out over real
//! SMTP (a local aiosmtpd), retries survive a mail server outage, poison jobs end dead, and
//! workers that die or lose their lease neither lose a job nor complete it twice.

use crate::{
    mail::SmtpServer,
    orders_support::{cart, checkout, shop, variant},
    support::{TestApp, assert_problem},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use services::jobs::{
    NewJob, enqueue, enqueue_many,
    worker::{Handler, JobError, Registry, Worker, WorkerSettings},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// An app whose in-process worker polls fast and retries quickly, mailing through `smtp`.
async fn app_with_smtp(smtp: &str) -> TestApp {
    app_with_smtp_retrying(smtp, 50).await
}

async fn app_with_smtp_retrying(smtp: &str, retry_base_ms: u64) -> TestApp {
    let url = smtp.to_owned();
    TestApp::spawn_with(move |c| {
        c.smtp_url = Some(platform::Secret::new(url));
        c.job_poll_ms = 20;
        c.job_retry_base_ms = retry_base_ms;
        c.retry_max_attempts = 1;
        c.outbound_timeout_ms = 2_000;
        c.breaker_email_open_seconds = 1;
    })
    .await
}

async fn jobs(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let res = app.get(&format!("/api/v1/admin/jobs?{query}"), Some(token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["data"].as_array().unwrap().clone()
}

/// The contract's path for back-in-stock alerts on variant `v`: under its product.
async fn alert_path(app: &TestApp, v: &str) -> String {
    use sea_orm::EntityTrait;
    let variant = store::entities::variants::Entity::find_by_id(v.parse::<uuid::Uuid>().unwrap());
    let variant = variant.one(app.state.db.primary()).await.unwrap().expect("variant exists");
    format!("/api/v1/products/{}/variants/{v}/stock-alerts", variant.product_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_sends_an_order_confirmation_over_smtp() {
    let smtp = SmtpServer::start();
    let app = app_with_smtp(&smtp.url()).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 1250, 5).await;
    let c = cart(&app, &[(&v, 2)]).await;
    let order: Value = checkout(&app, &c).await.json().await.unwrap();
    let number = order["order"]["number"].as_i64().unwrap();
    let mail = smtp.wait_for(&[&format!("Subject: Order #{number} confirmed"), "To: ann@example.com"]).await;
    assert!(mail.contains("multipart/alternative") && mail.contains("text/plain") && mail.contains("text/html"));
    assert!(mail.contains("2 x Item"), "lines are listed: {mail}");
    // The outcome is written after the mail went out (at least once: never before it).
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let done = jobs(&app, &shop.staff, "kind=email.order_confirmation&status=succeeded").await;
        if !done.is_empty() || Instant::now() >= deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(done.len(), 1);

    // Paid, packed, shipped: the shipping notice carries the tracking number.
    let id = order["order"]["id"].as_str().unwrap();
    for (step, body) in
        [("mark-paid", json!({})), ("fulfill", json!({})), ("ship", json!({"carrier": "DHL", "tracking_number": "JJD0099"}))]
    {
        let res = app.post(&format!("/api/v1/admin/orders/{id}/{step}"), Some(&shop.staff), body).await;
        assert_eq!(res.status(), StatusCode::OK, "{step}: {}", res.text().await.unwrap());
    }
    smtp.wait_for(&[&format!("Subject: Order #{number} has shipped"), "Tracking number: JJD0099"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_in_stock_subscribers_are_emailed_once_after_a_restock() {
    let smtp = SmtpServer::start();
    let app = app_with_smtp(&smtp.url()).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 900, 6).await;
    let alert_path = alert_path(&app, &v).await;
    let alert = |body: Value| app.post(&alert_path, None, body);
    // In stock: buy it instead.
    assert_problem(alert(json!({"email": "early@example.com"})).await, StatusCode::CONFLICT, "in_stock").await;
    // Sell every unit (6 -> 0 crosses LOW_STOCK_THRESHOLD = 5), then subscribe (twice: still one
    // subscription).
    let c = cart(&app, &[(&v, 6)]).await;
    assert_eq!(checkout(&app, &c).await.status(), StatusCode::CREATED);
    for _ in 0..2 {
        let res = alert(json!({"email": "waiting@example.com"})).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    // Staff heard that stock ran low.
    smtp.wait_for(&["Subject: Low stock: V-"]).await;
    // One job for the event, then one per staff account.
    let staff = app.count("users WHERE role IN ('staff', 'admin')").await;
    assert!(staff >= 1);
    assert_eq!(app.count("jobs WHERE kind = 'email.low_stock'").await, 1 + staff);

    let inventory = format!("/api/v1/admin/variants/{v}/inventory");
    let restock = |delta: i64| app.post(&inventory, Some(&shop.staff), json!({"delta": delta, "reason": "restock"}));
    assert_eq!(restock(3).await.status(), StatusCode::OK);
    smtp.wait_for(&["To: waiting@example.com", "is back in stock"]).await;
    // Sold out and restocked again: the subscription was closed, no second email.
    assert_eq!(restock(-3).await.status(), StatusCode::OK);
    assert_eq!(restock(2).await.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let n = smtp.messages().iter().filter(|m| m.contains("To: waiting@example.com")).count();
        assert_eq!(n, 1, "emailed once");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_job_retries_through_an_smtp_outage() {
    let mut smtp = SmtpServer::start();
    smtp.stop();
    // Retries 0.2-0.4 s, 0.4-0.8 s, …: the server is back before the attempts run out.
    let app = app_with_smtp_retrying(&smtp.url(), 400).await;
    let staff = app.admin_token().await;
    app.register("patient@example.com").await;
    let res = app.post("/api/v1/auth/password/forgot", None, json!({"email": "patient@example.com"})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // Failing while the server is away...
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = jobs(&app, &staff, "kind=email.password_reset").await;
        if list[0]["attempts"].as_i64().unwrap() >= 2 {
            assert!(list[0]["last_error"].as_str().unwrap().contains("email"), "{list:?}");
            assert_eq!(list[0]["payload"]["token"], "[redacted]", "staff never see the token");
            break;
        }
        assert!(Instant::now() < deadline, "the job never retried: {list:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // ...and delivered once it is back.
    smtp.restart();
    smtp.wait_for(&["To: patient@example.com", "Your reset token: "]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while jobs(&app, &staff, "kind=email.password_reset&status=succeeded").await.is_empty() {
        assert!(Instant::now() < deadline, "the job never succeeded");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_ends_in_the_dead_letter_list() {
    // Nothing listens on this port: every attempt fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = app_with_smtp(&format!("smtp://127.0.0.1:{port}")).await;
    let staff = app.admin_token().await;
    app.register("unlucky@example.com").await;
    app.post("/api/v1/auth/password/forgot", None, json!({"email": "unlucky@example.com"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = jobs(&app, &staff, "status=dead").await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "never dead: {:?}", jobs(&app, &staff, "").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead[0]["kind"], "email.password_reset");
    assert_eq!(dead[0]["attempts"], dead[0]["max_attempts"]);
    let id = dead[0]["id"].as_str().unwrap();
    // Staff can give it another go; a job that is not dead cannot be retried.
    let retried: Value = app.post(&format!("/api/v1/admin/jobs/{id}/retry"), Some(&staff), json!({})).await.json().await.unwrap();
    assert_eq!(retried["attempts"], 0);
    assert_ne!(retried["status"], "dead");
    let audited = app.count(&format!("audit_logs WHERE action = 'ADMIN_ACTION' AND entity_type = 'job' AND entity_id = '{id}'")).await;
    assert_eq!(audited, 1, "a retry is an audited admin action");
}

#[tokio::test]
async fn jobs_admin_input_is_checked() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let staff = app.admin_token().await;
    let customer = app.customer_token("nosy@example.com").await;
    assert_problem(app.get("/api/v1/admin/jobs?status=bogus", Some(&staff)).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    assert_problem(app.get("/api/v1/admin/jobs?cursor=forged", Some(&staff)).await, StatusCode::BAD_REQUEST, "invalid_cursor").await;
    assert_eq!(app.get("/api/v1/admin/jobs", Some(&customer)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/admin/jobs", None).await.status(), StatusCode::UNAUTHORIZED);
    let missing = uuid::Uuid::now_v7();
    assert_problem(app.get(&format!("/api/v1/admin/jobs/{missing}"), Some(&staff)).await, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(
        app.post(&format!("/api/v1/admin/jobs/{missing}/retry"), Some(&staff), json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Only a dead job can be retried.
    enqueue(app.state.db.primary(), NewJob::new("test.count", json!({"n": 0}))).await.unwrap();
    let queued = jobs(&app, &staff, "status=queued").await;
    let res = app.post(&format!("/api/v1/admin/jobs/{}/retry", queued[0]["id"].as_str().unwrap()), Some(&staff), json!({})).await;
    assert_problem(res, StatusCode::CONFLICT, "not_dead").await;
    // Stock alerts: bad address, unknown variant, no address while signed out.
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 100, 0).await;
    let path = alert_path(&app, &v).await;
    assert_problem(app.post(&path, None, json!({"email": "not an email"})).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        .await;
    assert_problem(app.post(&path, None, json!({})).await, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_problem(
        app.post(&path, None, json!({"email": "a@example.com", "extra": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let product = path.split('/').nth(4).unwrap();
    let res =
        app.post(&format!("/api/v1/products/{product}/variants/{missing}/stock-alerts"), None, json!({"email": "a@example.com"})).await;
    assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    // A real variant under another product (or none) is not found either.
    let other = variant(&app, &shop, 100, 0).await;
    for product in [product.to_owned(), missing.to_string(), "not-a-uuid".into()] {
        let res =
            app.post(&format!("/api/v1/products/{product}/variants/{other}/stock-alerts"), None, json!({"email": "a@example.com"})).await;
        assert_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(app.count("stock_subscriptions").await, 0, "bad input changed nothing");
    // Signed in: the account's address.
    let res = app.post(&path, Some(&customer), json!({})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.json::<Value>().await.unwrap()["email"], "nosy@example.com");
}

#[tokio::test]
async fn the_outbox_turns_each_event_into_jobs_exactly_once() {
    // No worker: events wait in the outbox (as after a crash right after commit).
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let shop = shop(&app).await;
    let v = variant(&app, &shop, 500, 5).await;
    let c = cart(&app, &[(&v, 1)]).await;
    assert_eq!(checkout(&app, &c).await.status(), StatusCode::CREATED);
    assert_eq!(app.count("jobs").await, 0);
    let db = &app.state.db;
    let n = services::outbox::dispatch(db, 100).await.unwrap();
    assert!(n >= 1);
    assert_eq!(services::outbox::dispatch(db, 100).await.unwrap(), 0, "dispatched events are not seen again");
    let list = jobs(&app, &shop.staff, "kind=email.order_confirmation").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "queued");
}

/// Counts runs per job; `block` makes the first run of each job hang until released.
struct Counting {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    started: Option<tokio::sync::mpsc::UnboundedSender<()>>,
    hang: bool,
}

#[async_trait::async_trait]
impl Handler for Counting {
    async fn run(&self, payload: Value) -> Result<(), JobError> {
        *self.runs.lock().unwrap().entry(payload["n"].to_string()).or_default() += 1;
        if let Some(s) = &self.started {
            let _ = s.send(());
        }
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

fn settings(lease_ms: u64) -> WorkerSettings {
    WorkerSettings { lease: Duration::from_millis(lease_ms), batch: 8, retry_base: Duration::from_millis(10) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_its_job_to_another_that_completes_it_once() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let db = app.state.db.clone();
    enqueue(db.primary(), NewJob::new("test.count", json!({"n": 1}))).await.unwrap();
    let runs = Arc::new(Mutex::new(HashMap::new()));

    // Worker A takes the job and dies in the middle of it (its task is dropped).
    let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let a = Worker::new(
        db.clone(),
        Registry::default().with("test.count", Counting { runs: runs.clone(), started: Some(tx), hang: true }),
        settings(300),
    );
    let dying = tokio::spawn(async move { a.run_once().await });
    started.recv().await.unwrap();
    dying.abort();

    // Worker B finds it once A's lease lapses, and completes it.
    let b = Worker::new(
        db.clone(),
        Registry::default().with("test.count", Counting { runs: runs.clone(), started: None, hang: false }),
        settings(300),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.run_once().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the job was never taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runs.lock().unwrap()["1"], 2, "ran again after the crash");
    let job: Value = app.get("/api/v1/admin/jobs?kind=test.count", Some(&app.admin_token().await)).await.json().await.unwrap();
    assert_eq!(job["data"][0]["status"], "succeeded");
    assert_eq!(job["data"][0]["attempts"], 2);
    assert_eq!(job["data"][0]["locked_by"], b.id.as_str());

    // A stale worker cannot record an outcome: C claims, its lease lapses, D takes over and
    // completes; C's late completion is refused.
    enqueue(db.primary(), NewJob::new("test.count", json!({"n": 2}))).await.unwrap();
    let registry = || Registry::default().with("test.count", Counting { runs: runs.clone(), started: None, hang: false });
    let c = Worker::new(db.clone(), registry(), settings(200));
    let d = Worker::new(db.clone(), registry(), settings(200));
    let claim = c.claim().await.unwrap().pop().expect("C claims the job");
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.run_once().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "D never took over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!c.complete(&claim).await.unwrap(), "the stale claim is fenced out");
    assert!(!c.fail(&claim, &JobError::retry("late")).await.unwrap());
}

/// Staff retrying a dead job starts its attempts again, but not the fencing token: a worker
/// still holding the claim from before the retry (its lease lapsed on the last attempt, so the
/// job died) cannot record the outcome of the new run, even with the same attempt number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_from_before_a_retry_is_fenced_out() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let db = app.state.db.clone();
    enqueue(db.primary(), NewJob::new("test.count", json!({"n": 3})).max_attempts(1)).await.unwrap();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let w = Worker::new(db.clone(), Registry::default().with("test.count", Counting { runs, started: None, hang: false }), settings(100));
    let stale = w.claim().await.unwrap().pop().expect("the first claim");
    // The lease lapses on the only attempt: the next claim finds the job and declares it dead.
    let staff = app.admin_token().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(w.claim().await.unwrap().is_empty(), "a job past its last attempt is not claimed again");
        let job: Value = app.get("/api/v1/admin/jobs?kind=test.count", Some(&staff)).await.json().await.unwrap();
        if job["data"][0]["status"] == "dead" {
            break;
        }
        assert!(Instant::now() < deadline, "the lapsed job never died");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = stale.job.id;
    let retried = app.post(&format!("/api/v1/admin/jobs/{id}/retry"), Some(&staff), json!({})).await;
    assert_eq!(retried.status(), StatusCode::OK);
    let fresh = w.claim().await.unwrap().pop().expect("claimed again after the retry");
    assert_eq!((fresh.job.attempts, stale.job.attempts), (1, 1), "the same attempt number as the stale claim");
    assert!(!w.complete(&stale).await.unwrap(), "the claim from before the retry is fenced out");
    assert!(!w.fail(&stale, &JobError::retry("late")).await.unwrap());
    assert!(w.complete(&fresh).await.unwrap());
}

/// Jobs of one round that finish together are recorded together: one statement for all of
/// them, not one each.
#[tokio::test]
async fn a_round_of_jobs_is_claimed_and_completed_in_three_statements() {
    let app = TestApp::spawn_counting().await;
    // Signs in first: the audit sealer's start-up round must not land inside the count.
    let token = app.admin_token().await;
    let db = app.state.db.clone();
    let batch: Vec<NewJob> = (0..8).map(|n| NewJob::new("test.count", json!({"n": n}))).collect();
    enqueue_many(db.primary(), batch).await.unwrap();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let w = Worker::new(
        db.clone(),
        Registry::default().with("test.count", Counting { runs: runs.clone(), started: None, hang: false }),
        settings(30_000),
    );
    let before = app.statements();
    assert_eq!(w.run_once().await.unwrap(), 8);
    let after = app.statements();
    // Claim queued jobs; claim expired leases (skipped: the batch is full); complete all eight.
    let statements = (after.0 - before.0) + (after.1 - before.1);
    assert!(statements <= 3, "a round of 8 jobs took {statements} statements");
    let res = app.get("/api/v1/admin/jobs?kind=test.count&status=succeeded&limit=100", Some(&token)).await;
    assert_eq!(res.json::<Value>().await.unwrap()["data"].as_array().unwrap().len(), 8);
    assert_eq!(runs.lock().unwrap().len(), 8);
}

/// Job `n = 0` waits for the gate to open; every other job succeeds at once.
struct SlowFirst {
    gate: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl Handler for SlowFirst {
    async fn run(&self, payload: Value) -> Result<(), JobError> {
        if payload["n"] == 0 {
            let _ = self.gate.clone().wait_for(|open| *open).await;
        }
        Ok(())
    }
}

/// A running worker refills a slot as soon as its job finishes: one slow job takes one slot,
/// not the whole batch, while the rest of the queue goes through. On stop, the worker waits
/// for the slow job instead of abandoning it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_holds_one_slot_not_the_queue() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let token = app.admin_token().await;
    let db = app.state.db.clone();
    enqueue(db.primary(), NewJob::new("test.slow", json!({"n": 0}))).await.unwrap();
    enqueue_many(db.primary(), (1..=9).map(|n| NewJob::new("test.slow", json!({"n": n}))).collect()).await.unwrap();
    let (open, gate) = tokio::sync::watch::channel(false);
    let settings = WorkerSettings { batch: 2, ..settings(30_000) };
    let worker = Worker::new(db.clone(), Registry::default().with("test.slow", SlowFirst { gate }), settings);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(worker.run(services::jobs::schedule::Schedule::default(), Duration::from_millis(20), stopped));

    let succeeded = || async {
        let res = app.get("/api/v1/admin/jobs?kind=test.slow&status=succeeded&limit=100", Some(&token)).await;
        res.json::<Value>().await.unwrap()["data"].as_array().unwrap().len()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while succeeded().await < 9 {
        assert!(Instant::now() < deadline, "the queue stalled behind the slow job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!running.is_finished(), "the worker stopped while a job was still running");
    open.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("the worker stops once its job is done").unwrap();
    assert_eq!(succeeded().await, 10, "the slow job was recorded before the worker stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_run_each_job_once() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let db = app.state.db.clone();
    for n in 0..60 {
        enqueue(db.primary(), NewJob::new("test.count", json!({"n": n}))).await.unwrap();
    }
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let w = Worker::new(
                db.clone(),
                Registry::default().with("test.count", Counting { runs: runs.clone(), started: None, hang: false }),
                settings(30_000),
            );
            tokio::spawn(async move {
                let mut idle = 0;
                while idle < 5 {
                    match w.run_once().await {
                        Ok(0) => idle += 1,
                        Ok(_) => idle = 0,
                        Err(e) => panic!("worker failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 60);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
    let token = app.admin_token().await;
    let res = app.get("/api/v1/admin/jobs?kind=test.count&status=succeeded&limit=100", Some(&token)).await;
    assert_eq!(res.json::<Value>().await.unwrap()["data"].as_array().unwrap().len(), 60);
}

/// A dedupe key enqueues its job once, whether the jobs come one by one or in a batch (the
/// outbox dispatcher's way): the batch reports how many were new and the rest are untouched.
#[tokio::test]
async fn dedupe_keys_enqueue_once_alone_or_in_a_batch() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let conn = app.state.db.primary();
    let job = |key: &str| NewJob::new("test.count", json!({"key": key})).dedupe(key);
    assert_eq!(enqueue_many(conn, vec![job("a"), job("b")]).await.unwrap(), 2);
    assert_eq!(enqueue_many(conn, vec![job("a"), job("c")]).await.unwrap(), 1);
    assert_eq!(enqueue_many(conn, vec![job("b"), job("c")]).await.unwrap(), 0);
    assert_eq!(enqueue_many(conn, Vec::new()).await.unwrap(), 0);
    assert!(!enqueue(conn, job("a")).await.unwrap());
    assert!(enqueue(conn, job("d")).await.unwrap());
    assert_eq!(app.count("jobs WHERE kind = 'test.count'").await, 4);
}

struct Panics;

#[async_trait::async_trait]
impl Handler for Panics {
    async fn run(&self, _: Value) -> Result<(), JobError> {
        panic!("a handler bug")
    }
}

/// A job never runs for ever: a handler that panics fails like any other (retried, then dead),
/// and a lease that lapses on the last attempt (the worker died holding it) makes the job dead.
#[tokio::test]
async fn panicking_handlers_and_lapsed_last_attempts_end_in_the_dead_letters() {
    let app = TestApp::spawn_with(|c| c.worker_enabled = false).await;
    let db = app.state.db.clone();
    enqueue(db.primary(), NewJob::new("test.panic", json!({})).max_attempts(2)).await.unwrap();
    let w = Worker::new(db.clone(), Registry::default().with("test.panic", Panics), settings(30_000));
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.count("jobs WHERE kind = 'test.panic' AND status = 'dead'").await == 0 {
        assert!(Instant::now() < deadline, "the panicking job never went dead");
        w.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.count("jobs WHERE kind = 'test.panic' AND attempts = 2 AND last_error LIKE '%panicked%'").await, 1);

    enqueue(db.primary(), NewJob::new("test.count", json!({"n": 7})).max_attempts(1)).await.unwrap();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let registry = || Registry::default().with("test.count", Counting { runs: runs.clone(), started: None, hang: false });
    // Claimed by a worker that then "dies": it never runs or renews the job.
    let dying = Worker::new(db.clone(), registry(), settings(100));
    assert_eq!(dying.claim().await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = Worker::new(db.clone(), registry(), settings(30_000));
    assert_eq!(other.run_once().await.unwrap(), 0, "its one attempt is spent");
    assert_eq!(app.count("jobs WHERE kind = 'test.count' AND status = 'dead' AND last_error LIKE '%lease lapsed%'").await, 1);
    assert!(runs.lock().unwrap().is_empty());
}
