//! Claims due jobs and runs them. Several workers (in-process or `valuva worker`, on any
//! number of machines) share one queue: a claim is one conditional update, a running job's
//! lease is renewed while it runs, and only the holder of the latest claim records the outcome.

use super::{DEAD, QUEUED, RUNNING, SUCCEEDED};

use crate::ServiceResult;
use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, QueryFilter,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query},
};
use std::{collections::HashMap, sync::Arc, time::Duration};
use store::{Db, entities::jobs};
use tokio::task::{JoinError, JoinSet};

/// A handler's task, stopped when the job's own task is (worker shutdown).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a job failed; `retry: false` sends it straight to the dead-letter list.
#[derive(Debug)]
pub struct JobError {
    pub message: String,
    pub retry: bool,
}

impl JobError {
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self { message: message.to_string(), retry: true }
    }
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self { message: message.to_string(), retry: false }
    }
}

impl From<crate::ServiceError> for JobError {
    fn from(e: crate::ServiceError) -> Self {
        use crate::ServiceError as E;
        let retry = matches!(e, E::Unavailable { .. } | E::Contention(_) | E::Internal(_));
        Self { message: e.to_string(), retry }
    }
}

/// What a job kind does with its payload.
#[async_trait::async_trait]
pub trait Handler: Send + Sync {
    async fn run(&self, payload: serde_json::Value) -> Result<(), JobError>;
}

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    pub fn with(mut self, kind: &'static str, handler: impl Handler + 'static) -> Self {
        self.handlers.insert(kind, Arc::new(handler));
        self
    }
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub lease: Duration,
    /// Jobs claimed (and run concurrently) per round.
    pub batch: u64,
    /// First retry delay; attempt n waits about base·2^(n-1) (jittered), at most an hour.
    pub retry_base: Duration,
}

/// A job run to its end: its claim, the handler's result, when it started.
type Finished = (Claim, Result<(), JobError>, std::time::Instant);

/// One claimed job: the claim count fences its outcome.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: jobs::Model,
}

#[derive(Clone)]
pub struct Worker {
    db: Db,
    registry: Arc<Registry>,
    settings: WorkerSettings,
    pub id: String,
}

impl Worker {
    pub fn new(db: Db, registry: Registry, settings: WorkerSettings) -> Self {
        let id = format!("{}-{}", hostname(), &uuid::Uuid::now_v7().simple().to_string()[20..]);
        Self { db, registry: Arc::new(registry), settings, id }
    }

    /// Claims a batch of due jobs (see [`Self::claim_up_to`]).
    pub async fn claim(&self) -> ServiceResult<Vec<Claim>> {
        self.claim_up_to(self.settings.batch).await
    }

    /// Claims up to `batch` due jobs: queued ones whose time has come, then, while the batch
    /// has room, running ones whose worker stopped renewing its lease.
    async fn claim_up_to(&self, batch: u64) -> ServiceResult<Vec<Claim>> {
        let now = Utc::now();
        let lease = now + TimeDelta::from_std(self.settings.lease).unwrap_or(TimeDelta::seconds(30));
        // Two statements, each an ordered walk of its own index that stops at the batch size.
        // One condition with OR made PostgreSQL combine bitmaps of both indexes instead, and a
        // bitmap scan visits every entry a finished job left behind until VACUUM removes it:
        // 4 ms per claim after a few thousand orders with autovacuum off.
        let tx = self.db.begin().await?;
        let mut claimed = self.claim_where(&tx, now, lease, QUEUED, jobs::Column::RunAt, batch).await?;
        let room = batch.saturating_sub(claimed.len() as u64);
        if room > 0 {
            claimed.extend(self.claim_where(&tx, now, lease, RUNNING, jobs::Column::LockedUntil, room).await?);
        }
        tx.commit().await?;
        let (claimed, dead): (Vec<_>, Vec<_>) = claimed.into_iter().partition(|j| j.status == RUNNING);
        for job in dead {
            tracing::warn!(job = %job.id, kind = %job.kind, "a job's lease lapsed on its last attempt: dead");
            metrics::counter!("valuva_jobs_total", "kind" => job.kind, "outcome" => "dead").increment(1);
        }
        Ok(claimed.into_iter().map(|job| Claim { job }).collect())
    }

