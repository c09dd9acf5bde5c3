use platform::config::{Backend, DatabaseSettings};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr, SqlErr, TransactionOptions,
    TransactionTrait, sqlx,
};
use sea_orm_migration::MigratorTrait;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] DbErr),
    #[error("migration failed: {0}")]
    Migrate(#[source] DbErr),
}

/// The application's database: a primary pool for writes and consistent reads, and a replica
/// pool for reads that tolerate staleness (the primary again when no replica is configured).
#[derive(Clone, Debug)]
pub struct Db {
    primary: DatabaseConnection,
    replica: DatabaseConnection,
    replica_state: Option<Arc<crate::replica::ReplicaState>>,
    /// SQLite: `replica` is a pool of read-only connections to the same file, which in WAL mode
    /// see every commit at once, so stale-tolerant reads always go there.
    local_readers: bool,
    backend: Backend,
    /// Statements run per pool (primary, replica) by this instance, for `/health`.
    statements: Arc<[AtomicU64; 2]>,
    /// How the primary pool was made, for [`Self::with_own_pool`].
    primary_settings: Arc<DatabaseSettings>,
    /// SQLite file: set to stop the WAL checkpointer ([`crate::checkpoint`]).
    checkpointer: Option<Arc<AtomicBool>>,
    /// SQLite: where work holding the one writer runs ([`Self::writing`]).
    lane: Option<Arc<crate::lane::Lane>>,
    /// SQLite: commits single writes in groups ([`Self::write`]).
    committer: Option<crate::group::Committer>,
}

impl Db {
    /// `max_lag`: the replica is bypassed while its replay lag is above it.
    pub async fn connect(primary: &DatabaseSettings, replica: Option<&DatabaseSettings>, max_lag: Duration) -> Result<Self, StoreError> {
        let statements = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        if primary.backend == Backend::Sqlite && replica.is_none() {
            return Self::connect_sqlite(primary, statements).await;
        }
        let p = connect_pool(primary, "primary", statements.clone()).await?;
        let (r, replica_state) = match replica {
            // A replica that is down at start-up is bypassed until it is back.
            Some(settings) => {
                let r = connect_pool(settings, "replica", statements.clone()).await?;
                let state = crate::replica::ReplicaState::new(max_lag);
                tokio::spawn(crate::replica::monitor(Arc::downgrade(&state), r.clone(), settings.backend));
                (r, Some(state))
            }
            None => (p.clone(), None),
        };
        let primary_settings = Arc::new(primary.clone());
        Ok(Self {
            primary: p,
            replica: r,
            replica_state,
            local_readers: false,
            backend: primary.backend,
            statements,
            primary_settings,
            checkpointer: start_checkpointer(primary),
            lane: None,
            committer: None,
        })
    }

    /// SQLite takes one writer at a time. With several pooled connections, the ones waiting for
    /// the write lock poll it with growing sleeps (SQLite's busy handler), which idled the
    /// machine while 64 checkouts queued. Instead the primary pool is a single connection
    /// (writers queue for it in order, without sleeping) and reads that need no transaction
    /// use a pool of read-only connections beside it, and a connection of its own checkpoints
    /// the WAL ([`crate::checkpoint`]). An in-memory database cannot be shared between
    /// connections, so it gets the single connection only.
    async fn connect_sqlite(settings: &DatabaseSettings, statements: Arc<[AtomicU64; 2]>) -> Result<Self, StoreError> {
        let writer = DatabaseSettings { max_connections: 1, min_connections: 1, ..settings.clone() };
        let lane = crate::lane::Lane::start().map_err(StoreError::Connect)?;
        // Opened on the lane, so that the connection's thread shares the lane's CPU (see
        // [`crate::lane`]).
        let (w, counts) = (writer.clone(), statements.clone());
        let p = lane.run(async move { connect_pool(&w, "primary", counts).await }).await.map_err(StoreError::Connect)??;
        let (r, local_readers) =
            if is_in_memory(settings) { (p.clone(), false) } else { (connect_pool(settings, "readers", statements.clone()).await?, true) };
        let checkpointer = start_checkpointer(settings);
        let committer = Some(crate::group::Committer::start(&lane, p.clone()));
        let primary_settings = Arc::new(writer);
        Ok(Self {
            primary: p,
            replica: r,
            replica_state: None,
            local_readers,
            backend: Backend::Sqlite,
            statements,
            primary_settings,
            checkpointer,
            lane: Some(lane),
            committer,
        })
    }

