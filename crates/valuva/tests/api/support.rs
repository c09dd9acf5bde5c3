use platform::{Config, Secret};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery";

/// A running server on a random loopback port with its own fresh database.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub state: http_api::AppState,
    pub config: Config,
    pub dir: tempfile::TempDir,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pg_cleanup: Option<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
}

/// The shared Redis of the PostgreSQL + Redis run (each app keys under its own prefix).
pub fn redis_base() -> Option<String> {
    std::env::var("TEST_REDIS_URL").ok().filter(|u| u.starts_with("redis"))
}

pub fn pg_base() -> Option<String> {
    std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))
}

/// Creates a uniquely named PostgreSQL database and returns (admin URL, database URL, name).
pub async fn create_pg_database(base: &str) -> (String, String) {
    use sea_orm::{ConnectionTrait, Database};
    let name = format!("valuva_test_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(base).await.expect("TEST_DATABASE_URL reachable");
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    let _ = admin.close().await;
    let mut url = url_without_path(base);
    url.push('/');
    url.push_str(&name);
    (url, name)
}

fn url_without_path(base: &str) -> String {
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    match base[scheme_end..].find('/') {
        Some(i) => base[..scheme_end + i].to_owned(),
        None => base.to_owned(),
    }
}

pub fn drop_pg_database(base: String, name: String) {
    // Drop runs outside any runtime that could still be polled: use a thread of its own.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use sea_orm::{ConnectionTrait, Database};
            if let Ok(admin) = Database::connect(&base).await {
                let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                let _ = admin.close().await;
            }
        });
    })
    .join();
}

