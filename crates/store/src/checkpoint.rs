//! SQLite's WAL checkpoints, run beside the one writer instead of by it.
//!
//! By default the connection that commits a transaction taking the WAL past 1,000 pages then
//! copies the WAL back into the database file, fsyncing both, before it is free again. On the
//! one writer connection every write waited meanwhile: under 64 concurrent checkouts a
//! checkpoint came every ~0.4 s and its two fsyncs alone took 20–30 ms (strace of the writer
//! thread). A PASSIVE checkpoint takes no lock that writers need, so a connection of its own
//! runs it on a timer while the writer keeps committing; the writer's own automatic checkpoint
//! stays as a backstop, at a size the timer keeps the WAL well below.

use sea_orm::sqlx::{self, Connection, sqlite::SqliteConnectOptions};
use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// How often the checkpointer copies committed pages back. Each checkpoint costs two fsyncs,
/// whatever it copies; between two of them the WAL grows by what the writer commits.
const EVERY: Duration = Duration::from_millis(200);

/// The writer's own automatic checkpoint, in pages (of 4 KiB): only reached if the
/// checkpointer falls behind or fails.
pub(crate) const WRITER_BACKSTOP_PAGES: u32 = 16_384;

/// Runs until `stop` is set ([`crate::Db::close`]) or every [`crate::Db`] holding it is
/// dropped. Errors are logged and the next tick tries again.
pub(crate) async fn run(url: String, stop: Arc<AtomicBool>) {
    let mut conn = None;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) || Arc::strong_count(&stop) == 1 {
            break;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&url).await {
                Ok(c) => conn.insert(c),
                Err(error) => {
                    tracing::warn!(%error, "WAL checkpointer cannot open the database");
                    continue;
                }
            },
        };
        // (busy, frames in the WAL, frames copied back); busy = 1 when a reader's snapshot or
        // another checkpoint stopped it short, which the next tick catches up on.
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(c).await {
            Ok((_, frames, _)) => metrics::gauge!("valuva_sqlite_wal_frames").set(frames as f64),
            Err(error) => {
                tracing::warn!(%error, "WAL checkpoint failed");
                conn = None;
            }
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

async fn connect(url: &str) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    sqlx::SqliteConnection::connect_with(&opts).await
}