    /// Claims up to `limit` jobs in `status` whose `due` column has passed, earliest first.
    async fn claim_where(
        &self,
        tx: &sea_orm::DatabaseTransaction,
        now: DateTime<Utc>,
        lease: DateTime<Utc>,
        status: &str,
        due: jobs::Column,
        limit: u64,
    ) -> ServiceResult<Vec<jobs::Model>> {
        let ids = Query::select()
            .column(jobs::Column::Id)
            .from(jobs::Entity)
            .cond_where(Condition::all().add(jobs::Column::Status.eq(status)).add(due.lte(now)))
            .order_by(due, Order::Asc)
            .limit(limit)
            // PostgreSQL: concurrent workers skip each other's rows; SQLite has one writer.
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        // A job whose lease lapsed on its last attempt (its worker died, or the handler hung
        // past the lease) is dead, not claimed again: it would otherwise run for ever.
        let exhausted = || Expr::col(jobs::Column::Attempts).gte(Expr::col(jobs::Column::MaxAttempts));
        Ok(jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, Expr::case(exhausted(), DEAD).finally(RUNNING).into())
            .col_expr(
                jobs::Column::LastError,
                Expr::case(exhausted(), "its lease lapsed on the last attempt").finally(Expr::col(jobs::Column::LastError)).into(),
            )
            .col_expr(jobs::Column::LockedBy, Expr::value(self.id.clone()))
            .col_expr(jobs::Column::LockedUntil, Expr::value(lease))
            .col_expr(jobs::Column::Attempts, Expr::col(jobs::Column::Attempts).add(1))
            .col_expr(jobs::Column::Claims, Expr::col(jobs::Column::Claims).add(1))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .filter(jobs::Column::Id.in_subquery(ids))
            .exec_with_returning(tx)
            .await?)
    }

    /// Only the latest claimant of a job can change it.
    fn fenced(&self, c: &Claim) -> Condition {
        Condition::all()
            .add(jobs::Column::Id.eq(c.job.id))
            .add(jobs::Column::Status.eq(RUNNING))
            .add(jobs::Column::LockedBy.eq(self.id.clone()))
            .add(jobs::Column::Claims.eq(c.job.claims))
    }

    /// Records success; false when this worker no longer holds the job (it lost the lease and
    /// another worker took over).
    pub async fn complete(&self, c: &Claim) -> ServiceResult<bool> {
        Ok(!self.complete_many(&[c]).await?.is_empty())
    }

    /// Records the success of several jobs in one statement; returns the ids recorded (a job
    /// missing from them was fenced out).
    async fn complete_many(&self, claims: &[&Claim]) -> ServiceResult<Vec<uuid::Uuid>> {
        let now = Utc::now();
        let fenced = claims.iter().fold(Condition::any(), |any, c| any.add(self.fenced(c)));
        let done = jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, Expr::value(SUCCEEDED))
            .col_expr(jobs::Column::FinishedAt, Expr::value(now))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .col_expr(jobs::Column::LockedUntil, Expr::value(Option::<chrono::DateTime<Utc>>::None))
            .filter(fenced)
            .exec_with_returning(self.db.primary())
            .await?;
        Ok(done.into_iter().map(|j| j.id).collect())
    }

    /// Records a failure: back to the queue after a backoff, or dead.
    pub async fn fail(&self, c: &Claim, e: &JobError) -> ServiceResult<bool> {
        let now = Utc::now();
        let dead = !e.retry || c.job.attempts >= c.job.max_attempts;
        let exp = (c.job.attempts - 1).clamp(0, 16) as u32;
        let cap = self.settings.retry_base.saturating_mul(1 << exp).min(Duration::from_secs(3600));
        // Half fixed, half random: spread retries without ever retrying at once.
        let delay = cap / 2 + Duration::from_millis(rand::random::<u64>() % (cap.as_millis() as u64 / 2 + 1));
        let message: String = e.message.chars().take(2000).collect();
        let mut update = jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, Expr::value(if dead { DEAD } else { QUEUED }))
            .col_expr(jobs::Column::LastError, Expr::value(message))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .col_expr(jobs::Column::LockedUntil, Expr::value(Option::<chrono::DateTime<Utc>>::None));
        update = if dead {
            update.col_expr(jobs::Column::FinishedAt, Expr::value(now))
        } else {
            update.col_expr(jobs::Column::RunAt, Expr::value(now + TimeDelta::from_std(delay).unwrap_or_default()))
        };
        Ok(update.filter(self.fenced(c)).exec(self.db.primary()).await?.rows_affected == 1)
    }

    /// Extends the lease of a job still running here.
    async fn renew(&self, c: &Claim) -> ServiceResult<bool> {
        let until = Utc::now() + TimeDelta::from_std(self.settings.lease).unwrap_or(TimeDelta::seconds(30));
        let done = jobs::Entity::update_many()
            .col_expr(jobs::Column::LockedUntil, Expr::value(until))
            .filter(self.fenced(c))
            .exec(self.db.primary())
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Runs one claimed job's handler, renewing the lease meanwhile.
    async fn run_handler(&self, c: &Claim) -> Result<(), JobError> {
        let payload: serde_json::Value = serde_json::from_str(&c.job.payload).unwrap_or_default();
        match self.registry.handlers.get(c.job.kind.as_str()).cloned() {
            None => Err(JobError::permanent(format!("no handler for job kind {}", c.job.kind))),
            Some(h) => {
                // On a task of its own, so that a panic is an outcome like any failure (retried,
                // then dead) instead of a lost claim whose lease lapses and runs it again.
                let run = AbortOnDrop(tokio::spawn(async move { h.run(payload).await }));
                tokio::pin!(run);
                let mut renew = tokio::time::interval(self.settings.lease / 3);
                renew.tick().await;
                loop {
                    tokio::select! {
                        r = &mut run.0 => break r.unwrap_or_else(|e| Err(JobError::retry(format!("the handler {}", if e.is_panic() { "panicked" } else { "was cancelled" })))),
                        _ = renew.tick() => { let _ = self.renew(c).await; }
                    }
                }
            }
        }
    }

    /// Records the outcomes of jobs that finished together: every success in one statement
    /// (one per job before: under checkout load, one more statement per order), failures one
    /// by one.
    async fn record(&self, finished: Vec<Finished>) {
        let succeeded: Vec<&Claim> = finished.iter().filter(|(_, r, _)| r.is_ok()).map(|(c, _, _)| c).collect();
        let recorded = if succeeded.is_empty() { Ok(Vec::new()) } else { self.complete_many(&succeeded).await };
        let recorded = recorded.map_err(|e| {
            tracing::warn!(error = %e, "recording finished jobs failed; their leases will lapse and they run again");
        });
        for (c, result, started) in &finished {
            let outcome = match (result, &recorded) {
                (Ok(()), Err(())) => "unrecorded",
                (Ok(()), Ok(ids)) if ids.contains(&c.job.id) => "succeeded",
                (Ok(()), Ok(_)) => "fenced",
                (Err(e), _) => {
                    tracing::warn!(job = %c.job.id, kind = c.job.kind, attempt = c.job.attempts, error = %e.message, "job failed");
                    let dead = !e.retry || c.job.attempts >= c.job.max_attempts;
                    match self.fail(c, e).await {
                        Ok(true) if dead => "dead",
                        Ok(true) => "retried",
                        Ok(false) => "fenced",
                        Err(e) => {
                            tracing::warn!(job = %c.job.id, error = %e, "recording a failed job failed; its lease will lapse");
                            "unrecorded"
                        }
                    }
                }
            };
            if outcome == "fenced" {
                tracing::warn!(job = %c.job.id, kind = c.job.kind, "job outcome not recorded: another worker holds it now");
            }
            let kind = c.job.kind.clone();
            metrics::counter!("valuva_jobs_total", "kind" => kind.clone(), "outcome" => outcome).increment(1);
            metrics::histogram!("valuva_job_duration_seconds", "kind" => kind).record(started.elapsed().as_secs_f64());
        }
    }

    /// Starts a claimed job on a task of its own: it runs on whether or not its worker is
    /// polling, so a job holding a connection that the worker itself waits for (SQLite's one
    /// writer) always finishes. A panic ends the task, not the worker.
    fn start(&self, jobs: &mut JoinSet<Finished>, c: Claim) {
        let w = self.clone();
        jobs.spawn(async move {
            let started = std::time::Instant::now();
            let result = w.run_handler(&c).await;
            (c, result, started)
        });
    }

    /// Records `first` and every other job already finished, in one go.
    async fn record_finished(&self, jobs: &mut JoinSet<Finished>, first: Option<Result<Finished, JoinError>>) {
        let mut finished = Vec::new();
        for joined in first.into_iter().chain(std::iter::from_fn(|| jobs.try_join_next())) {
            match joined {
                Ok(f) => finished.push(f),
                // Its lease lapses and another round runs it again.
                Err(e) => tracing::error!(error = %e, "a job's task panicked or was cancelled"),
            }
        }
        if !finished.is_empty() {
            self.record(finished).await;
        }
    }

    /// One round: claim and run (concurrently) what is due, and wait for all of it. Returns
    /// how many ran. Outcomes are recorded as jobs finish, never held back by a slower job.
    pub async fn run_once(&self) -> ServiceResult<usize> {
        let claims = self.claim().await?;
        let n = claims.len();
        let mut jobs = JoinSet::new();
        for c in claims {
            self.start(&mut jobs, c);
        }
        while let Some(first) = jobs.join_next().await {
            self.record_finished(&mut jobs, Some(first)).await;
        }
        Ok(n)
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "worker".into())
}

