//! Read replicas, against a real PostgreSQL streaming replica of the test cluster: started here
//! with `pg_basebackup -R` on a free port, in its own data directory, removed afterwards.
//! PostgreSQL only: the SQLite pass has no replication to test.

use crate::support::{TestApp, pg_base};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

pub struct PgReplica {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

/// Runs a PostgreSQL tool as the `postgres` user (the server refuses to run as root).
fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> std::process::Output {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    cmd.args(args).output().unwrap_or_else(|e| panic!("{tool} runs: {e}"))
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").args([url, "-Atqc", sql]).output().expect("psql is installed");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl PgReplica {
    /// A hot standby streaming from the primary at `base` (a superuser URL).
    pub fn start(base: &str) -> Self {
        // Replication connections need their own pg_hba rule; add it once if missing.
        if psql(base, "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database)") == "0" {
            let hba = psql(base, "SHOW hba_file");
            let mut f = std::fs::OpenOptions::new().append(true).open(&hba).expect("pg_hba.conf is writable");
            std::io::Write::write_all(&mut f, b"\nhost replication all 127.0.0.1/32 trust\n").unwrap();
            psql(base, "SELECT pg_reload_conf()");
        }
        let version = psql(base, "SHOW server_version_num");
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", version[..version.len() - 4].trim_start_matches('0')));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("valuva-replica-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Command::new("chown").args(["postgres:postgres", dir.to_str().unwrap()]).status().unwrap();
        let primary = url::Url::parse(base).unwrap();
        let (host, pport) = (primary.host_str().unwrap_or("127.0.0.1").to_owned(), primary.port().unwrap_or(5432).to_string());
        let data = dir.join("data");
        let out = as_postgres(
            &bin,
            "pg_basebackup",
            &["-h", &host, "-p", &pport, "-U", "postgres", "-D", data.to_str().unwrap(), "-R", "-X", "stream", "-c", "fast"],
        );
        assert!(out.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&out.stderr));
        // Debian keeps the configuration outside the data directory: give the copy its own.
        let conf =
            format!("port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nhot_standby = on\n", dir.display());
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhost all all 127.0.0.1/32 trust\n").unwrap();
        Command::new("chown").args(["-R", "postgres:postgres", dir.to_str().unwrap()]).status().unwrap();
        let replica = Self { port, dir, bin };
        replica.start_server();
        replica
    }

