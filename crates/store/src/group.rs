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
//! others run again as a new group (they had not happened).
//!
//! Work that needs a transaction of its own (checkout: lock the cart, read its lines, reserve
//! stock, insert the order) joins a group too, as a [`Job`] inside a savepoint: its failure
//! (not enough stock) undoes its own statements only, and it runs again from the start if its
//! group is rolled back. Alone it would cost BEGIN, COMMIT and the hand-back ping on the one
//! writer of its own; in a group those are shared, and SAVEPOINT and RELEASE take their place.
//! One job per group needs no savepoint: run first, it fails by rolling back the group's
//! transaction, which then holds nothing else, before the rest run in a new one.
//! A panic in it rolls the group back like a failed write and resumes in its caller. Written
//! by hand: no crate batches writes of an ORM's connection this way.

use futures_util::{FutureExt, future::BoxFuture};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, Statement, TransactionTrait};
use std::{any::Any, panic::AssertUnwindSafe};
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

/// What ended a member's part in a group before the commit.
pub(crate) enum Failure {
    Db(DbErr),
    Panic(Box<dyn Any + Send>),
    /// A job run first, without a savepoint, failed: the transaction holds its statements only
    /// and is rolled back, and then the job's own outcome answers it.
    Refused,
}

/// Work of a transaction's worth in a group (see the module documentation).
pub(crate) trait Job: Send {
    /// Runs the work in `tx`, keeping its outcome for [`Self::answer`]: in a savepoint of its
    /// own, or when it runs `first` in the transaction, directly; `Ok(false)`: it ran first and
    /// failed, so the transaction must be rolled back. `Err`: the savepoint could not be taken
    /// or ended, which fails the group's transaction.
    fn run<'a>(&'a mut self, tx: &'a DatabaseTransaction, first: bool) -> BoxFuture<'a, Result<bool, DbErr>>;
    /// The transaction the last run was part of has ended as that run needed (committed, or
    /// rolled back after it refused first): the caller hears the outcome that run kept.
    fn answer(self: Box<Self>);
    fn failed(self: Box<Self>, why: Failure);
}

/// `work(state, tx)` as a [`Job`]; what it returned goes to `reply` once its transaction has ended.
struct InSavepoint<S, W, T, E> {
    state: S,
    work: W,
    kept: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<Result<T, E>, Failure>>,
}

impl<S, W, T, E> Job for InSavepoint<S, W, T, E>
where
    S: Send + Sync,
    W: for<'t> Fn(&'t S, &'t DatabaseTransaction) -> BoxFuture<'t, Result<T, E>> + Send + Sync,
    T: Send,
    E: Send,
{
    fn run<'a>(&'a mut self, tx: &'a DatabaseTransaction, first: bool) -> BoxFuture<'a, Result<bool, DbErr>> {
        Box::pin(async move {
            self.kept = None;
            let out = if first {
                (self.work)(&self.state, tx).await
            } else {
                let savepoint = tx.begin().await?;
                let out = (self.work)(&self.state, &savepoint).await;
                match out {
                    Ok(_) => savepoint.commit().await?,
                    Err(_) => savepoint.rollback().await?,
                }
                out
            };
            let keep = out.is_ok() || !first;
            self.kept = Some(out);
            Ok(keep)
        })
    }

    fn answer(self: Box<Self>) {
        let this = *self;
        if let Some(out) = this.kept {
            let _ = this.reply.send(Ok(out));
        }
    }

    fn failed(self: Box<Self>, why: Failure) {
        let _ = self.reply.send(Err(why));
    }
}

/// A member of a group: a single write, with its answer once it has run, or a job.
enum Queued {
    Write(Write, Option<Written>, oneshot::Sender<Result<Written, DbErr>>),
    Job(Box<dyn Job>),
}

impl Queued {
    async fn run(&mut self, tx: &DatabaseTransaction, first: bool) -> Result<(), Failure> {
        match self {
            Self::Write(write, done, _) => *done = Some(write.run(tx).await.map_err(Failure::Db)?),
            Self::Job(job) => {
                let ran = AssertUnwindSafe(job.run(tx, first)).catch_unwind().await.map_err(Failure::Panic)?;
                if !ran.map_err(Failure::Db)? {
                    return Err(Failure::Refused);
                }
            }
        }
        Ok(())
    }