impl Worker {
    /// Until `stop`: turn outbox events into jobs, enqueue scheduled slots, and keep up to
    /// `batch` jobs running, claiming more as soon as some finish (rounds that waited for
    /// their slowest job fell behind checkout under load: each round's claim and dispatch
    /// wait for pooled connections like any request). Polls every `idle` when there is
    /// nothing to do. Stops between jobs, never inside one: running jobs finish first.
    pub async fn run(self, schedule: super::schedule::Schedule, idle: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut schedule = schedule;
        let mut jobs = JoinSet::new();
        tracing::info!(worker = %self.id, "job worker started");
        while !*stop.borrow() {
            let dispatched = crate::outbox::dispatch(&self.db, 100).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "outbox dispatch failed; retrying");
                0
            });
            if let Err(e) = schedule.enqueue_due(&self.db).await {
                tracing::warn!(error = %e, "scheduling recurring jobs failed; retrying");
            }
            let room = self.settings.batch.saturating_sub(jobs.len() as u64);
            let claims = if room == 0 {
                Vec::new()
            } else {
                self.claim_up_to(room).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "claiming jobs failed; retrying");
                    Vec::new()
                })
            };
            // With a slot free, more may be waiting when events came in or the claim filled
            // every free slot: go round again at once.
            let more = room > 0 && (dispatched > 0 || claims.len() as u64 == room);
            for c in claims {
                self.start(&mut jobs, c);
            }
            let first = if more {
                None
            } else {
                tokio::select! {
                    Some(done) = jobs.join_next() => Some(done),
                    _ = tokio::time::sleep(idle) => None,
                    _ = stop.changed() => None,
                }
            };
            self.record_finished(&mut jobs, first).await;
        }
        while let Some(done) = jobs.join_next().await {
            self.record_finished(&mut jobs, Some(done)).await;
        }
        tracing::info!(worker = %self.id, "job worker stopped");
    }
}