    fn start_server(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let out = as_postgres(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"]);
        assert!(out.status.success(), "replica start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    /// Like a crash: no goodbye to clients.
    pub fn stop(&self) {
        as_postgres(&self.bin, "pg_ctl", &["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Waits until `database` has been replayed here. The whole suite creates a database per
    /// test on the same primary at once (each `CREATE DATABASE` WAL-logs a copy of the
    /// template), so the standby can be well behind while the suite runs: 30 s was once too short.
    pub fn wait_for_database(&self, database: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while psql(&self.url("postgres"), &format!("SELECT count(*) FROM pg_database WHERE datname = '{database}'")) != "1" {
            assert!(Instant::now() < deadline, "database {database} never reached the replica");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgReplica {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn database_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// A test app whose reads may go to a fresh replica (the product cache off, so every read
/// reaches a database).
async fn app_with_replica(max_lag_ms: u64) -> Option<(PgReplica, TestApp)> {
    let base = pg_base()?;
    let replica = PgReplica::start(&base);
    let port = replica.port;
    let app = TestApp::spawn_with(|c| {
        let db = database_of(&c.database_url);
        c.database_read_url = Some(format!("postgres://postgres@127.0.0.1:{port}/{db}"));
        c.db_replica_max_lag_ms = max_lag_ms;
        c.cache_enabled = false;
        c.read_your_writes_ms = 300;
        // Statements are counted per pool: no background worker polling the primary.
        c.worker_enabled = false;
    })
    .await;
    replica.wait_for_database(&database_of(&app.config.database_url));
    wait_for_replica(&app, true).await;
    Some((replica, app))
}

async fn replica_usable(app: &TestApp) -> bool {
    let h: Value = app.get("/health", None).await.json().await.unwrap();
    h["pools"]["replica"]["status"]["usable"] == true
}

async fn wait_for_replica(app: &TestApp, usable: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while replica_usable(app).await != usable {
        assert!(Instant::now() < deadline, "replica never became usable={usable}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn title_of(app: &TestApp, id: &str, token: Option<&str>) -> String {
    let res = app.get(&format!("/api/v1/products/{id}"), token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["title"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_a_writer_reads_its_own_writes() {
    let Some((replica, app)) = app_with_replica(600_000).await else {
        eprintln!("replica tests run in the PostgreSQL pass (TEST_DATABASE_URL)");
        return;
    };
    let staff = app.admin_token().await;
    let body = crate::catalog::product("Replica Tee", "REP-1", 1000);
    let p: Value = app.post("/api/v1/admin/products", Some(&staff), body).await.json().await.unwrap();
    let id = p["id"].as_str().unwrap().to_owned();
    // Everything so far was written on the primary; wait until the replica has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.get(&format!("/api/v1/products/{id}"), None).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "the product never reached the replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Registering the staff user was a write from this address: its reads stay on the primary
    // for READ_YOUR_WRITES_MS. Let that window pass.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = app.statements();
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/products?limit=5", None).await.status(), StatusCode::OK);
        assert_eq!(title_of(&app, &id, None).await, "Replica Tee");
    }
    let after = app.statements();
    assert_eq!(after.0, before.0, "storefront reads ran nothing on the primary");
    assert!(after.1 >= before.1 + 10, "storefront reads ran on the replica ({before:?} -> {after:?})");

    // Freeze the replica, then write: the writer sees its change at once (from the primary),
    // another client still reads the replica's older copy.
    psql(&replica.url("postgres"), "SELECT pg_wal_replay_pause()");
    let res = app.patch(&format!("/api/v1/admin/products/{id}"), Some(&staff), json!({"title": "Replica Tee v2"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(title_of(&app, &id, Some(&staff)).await, "Replica Tee v2");
    assert_eq!(title_of(&app, &id, None).await, "Replica Tee", "other clients read the (paused) replica");
    psql(&replica.url("postgres"), "SELECT pg_wal_replay_resume()");
    let deadline = Instant::now() + Duration::from_secs(30);
    while title_of(&app, &id, None).await != "Replica Tee v2" {
        assert!(Instant::now() < deadline, "replica never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_is_bypassed() {
    let Some((replica, app)) = app_with_replica(300).await else { return };
    let staff = app.admin_token().await;
    let p: Value =
        app.post("/api/v1/admin/products", Some(&staff), crate::catalog::product("Lag Tee", "LAG-1", 1000)).await.json().await.unwrap();
    let id = p["id"].as_str().unwrap().to_owned();
    psql(&replica.url("postgres"), "SELECT pg_wal_replay_pause()");
    let res = app.patch(&format!("/api/v1/admin/products/{id}"), Some(&staff), json!({"title": "Lag Tee v2"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    wait_for_replica(&app, false).await;
    // Not the writer, and the replica has not replayed the change: served by the primary.
    assert_eq!(title_of(&app, &id, None).await, "Lag Tee v2");
    let h: Value = app.get("/health", None).await.json().await.unwrap();
    assert_eq!(h["status"], "degraded");
    assert!(h["pools"]["replica"]["status"]["lag_ms"].as_u64().unwrap() > 300);
    psql(&replica.url("postgres"), "SELECT pg_wal_replay_resume()");
    wait_for_replica(&app, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_replica_mid_traffic_causes_no_5xx() {
    let Some((replica, app)) = app_with_replica(600_000).await else { return };
    let staff = app.admin_token().await;
    app.post("/api/v1/admin/products", Some(&staff), crate::catalog::product("Stop Tee", "STOP-1", 1000)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, stop) = (app.client.clone(), app.url("/api/v1/products?limit=10"), stop.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    statuses.push(client.get(&url).send().await.unwrap().status());
                }
                statuses
            })
        })
        .collect();
    // Let traffic flow on the replica, then kill it under the load.
    let before = app.statements().1;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.statements().1 < before + 50 {
        assert!(Instant::now() < deadline, "no traffic reached the replica");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::block_in_place(|| replica.stop());
    let primary_before = app.statements().0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.statements().0 < primary_before + 50 {
        assert!(Instant::now() < deadline, "reads never moved to the primary");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let statuses = w.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "every read succeeded: {statuses:?}");
    }
    // The statement counters above already show reads on both sides of the stop.
    assert!(total >= 10, "only {total} requests");
    wait_for_replica(&app, false).await;
}