    /// Its transaction has ended as it needed (see [`Job::answer`]): the caller hears.
    fn answer(self) {
        match self {
            Self::Write(_, Some(done), reply) => {
                let _ = reply.send(Ok(done));
            }
            Self::Write(_, None, reply) => {
                let _ = reply.send(Err(DbErr::Custom("a write of a committed group did not run".into())));
            }
            Self::Job(job) => job.answer(),
        }
    }

    fn failed(self, why: Failure) {
        match (self, why) {
            (Self::Write(_, _, reply), Failure::Db(e)) => {
                let _ = reply.send(Err(e));
            }
            // A write runs no code of its caller's and never runs without a transaction.
            (Self::Write(_, _, reply), Failure::Panic(_) | Failure::Refused) => {
                let _ = reply.send(Err(DbErr::Custom("a write of the group could not run".into())));
            }
            (Self::Job(job), why) => job.failed(why),
        }
    }
}

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
        self.queue.send(Queued::Write(write, None, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `work(&state, tx)` as a job of a group; its result once the group has committed.
    pub(crate) async fn transact<S, W, T, E>(&self, state: S, work: W) -> Result<Result<T, E>, DbErr>
    where
        S: Send + Sync + 'static,
        W: for<'t> Fn(&'t S, &'t DatabaseTransaction) -> BoxFuture<'t, Result<T, E>> + Send + Sync + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = InSavepoint { state, work, kept: None, reply };
        self.queue.send(Queued::Job(Box::new(job))).map_err(|_| stopped())?;
        match answer.await.map_err(|_| stopped())? {
            Ok(out) => Ok(out),
            Err(Failure::Db(e)) => Err(e),
            Err(Failure::Panic(p)) => std::panic::resume_unwind(p),
            Err(Failure::Refused) => Err(DbErr::Custom("a refused job was not answered with its outcome".into())),
        }
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

/// Runs and commits `group`, answering each member; see the module documentation.
async fn commit(writer: &DatabaseConnection, mut group: Vec<Queued>) {
    if let [Queued::Write(..)] = group.as_slice() {
        // Alone (no load): it commits by itself, without the BEGIN and COMMIT of a group.
        let Some(Queued::Write(write, _, reply)) = group.pop() else { return };
        let _ = reply.send(write.run(writer).await);
        return;
    }
    while !group.is_empty() {
        // A job goes first, where it needs no savepoint. The members were sent concurrently,
        // so their order carries no meaning.
        if let Some(j) = group.iter().position(|m| matches!(m, Queued::Job(_))) {
            group.swap(0, j);
        }
        let options = crate::db::write_tx_options(platform::config::Backend::Sqlite, None);
        let tx = match writer.begin_with_options(options).await {
            Ok(tx) => tx,
            Err(e) => return fail_all(group, &e),
        };
        let (i, why) = match run_all(&tx, &mut group).await {
            Ok(()) => {
                match tx.commit().await {
                    Ok(()) => group.into_iter().for_each(Queued::answer),
                    Err(e) => fail_all(group, &e),
                }
                return;
            }
            Err(failed) => failed,
        };
        if let Err(rollback) = tx.rollback().await {
            return fail_all(group, &rollback);
        }
        match why {
            Failure::Refused => group.remove(i).answer(),
            // Busy (another process holds the file's write lock past the busy timeout) is the
            // group's condition, not this write's: the rest would only wait for it in turn.
            Failure::Db(e) if crate::db::is_retryable(&e) => return fail_all(group, &e),
            why => group.remove(i).failed(why),
        }
    }
}

/// Every member of `group` in `tx`, in order; the first failure stops them, with its index.
async fn run_all(tx: &DatabaseTransaction, group: &mut [Queued]) -> Result<(), (usize, Failure)> {
    for (i, member) in group.iter_mut().enumerate() {
        member.run(tx, i == 0).await.map_err(|e| (i, e))?;
    }
    Ok(())
}

/// A failure of the group as a whole (BEGIN, COMMIT, a busy file): every member hears it.
fn fail_all(group: Vec<Queued>, e: &DbErr) {
    tracing::error!(error = %e, members = group.len(), "a group of SQLite writes failed");
    for member in group {
        member.failed(Failure::Db(DbErr::Custom(format!("group commit failed: {e}"))));
    }
}