    /// A copy whose writes and consistent reads go through a pool of `connections` of its
    /// own (PostgreSQL), for the job worker inside a serving instance. Under request load
    /// every pooled connection is busy and waited for; the worker's short statements queued
    /// behind requests (130–160 ms per dispatch-claim-run-record round at 64 concurrent
    /// checkouts) and it fell further behind every second. SQLite keeps its one writer: the
    /// copy shares it.
    pub async fn with_own_pool(&self, connections: u32) -> Result<Db, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(self.clone());
        }
        let settings = DatabaseSettings { max_connections: connections, min_connections: 1, ..(*self.primary_settings).clone() };
        let primary = connect_pool(&settings, "background", self.statements.clone()).await?;
        Ok(Self { primary, ..self.clone() })
    }

    pub(crate) fn local_readers(&self) -> bool {
        self.local_readers
    }

    /// What the second pool is, for `/health`: a `replica`, or SQLite's local `readers`.
    pub fn read_pool_label(&self) -> &'static str {
        if self.local_readers { "readers" } else { "replica" }
    }

    pub(crate) fn replica_state(&self) -> Option<&crate::replica::ReplicaState> {
        self.replica_state.as_deref()
    }

    pub(crate) fn replica_pool(&self) -> &DatabaseConnection {
        &self.replica
    }

    /// The replica's health and lag, when one is configured.
    pub fn replica_status(&self) -> Option<crate::replica::ReplicaStatus> {
        self.replica_state().map(|s| s.status())
    }

    /// Statements this instance ran on (primary, replica).
    pub fn statement_counts(&self) -> (u64, u64) {
        (self.statements[0].load(Ordering::Relaxed), self.statements[1].load(Ordering::Relaxed))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes and reads that must see the latest committed state.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    /// Reads that must see the latest committed state but run outside any transaction. On
    /// SQLite that is the read-only pool, which sees every commit at once (WAL), so such reads
    /// leave the one writer connection to writers; elsewhere the primary.
    pub fn current(&self) -> &DatabaseConnection {
        if self.local_readers { &self.replica } else { &self.primary }
    }

    /// Runs `job`, which writes, where that is quickest: on SQLite on the writer lane (see
    /// [`crate::lane`]: it holds the one writer connection for the least time there),
    /// elsewhere right here. `Err` only when the lane has stopped (the database is closing).
    pub async fn writing<T: Send + 'static>(&self, job: impl Future<Output = T> + Send + 'static) -> Result<T, DbErr> {
        match &self.lane {
            Some(lane) => lane.run(job).await,
            None => Ok(job.await),
        }
    }

    /// One write on its own (a statement, or a string of them run as one): on SQLite it commits
    /// together with the other such writes queued at the moment ([`crate::group`]); elsewhere
    /// it runs at once on the primary. Either way it has committed when this returns.
    pub async fn write(&self, write: crate::group::Write) -> Result<crate::group::Written, DbErr> {
        match &self.committer {
            Some(c) => c.write(write).await,
            None => write.run(&self.primary).await,
        }
    }

    /// A read-write transaction. SQLite: `BEGIN IMMEDIATE`, so the write lock is taken up front
    /// and two writers never deadlock upgrading a read lock. PostgreSQL: READ COMMITTED; row locks
    /// and conditional updates carry the invariants.
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.primary.begin_with_options(self.tx_options(None)).await
    }

    /// A SERIALIZABLE transaction on PostgreSQL (`BEGIN IMMEDIATE` on SQLite, which serialises
    /// writers anyway). Callers retry on [`is_retryable`].
    pub async fn begin_serializable(&self) -> Result<DatabaseTransaction, DbErr> {
        let level = (self.backend == Backend::Postgres).then_some(sea_orm::IsolationLevel::Serializable);
        self.primary.begin_with_options(self.tx_options(level)).await
    }

    fn tx_options(&self, isolation_level: Option<sea_orm::IsolationLevel>) -> TransactionOptions {
        write_tx_options(self.backend, isolation_level)
    }

    /// Applies pending migrations; `_lock` proves no other instance is doing the same.
    pub async fn migrate_holding(&self, _lock: &crate::setup::SetupLock) -> Result<(), StoreError> {
        crate::migrations::Migrator::up(&self.primary, None).await.map_err(StoreError::Migrate)
    }

    pub(crate) fn primary_settings(&self) -> &DatabaseSettings {
        &self.primary_settings
    }

    /// Number of migrations not yet applied (0 = schema is current).
    pub async fn pending_migrations(&self) -> Result<usize, DbErr> {
        Ok(crate::migrations::Migrator::get_pending_migrations(&self.primary).await?.len())
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.primary.ping().await
    }

    pub async fn close(self) {
        if let Some(stop) = &self.checkpointer {
            stop.store(true, Ordering::Relaxed);
        }
        let _ = self.replica.close_by_ref().await;
        let _ = self.primary.close_by_ref().await;
    }

    pub async fn execute_raw(&self, sql: &str) -> Result<(), DbErr> {
        self.primary.execute_unprepared(sql).await.map(|_| ())
    }
}

