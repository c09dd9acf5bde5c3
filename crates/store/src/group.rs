//! Group commit of single writes on SQLite's one writer connection.
//!
//! A write that is one statement (or one string of statements) on its own costs the writer two
//! hand-offs to its connection's thread: the statement, and the ping sqlx sends as the
//! connection goes back to its pool; and its commit appends every page it touched to the WAL.
//! Cart writes are all like that (create, add a line, PATCH), and under load many are waiting
//! at once. Here the writes queued at one moment run in one transaction: one statement each,
//! plus one BEGIN, COMMIT and ping for all of them, and pages they share (a table's last leaf,
//! an index page) reach the WAL once. Nobody hears back before the commit, so what a write
//! returned is durable, and visible to the read-only pool, by the time it is answered.
//!
//! A statement that fails (a unique violation, say) would leave its neighbours' fate tied to
//! a half-done transaction: the group is rolled back, the failure goes to its writer, and the
//! others run again as a new group (they had not happened). Written by hand: no crate batches
//! writes of an ORM's connection this way.

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, Statement, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

/// Writes run per transaction at most: a bound on how long the first of them waits.
const MAX_GROUP: usize = 64;

/// One write: a statement (or string of statements) whose rows come back (`RETURNING`), or
/// whose count of changed rows does.
#[derive(Debug)]
pub enum Write {
    Rows(Statement),
    Count(Statement),
}

#[derive(Debug)]
pub enum Written {
    Rows(Vec<QueryResult>),
    Count(u64),
}

impl Write {
    pub(crate) async fn run<C: ConnectionTrait>(&self, conn: &C) -> Result<Written, DbErr> {
        match self {
            Self::Rows(stmt) => conn.query_all_raw(stmt.clone()).await.map(Written::Rows),
            Self::Count(stmt) => conn.execute_raw(stmt.clone()).await.map(|r| Written::Count(r.rows_affected())),
        }
    }
}

type Queued = (Write, oneshot::Sender<Result<Written, DbErr>>);

/// The sending side, held by every [`crate::Db`] of a SQLite file; the committer stops when
/// the last is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<Queued>,
}

impl Committer {
    /// Starts the committer on `lane`, writing through `writer` (the one writer connection).
    pub(crate) fn start(lane: &crate::lane::Lane, writer: DatabaseConnection) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        lane.spawn(run(writer, rx));
        Self { queue }
    }

    pub(crate) async fn write(&self, write: Write) -> Result<Written, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((write, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> DbErr {
    DbErr::Custom("the SQLite write committer has stopped".into())
}

async fn run(writer: DatabaseConnection, mut rx: mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP
            && let Ok(next) = rx.try_recv()
        {
            group.push(next);
        }
        metrics::histogram!("valuva_sqlite_write_group_size").record(group.len() as f64);
        commit(&writer, group).await;
    }
}

/// Runs and commits `group`, answering each writer; see the module documentation.
async fn commit(writer: &DatabaseConnection, mut group: Vec<Queued>) {
    if group.len() == 1 {
        // Alone (no load): it commits by itself, without the BEGIN and COMMIT of a group.
        let (write, reply) = group.remove(0);
        let _ = reply.send(write.run(writer).await);
        return;
    }
    while !group.is_empty() {
        let options = crate::db::write_tx_options(platform::config::Backend::Sqlite, None);
        let tx = match writer.begin_with_options(options).await {
            Ok(tx) => tx,
            Err(e) => return fail_all(group, &e),
        };
        let (i, e) = match run_all(&tx, &group).await {
            Ok(done) => {
                match tx.commit().await {
                    Ok(()) => group.into_iter().zip(done).for_each(|((_, reply), w)| {
                        let _ = reply.send(Ok(w));
                    }),
                    Err(e) => fail_all(group, &e),
                }
                return;
            }
            Err(failed) => failed,
        };
        if let Err(rollback) = tx.rollback().await {
            return fail_all(group, &rollback);
        }
        // Busy (another process holds the file's write lock past the busy timeout) is the
        // group's condition, not this write's: the rest would only wait for it in turn.
        if crate::db::is_retryable(&e) {
            return fail_all(group, &e);
        }
        let (_, reply) = group.remove(i);
        let _ = reply.send(Err(e));
    }
}

/// Every write of `group` in `tx`, in order; the first failure stops them, with its index.
async fn run_all(tx: &DatabaseTransaction, group: &[Queued]) -> Result<Vec<Written>, (usize, DbErr)> {
    let mut done = Vec::with_capacity(group.len());
    for (i, (write, _)) in group.iter().enumerate() {
        done.push(write.run(tx).await.map_err(|e| (i, e))?);
    }
    Ok(done)
}

/// A failure of the group as a whole (BEGIN, COMMIT, a busy file): every writer hears it.
fn fail_all(group: Vec<Queued>, e: &DbErr) {
    tracing::error!(error = %e, writes = group.len(), "a group of SQLite writes failed");
    for (_, reply) in group {
        let _ = reply.send(Err(DbErr::Custom(format!("group commit failed: {e}"))));
    }
}
