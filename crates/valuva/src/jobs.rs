//! The job worker's composition: the mailer, every job kind's handler, the recurring
//! housekeeping schedule. `serve` runs one worker in process (WORKER_ENABLED); `valuva worker`
//! runs one on its own.

use anyhow::Context;
use http_api::AppState;
use services::{
    ServiceResult,
    jobs::{
        schedule::Schedule,
        worker::{Handler, JobError, Registry, Worker, WorkerSettings},
    },
    notifications::{Mailer, jobs as email, templates},
};
use std::{sync::Arc, time::Duration};

/// A housekeeping task as a job handler.
struct Task<F>(F);

#[async_trait::async_trait]
impl<F, Fut, T> Handler for Task<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = ServiceResult<T>> + Send,
{
    async fn run(&self, _: serde_json::Value) -> Result<(), JobError> {
        (self.0)().await.map(|_| ()).map_err(JobError::from)
    }
}

pub fn mailer(config: &platform::Config) -> anyhow::Result<Mailer> {
    let m = match &config.smtp_url {
        Some(url) => Mailer::smtp(url.expose(), &config.email_from, Arc::new(config.resilience(platform::config::Outbound::Email))),
        None => Mailer::files(&config.email_outbox_dir, &config.email_from),
    };
    m.map_err(anyhow::Error::msg).context("configuring email")
}

pub fn registry(state: &AppState, mailer: Mailer) -> Registry {
    let (db, orders, carts, config) = (state.db.clone(), state.orders.clone(), state.carts.clone(), state.config.clone());
    let retention = chrono::TimeDelta::days(config.audit_retention_days as i64);
    let job_retention = chrono::TimeDelta::days(config.job_retention_days as i64);
    Registry::default()
        .with(
            email::ORDER_CONFIRMATION,
            email::OrderEmail { orders: orders.clone(), mailer: mailer.clone(), template: templates::order_confirmation },
        )
        .with(
            email::SHIPPING_NOTICE,
            email::OrderEmail { orders: orders.clone(), mailer: mailer.clone(), template: templates::shipping_notice },
        )
        .with(email::PASSWORD_RESET, email::PasswordResetEmail { mailer: mailer.clone() })
        .with(email::BACK_IN_STOCK, email::BackInStockEmail { db: db.clone(), mailer: mailer.clone() })
        .with(email::LOW_STOCK, email::LowStockEmail { db: db.clone(), mailer })
        .with(
            "housekeeping.expire_reservations",
            Task(move || {
                let orders = orders.clone();
                async move { orders.expire_overdue().await }
            }),
        )
        .with(
            "housekeeping.purge_carts",
            Task(move || {
                let carts = carts.clone();
                async move { carts.purge_expired().await }
            }),
        )
        .with("housekeeping.purge_idempotency_keys", {
            let db = db.clone();
            Task(move || {
                let db = db.clone();
                async move { services::idempotency::purge_older_than(&db, chrono::TimeDelta::hours(24)).await }
            })
        })
        .with("housekeeping.audit_retention", {
            let db = db.clone();
            Task(move || {
                let db = db.clone();
                async move {
                    let meta = services::RequestMeta::system();
                    services::audit::prune(&db, &meta, chrono::Utc::now() - retention).await
                }
            })
        })
        .with(
            "housekeeping.purge_jobs",
            Task(move || {
                let db = db.clone();
                async move { services::jobs::purge_succeeded(&db, chrono::Utc::now() - job_retention).await }
            }),
        )
}

/// When each housekeeping job runs (cron; six fields = with seconds).
pub fn schedule() -> Schedule {
    Schedule::default()
        .every("housekeeping.expire_reservations", "*/15 * * * * *")
        .and_then(|s| s.every("housekeeping.purge_carts", "7 * * * *"))
        .and_then(|s| s.every("housekeeping.purge_idempotency_keys", "17 * * * *"))
        .and_then(|s| s.every("housekeeping.audit_retention", "30 3 * * *"))
        .and_then(|s| s.every("housekeeping.purge_jobs", "45 3 * * *"))
        .expect("the built-in schedules parse")
}

/// Connections of the pool that a worker inside a serving instance has to itself
/// ([`store::Db::with_own_pool`]) for dispatching events, claiming jobs and recording their
/// outcomes: a few short statements at a time. The handlers' own reads and writes use the
/// services, and so the instance's pool.
pub const OWN_POOL_CONNECTIONS: u32 = 4;

/// A worker whose queue statements go through `db` (the instance's pool, or one of its own).
pub fn worker(state: &AppState, db: store::Db) -> anyhow::Result<Worker> {
    let c = &state.config;
    let settings = WorkerSettings {
        lease: Duration::from_secs(c.job_lease_seconds),
        batch: c.job_concurrency,
        retry_base: Duration::from_millis(c.job_retry_base_ms),
    };
    Ok(Worker::new(db, registry(state, mailer(c)?), settings))
}

/// Runs a worker until `stop`, its queue statements going through `db`.
pub fn spawn(state: &AppState, db: store::Db, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let worker = worker(state, db)?;
    let idle = Duration::from_millis(state.config.job_poll_ms);
    Ok(tokio::spawn(worker.run(schedule(), idle, stop)))
}
