//! Read routing. Reads that tolerate staleness go to the replica through [`Reader`], which
//! falls back to the primary when the replica fails a statement, while it is down or lagging
//! past `DB_REPLICA_MAX_LAG_MS` (checked in the background), and inside
//! [`with_primary_reads`] (a client that has just written must see its write).

use crate::Db;
use platform::config::Backend;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement};
use std::{
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

tokio::task_local! {
    static PRIMARY_READS: bool;
}

/// Runs `f` with every [`Db::reader`] read on the primary when `on` (read-your-writes).
pub async fn with_primary_reads<F: Future>(on: bool, f: F) -> F::Output {
    PRIMARY_READS.scope(on, f).await
}

fn primary_forced() -> bool {
    PRIMARY_READS.try_with(|v| *v).unwrap_or(false)
}

/// What the health check and the router know about the replica.
#[derive(Debug)]
pub struct ReplicaState {
    usable: AtomicBool,
    lag_ms: AtomicU64,
    max_lag: Duration,
    interval: Duration,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ReplicaStatus {
    pub usable: bool,
    pub lag_ms: u64,
}

impl ReplicaState {
    pub(crate) fn new(max_lag: Duration) -> Arc<Self> {
        let interval = (max_lag / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        // Unused until the first check has seen it answer and caught up.
        Arc::new(Self { usable: AtomicBool::new(false), lag_ms: AtomicU64::new(0), max_lag, interval })
    }

    fn set_usable(&self, usable: bool, why: &str) {
        let was = self.usable.swap(usable, Ordering::AcqRel);
        if was != usable {
            if usable {
                tracing::info!("read replica is back in use");
            } else {
                tracing::warn!(reason = why, "read replica bypassed; reads go to the primary");
            }
        }
        metrics::gauge!("valuva_db_replica_usable").set(if usable { 1.0 } else { 0.0 });
    }

    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus { usable: self.usable.load(Ordering::Acquire), lag_ms: self.lag_ms.load(Ordering::Acquire) }
    }

    /// How stale a replica read may be, at worst, while the replica is in use.
    pub fn staleness_bound(&self) -> Duration {
        self.max_lag + self.interval * 2
    }
}

/// Checks the replica's replay lag every `interval` until the pools are dropped.
pub(crate) async fn monitor(state: Weak<ReplicaState>, replica: DatabaseConnection, backend: Backend) {
    let sql = match backend {
        // Caught up when everything received is replayed; otherwise the age of the last
        // replayed transaction. A replica that lost its primary stops receiving and ages.
        Backend::Postgres => {
            "SELECT CAST(CASE WHEN NOT pg_is_in_recovery() THEN 0
                              WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                              ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) END AS BIGINT) AS lag_ms"
        }
        Backend::Sqlite => "SELECT 0 AS lag_ms",
    };
    let mut first = true;
    loop {
        let Some(interval) = state.upgrade().map(|s| s.interval) else { return };
        if !std::mem::take(&mut first) {
            tokio::time::sleep(interval).await;
        }
        let query = replica.query_one_raw(Statement::from_string(replica.get_database_backend(), sql));
        let lag = match tokio::time::timeout(interval.max(Duration::from_millis(500)), query).await {
            Ok(Ok(Some(row))) => row.try_get::<i64>("", "lag_ms").ok(),
            _ => None,
        };
        let Some(state) = state.upgrade() else { return };
        match lag {
            Some(ms) => {
                let ms = ms.max(0) as u64;
                state.lag_ms.store(ms, Ordering::Release);
                metrics::gauge!("valuva_db_replica_lag_seconds").set(ms as f64 / 1000.0);
                state.set_usable(ms <= state.max_lag.as_millis() as u64, "replication lag above DB_REPLICA_MAX_LAG_MS");
            }
            None => state.set_usable(false, "unreachable"),
        }
    }
}

/// A connection for reads that may be stale: the replica when it is usable, else the primary.
pub struct Reader<'a> {
    db: &'a Db,
    replica: bool,
}

impl Db {
    /// Where a stale-tolerant read goes now.
    pub fn reader(&self) -> Reader<'_> {
        let replica = (self.local_readers() || self.replica_state().is_some_and(|s| s.usable.load(Ordering::Acquire))) && !primary_forced();
        Reader { db: self, replica }
    }

    /// Like [`Db::reader`], but the primary while the replica might not have caught up with a
    /// change made at `changed_at`: for filling caches that outlive the read.
    pub fn reader_fresh_since(&self, changed_at: Option<Instant>) -> Reader<'_> {
        let mut r = self.reader();
        if let (Some(at), Some(state)) = (changed_at, self.replica_state()) {
            r.replica &= at.elapsed() > state.staleness_bound();
        }
        r
    }
}

impl Reader<'_> {
    fn failed(&self, e: &DbErr) {
        tracing::debug!(error = %e, "replica read failed; retrying on the primary");
        metrics::counter!("valuva_db_replica_fallbacks_total").increment(1);
        if is_connection_error(e)
            && let Some(s) = self.db.replica_state()
        {
            s.set_usable(false, "a read failed to reach it");
        }
    }
}

/// The connection is gone or going (SQLSTATE classes 08 and 57: shutdown, admin command).
fn is_connection_error(e: &DbErr) -> bool {
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(s)) | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(s)) => match &**s {
            sea_orm::sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
            sea_orm::sqlx::Error::Io(_)
            | sea_orm::sqlx::Error::Protocol(_)
            | sea_orm::sqlx::Error::PoolTimedOut
            | sea_orm::sqlx::Error::PoolClosed
            | sea_orm::sqlx::Error::WorkerCrashed => true,
            _ => false,
        },
        _ => false,
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reader<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.db.primary().get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.db.primary().execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.primary().execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if self.replica {
            match self.db.replica_pool().query_one_raw(stmt.clone()).await {
                Err(e) => self.failed(&e),
                ok => return ok,
            }
        }
        self.db.primary().query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if self.replica {
            match self.db.replica_pool().query_all_raw(stmt.clone()).await {
                Err(e) => self.failed(&e),
                ok => return ok,
            }
        }
        self.db.primary().query_all_raw(stmt).await
    }
}