/// A write transaction's options: on SQLite `BEGIN IMMEDIATE` (see [`Db::begin`]).
pub(crate) fn write_tx_options(backend: Backend, isolation_level: Option<sea_orm::IsolationLevel>) -> TransactionOptions {
    TransactionOptions {
        isolation_level,
        access_mode: None,
        sqlite_transaction_mode: (backend == Backend::Sqlite).then_some(sea_orm::SqliteTransactionMode::Immediate),
    }
}

fn is_in_memory(s: &DatabaseSettings) -> bool {
    s.url.expose().contains(":memory:") || s.url.expose().contains("mode=memory")
}

/// A SQLite file's writer leaves checkpoints to [`crate::checkpoint`] (see `connect_pool`),
/// so every such primary starts one; `None` elsewhere (an in-memory database has no WAL).
fn start_checkpointer(primary: &DatabaseSettings) -> Option<Arc<AtomicBool>> {
    if primary.backend != Backend::Sqlite || is_in_memory(primary) {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(crate::checkpoint::run(primary.url.expose().to_owned(), stop.clone()));
    Some(stop)
}

async fn connect_pool(s: &DatabaseSettings, pool: &'static str, counts: Arc<[AtomicU64; 2]>) -> Result<DatabaseConnection, StoreError> {
    let mut opt = ConnectOptions::new(s.url.expose().to_owned());
    opt.max_connections(s.max_connections)
        .min_connections(s.min_connections.min(s.max_connections))
        .acquire_timeout(s.acquire_timeout)
        .connect_timeout(s.connect_timeout)
        .idle_timeout(Duration::from_secs(600))
        .sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Trace)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, s.slow_query);
    match s.backend {
        Backend::Postgres => {
            opt.statement_timeout(s.statement_timeout);
        }
        // A connection to a local file cannot drop the way a network connection can, so the
        // ping sqlx sends before handing one out only costs: on SQLite it is one more hop to
        // the connection's thread, and for the one writer it adds to the time writers queue.
        Backend::Sqlite if pool == "readers" => {
            opt.test_before_acquire(false);
            let busy = s.acquire_timeout.max(Duration::from_secs(5));
            // The writer made the file and switched it to WAL (a setting the file keeps).
            opt.map_sqlx_sqlite_opts(move |o| o.read_only(true).foreign_keys(true).busy_timeout(busy));
        }
        Backend::Sqlite => {
            // The one writer connection is never replaced: a file connection does not go
            // stale, and a new one would be opened off the lane (see `connect_sqlite`).
            opt.test_before_acquire(false).idle_timeout(None).max_lifetime(None);
            let busy = s.acquire_timeout.max(Duration::from_secs(5));
            opt.map_sqlx_sqlite_opts(move |o| {
                o.create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(busy)
                    // The checkpointer keeps the WAL short; the writer checkpoints only if it fails.
                    .pragma("wal_autocheckpoint", crate::checkpoint::WRITER_BACKSTOP_PAGES.to_string())
            });
        }
    }
    let mut conn = match Database::connect(opt.clone()).await {
        Ok(c) => c,
        // The replica may be down at start-up: connect lazily and let the monitor decide.
        Err(e) if pool == "replica" => {
            tracing::warn!(error = %e, "read replica unreachable at start-up");
            opt.connect_lazy(true);
            Database::connect(opt).await.map_err(StoreError::Connect)?
        }
        Err(e) => return Err(StoreError::Connect(e)),
    };
    let slot = usize::from(matches!(pool, "replica" | "readers"));
    conn.set_metric_callback(move |info| {
        counts[slot].fetch_add(1, Ordering::Relaxed);
        // Runs for every statement: no allocation to find its kind.
        let first = info.statement.sql.split_whitespace().next().unwrap_or_default();
        let op = ["SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK"]
            .into_iter()
            .find(|op| first.eq_ignore_ascii_case(op))
            .unwrap_or("OTHER");
        let outcome = if info.failed { "error" } else { "ok" };
        metrics::counter!("valuva_db_queries_total", "operation" => op, "outcome" => outcome, "pool" => pool).increment(1);
        metrics::histogram!("valuva_db_query_duration_seconds", "operation" => op).record(info.elapsed.as_secs_f64());
    });
    Ok(conn)
}

pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A row this write refers to does not exist (any more).
pub fn is_foreign_key_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
}

/// PostgreSQL serialization failure (40001) or deadlock (40P01), or SQLite busy: the
/// transaction did nothing and may simply run again.
pub fn is_retryable(err: &DbErr) -> bool {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e)) | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))) = err else {
        return false;
    };
    let sqlx::Error::Database(db) = &**e else { return false };
    // 40001/40P01: PostgreSQL; 5/6 (SQLITE_BUSY/LOCKED) and their extended codes: SQLite.
    matches!(db.code().as_deref(), Some("40001" | "40P01" | "5" | "6" | "261" | "517" | "262"))
}

impl Db {
    /// The backend's full-text search for products.
    pub fn product_search(&self) -> &'static dyn crate::search::ProductSearch {
        crate::search::product_search(self.backend)
    }
}

impl Db {
    /// The number for an order about to be inserted, when the caller must set it. PostgreSQL:
    /// `None`, the column's default draws it from a sequence (never contended) as the row is
    /// inserted, and the insert returns it. SQLite: a counter row, bumped inside the caller's
    /// (already exclusive) write transaction.
    pub async fn preset_order_number<C: ConnectionTrait>(&self, conn: &C) -> Result<Option<i64>, DbErr> {
        if self.backend == Backend::Postgres {
            return Ok(None);
        }
        let sql = "UPDATE counters SET value = value + 1 WHERE name = 'order_number' RETURNING value";
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("order number counter".into()))?;
        row.try_get::<i64>("", "value").map(Some)
    }
}

impl Db {
    /// For a transaction that scans a queue-like table (the outbox, unsealed audit rows) for
    /// its few pending rows: PostgreSQL is told to walk indexes rather than use a bitmap or a
    /// sequential scan. Rows that leave the queue leave dead index entries behind until
    /// VACUUM; a plain index scan visits each once and marks it dead, a bitmap scan never
    /// does and revisits all of them on every poll (1.8 ms per outbox poll after 6,000
    /// orders, 0.05 ms with this). The planner picks the bitmap anyway, because statistics of
    /// tables that churn this fast are always stale. SQLite has no such planner choice.
    pub async fn prefer_index_walks(&self, tx: &DatabaseTransaction) -> Result<(), DbErr> {
        if self.backend == Backend::Postgres {
            tx.execute_unprepared("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off").await?;
        }
        Ok(())
    }
}

/// Connections of one pool right now.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

fn stats(conn: &DatabaseConnection, backend: Backend) -> PoolStats {
    match backend {
        Backend::Postgres => {
            let p = conn.get_postgres_connection_pool();
            PoolStats { size: p.size(), idle: p.num_idle() as u32, max: p.options().get_max_connections() }
        }
        Backend::Sqlite => {
            let p = conn.get_sqlite_connection_pool();
            PoolStats { size: p.size(), idle: p.num_idle() as u32, max: p.options().get_max_connections() }
        }
    }
}

impl Db {
    /// (primary, replica) pool statistics; the replica is `None` when reads use the primary.
    pub fn pool_stats(&self) -> (PoolStats, Option<PoolStats>) {
        let primary = stats(&self.primary, self.backend);
        let replica = (self.replica_state.is_some() || self.local_readers).then(|| stats(&self.replica, self.backend));
        (primary, replica)
    }
}