/// A test configuration on a fresh database of its own: (config, its directory, the
/// PostgreSQL database to drop afterwards).
async fn fresh_config(tweak: impl FnOnce(&mut Config)) -> (Config, tempfile::TempDir, Option<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, pg_cleanup) = match pg_base() {
        Some(base) => {
            let (url, name) = create_pg_database(&base).await;
            (url, Some((base, name)))
        }
        None => (format!("sqlite://{}", dir.path().join("valuva.db").display()), None),
    };
    let mut config = Config {
        host: "127.0.0.1".into(),
        port: 0,
        database_url,
        jwt_secret: Some(Secret::new("test-secret-test-secret-test-secret!")),
        email_outbox_dir: dir.path().join("outbox").display().to_string(),
        storage_url: Secret::new(format!("file://{}", dir.path().join("uploads").display())),
        seed_on_startup: Some(false),
        // Tests drive housekeeping themselves, deterministically.
        housekeeping_interval_ms: 3_600_000,
        // Limits are tested on their own; elsewhere they would only get in the way.
        rate_limit_max_requests: 1_000_000,
        rate_limit_auth_max_requests: 1_000_000,
        redis_url: redis_base().map(Secret::new),
        redis_prefix: format!("valuva_test_{}", uuid::Uuid::now_v7().simple()),
        ..Config::default()
    };
    tweak(&mut config);
    config.validate().expect("test config is valid");
    (config, dir, pg_cleanup)
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// An app whose pools nothing touches unasked (no job worker, no housekeeping rounds after
    /// the one at start-up), for tests that count statements.
    pub async fn spawn_counting() -> Self {
        Self::spawn_with(|c| {
            c.worker_enabled = false;
            c.housekeeping_interval_ms = 3_600_000;
        })
        .await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let (config, dir, pg_cleanup) = fresh_config(tweak).await;
        let app = valuva::Application::build(config.clone()).await.expect("app builds");
        Self::running(app, config, dir, pg_cleanup)
    }

    /// Two instances of one deployment starting at the same moment on a database nothing has
    /// touched yet (both migrate it, and seed it if the config says so). The first owns it.
    pub async fn spawn_pair_on_fresh_database(tweak: impl FnOnce(&mut Config)) -> (Self, Self) {
        let (config, dir, pg_cleanup) = fresh_config(tweak).await;
        let (a, b) = tokio::join!(valuva::Application::build(config.clone()), valuva::Application::build(config.clone()));
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                if let Some((base, name)) = pg_cleanup {
                    drop_pg_database(base, name);
                }
                if let Some(url) = &config.redis_url {
                    drop_redis_keys(url.expose(), &config.redis_prefix);
                }
                panic!("both instances build: {:?}, {:?}", a.err(), b.err());
            }
        };
        let a = Self::running(a, config.clone(), dir, pg_cleanup);
        let b = Self::running(b, config, tempfile::tempdir().unwrap(), None);
        (a, b)
    }

    /// Serves `app` until the returned handle is dropped.
    fn running(app: valuva::Application, config: Config, dir: tempfile::TempDir, pg_cleanup: Option<(String, String)>) -> Self {
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            client: Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            state,
            config,
            dir,
            metrics_addr,
            pg_cleanup,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn req(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self.client.request(method, self.url(path));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.req(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.req(Method::POST, path, token).json(&body).send().await.unwrap()
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.req(Method::PATCH, path, token).json(&body).send().await.unwrap()
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.req(Method::DELETE, path, token).send().await.unwrap()
    }

    /// Registers a customer and returns the session body.
    pub async fn register(&self, email: &str) -> Value {
        let res = self.post("/api/v1/auth/register", None, json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }

    pub async fn customer_token(&self, email: &str) -> String {
        self.register(email).await["access_token"].as_str().unwrap().to_owned()
    }

    /// A user with the given role (created through the service, as the CLI does), logged in.
    pub async fn token_with_role(&self, email: &str, role: domain::Role) -> (String, uuid::Uuid) {
        let meta = services::RequestMeta::system();
        let user = self.state.identity.create_admin(&meta, email, PASSWORD).await.unwrap();
        if role != domain::Role::Admin {
            self.state.identity.set_role(&meta, user.id, role).await.unwrap();
        }
        let res = self.post("/api/v1/auth/login", None, json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        (body["access_token"].as_str().unwrap().to_owned(), user.id)
    }

    pub async fn admin_token(&self) -> String {
        self.token_with_role("admin@example.com", domain::Role::Admin).await.0
    }

    /// Row count of a table (which may carry a `WHERE` clause), e.g. to prove a rejected
    /// request wrote nothing.
    pub async fn count(&self, table: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let conn = self.state.db.primary();
        let row = conn
            .query_one_raw(Statement::from_string(conn.get_database_backend(), format!("SELECT COUNT(*) AS n FROM {table}")))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    pub async fn exec(&self, sql: &str) {
        self.state.db.execute_raw(sql).await.unwrap();
    }

    pub fn outbox(&self) -> PathBuf {
        PathBuf::from(&self.config.email_outbox_dir)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some((base, name)) = self.pg_cleanup.take() {
            drop_pg_database(base, name);
        }
        if let Some(url) = &self.config.redis_url {
            drop_redis_keys(url.expose(), &self.config.redis_prefix);
        }
    }
}

/// Deletes every key under a test's prefix (tests only: production never scans).
pub fn drop_redis_keys(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else { return };
    let Ok(mut conn) = client.get_connection_with_timeout(std::time::Duration::from_secs(1)) else { return };
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut conn).unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
    }
}

/// Sends the requests all at once (each on a task of its own, so they race on the server) and
/// returns their statuses in the order given.
pub async fn statuses_of_concurrent(requests: Vec<RequestBuilder>) -> Vec<StatusCode> {
    let tasks: Vec<_> = requests.into_iter().map(|r| tokio::spawn(async move { r.send().await.unwrap().status() })).collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

/// Asserts a problem+json answer with the given status and code; returns the body.
pub async fn assert_problem(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status, "status");
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
    assert!(res.headers().contains_key("x-request-id"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    body
}

/// The real `valuva` binary serving the test's database on a free loopback port, with its JSON
/// log lines captured.
pub struct Binary {
    pub child: std::process::Child,
    pub base: String,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Binary {
    pub fn start(app: &TestApp, env: &[(&str, &str)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_valuva"));
        cmd.current_dir(app.dir.path())
            .env("DATABASE_URL", &app.config.database_url)
            .env("JWT_SECRET", app.config.jwt_secret.as_ref().unwrap().expose())
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "json")
            .env("LOG_LEVEL", "info")
            .env("SEED_ON_STARTUP", "false")
            .env("RATE_LIMIT_MAX_REQUESTS", app.config.rate_limit_max_requests.to_string())
            .env("RATE_LIMIT_AUTH_MAX_REQUESTS", app.config.rate_limit_auth_max_requests.to_string())
            .env("REDIS_PREFIX", &app.config.redis_prefix)
            .env("STORAGE_URL", app.config.storage_url.expose())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(url) = &app.config.redis_url {
            cmd.env("REDIS_URL", url.expose());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("valuva starts");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (out, sink) = (child.stdout.take().unwrap(), logs.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "serving"
                {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        // The server logs its address once it listens.
        let addr = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("server started");
        Self { child, base: format!("http://{addr}"), logs }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestApp {
    /// A second instance of the same deployment: same database, Redis and prefix, its own
    /// port and in-process state. The first app owns (and drops) the database.
    pub async fn sibling(&self) -> TestApp {
        let app = valuva::Application::build(self.config.clone()).await.expect("sibling builds");
        Self::running(app, self.config.clone(), tempfile::tempdir().unwrap(), None)
    }

    /// Statements this instance has run on (primary, replica).
    pub fn statements(&self) -> (u64, u64) {
        self.state.db.statement_counts()
    }
}

/// A private redis-server on a free loopback port, for tests that stop and restart it.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Self { port, child: None };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port) and waits until it answers.
    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_connection_with_timeout(std::time::Duration::from_millis(200))
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "private redis-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
