//! Composition root: builds every piece from the configuration and wires them together.
//! `main.rs` is the CLI; integration tests call [`Application::build`] directly.

pub mod housekeeping;
pub mod jobs;

use anyhow::Context;
use http_api::AppState;
use platform::{Config, Secret, config::Backend};
use services::{
    identity::{IdentityService, TokenIssuer, TokenSettings},
    pagination::CursorCodec,
};
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use store::Db;
use tokio::net::TcpListener;

pub async fn connect_db(config: &Config) -> anyhow::Result<Db> {
    let primary = config.primary_db()?;
    let replica = config.replica_db()?;
    let max_lag = Duration::from_millis(config.db_replica_max_lag_ms);
    Db::connect(&primary, replica.as_ref(), max_lag).await.context("connecting to the database")
}

/// `JWT_SECRET`, or in the embedded default a secret generated once and kept beside the
/// SQLite file. Several instances on PostgreSQL must share one, so there it is required.
pub fn resolve_jwt_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(s) = &config.jwt_secret {
        return Ok(s.clone());
    }
    if config.backend() == Backend::Postgres {
        anyhow::bail!("invalid configuration: JWT_SECRET: required when DATABASE_URL is PostgreSQL (all instances must share it)");
    }
    let Some(db_path) = config.sqlite_path() else {
        tracing::warn!("JWT_SECRET is not set: using a random secret for this in-memory database; sessions end at restart");
        return Ok(Secret::new(hex::encode(rand::random::<[u8; 32]>())));
    };
    let path = db_path.with_extension("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let s = existing.trim().to_owned();
        if s.len() >= 32 {
            return Ok(Secret::new(s));
        }
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(path = %path.display(), "JWT_SECRET is not set: generated one and stored it beside the database; set JWT_SECRET in production");
    Ok(Secret::new(secret))
}

fn write_private(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(content.as_bytes())
}

/// Everything the services need, built from config.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    // Decided before connecting, which creates the file.
    let fresh_sqlite = config.sqlite_path().is_some_and(|p| !p.exists());
    let db = connect_db(&config).await?;
    let seed = config.seed_on_startup.unwrap_or(fresh_sqlite);
    // Held through migrations and the demo seed: instances starting together take turns.
    let setup = if config.migrate_on_start || seed { Some(db.setup_lock().await?) } else { None };
    if let Some(lock) = setup.as_ref().filter(|_| config.migrate_on_start) {
        db.migrate_holding(lock).await?;
    }
    let secret = resolve_jwt_secret(&config)?;
    let tokens = TokenIssuer::new(
        secret.expose().as_bytes(),
        TokenSettings {
            access_ttl_seconds: config.access_token_ttl_seconds,
            refresh_ttl_days: config.refresh_token_ttl_days,
            session_max_age_days: config.session_max_age_days,
        },
    );
    let identity = IdentityService::new(db.clone(), tokens, config.password_reset_ttl_minutes);
    let cursors = CursorCodec::new(secret.expose().as_bytes());
    let redis = match &config.redis_url {
        Some(url) => Some(platform::redis::Redis::open(url, &config.redis_prefix, config.redis_timeout()).context("REDIS_URL")?),
        None => None,
    };
    let state = AppState::new(Arc::new(config), db, identity, cursors, redis)?;
    if seed {
        let n = services::seed::demo(&state.db, &state.catalog).await.map_err(|e| anyhow::anyhow!("seeding the demo catalog: {e}"))?;
        let meta = services::RequestMeta::system();
        state.shipping.seed_demo(&meta).await.map_err(|e| anyhow::anyhow!("seeding the demo shipping zone: {e}"))?;
        if n > 0 {
            tracing::info!(products = n, "demo catalog created");
        }
    }
    if let Some(lock) = setup {
        lock.release().await;
    }
    Ok(state)
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let addr = config.bind_addr();
        let listener = TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
        let metrics_listener = match config.metrics_port {
            Some(port) => {
                let addr = format!("{}:{port}", config.host);
                Some(TcpListener::bind(&addr).await.with_context(|| format!("binding METRICS_PORT {addr}"))?)
            }
            None => None,
        };
        let state = build_state(config).await?;
        Ok(Self { listener, metrics_listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Where `/metrics` is served when METRICS_PORT is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, marks the instance not ready,
    /// and lets in-flight requests finish within SHUTDOWN_TIMEOUT_SECONDS.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let grace = Duration::from_secs(state.config.shutdown_timeout_seconds);
        let app = http_api::router(state.clone()).into_make_service_with_connect_info::<http_api::net::ClientAddr>();
        // `stop` tells background work and the metrics listener that shutdown began.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let marker = state.clone();
        let signal = async move {
            shutdown.await;
            marker.begin_shutdown();
            tracing::info!("shutdown requested: draining in-flight requests");
            let _ = stop_tx.send(true);
        };
        let background = housekeeping::spawn(state.clone(), stop_rx.clone());
        let worker = if state.config.worker_enabled {
            let db = state.db.with_own_pool(jobs::OWN_POOL_CONNECTIONS).await.context("the job worker's pool")?;
            Some(jobs::spawn(&state, db, stop_rx.clone())?)
        } else {
            None
        };
        if let Some(listener) = self.metrics_listener {
            let mut stop = stop_rx.clone();
            let metrics = axum::serve(listener, http_api::metrics_router(state.clone())).with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            });
            tokio::spawn(async move { metrics.await });
        }
        let server = axum::serve(http_api::net::CountingListener(self.listener), app).with_graceful_shutdown(signal);
        let serving = tokio::spawn(async move { server.await });
        let mut stopping = stop_rx;
        let _ = stopping.changed().await;
        match tokio::time::timeout(grace, serving).await {
            Ok(joined) => joined??,
            Err(_) => tracing::warn!(seconds = grace.as_secs(), "shutdown grace period over; dropping remaining connections"),
        }
        let _ = tokio::time::timeout(grace, background).await;
        if let Some(w) = worker {
            // A job cut short here is not lost: its lease lapses and another worker runs it.
            let _ = tokio::time::timeout(grace, w).await;
        }
        state.db.clone().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// A minimal HTTP/1.1 GET over loopback: true on a 200. Kept dependency-free so the health
/// check binary path stays small.
pub async fn healthcheck(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.ok().flatten().unwrap_or(false)
}
