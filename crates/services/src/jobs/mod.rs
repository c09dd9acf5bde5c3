//! The durable job queue, in the application database (written by hand: no queue crate
//! enqueues inside a sea-orm transaction on both SQLite and PostgreSQL). A job is a row:
//! enqueued in the caller's transaction, claimed with a lease (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; SQLite's single writer serialises claims), retried with backoff, dead after
//! `max_attempts`. Delivery is at least once: a worker that dies mid-job loses its lease and
//! the job runs again; the claim count fences out a stale worker's late outcome.

pub mod schedule;
pub mod worker;

use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    pagination::{CursorCodec, Page, PageRequest},
};
use chrono::{DateTime, Utc};
use domain::AuditAction;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::OnConflict};
use serde::Serialize;
use store::{Db, entities::jobs};
use utoipa::ToSchema;
use uuid::Uuid;

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const DEAD: &str = "dead";

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// At most one job ever has this key (a scheduled slot, one event's delivery).
    pub dedupe_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: &'static str, payload: serde_json::Value) -> Self {
        Self { kind, payload, run_at: None, max_attempts: 8, dedupe_key: None }
    }

    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// Enqueues in `conn`'s transaction: the job exists exactly when the caller's change does.
/// Returns false when a job with the same dedupe key already exists.
pub async fn enqueue<C: ConnectionTrait>(conn: &C, job: NewJob) -> ServiceResult<bool> {
    Ok(enqueue_many(conn, vec![job]).await? == 1)
}

/// [`enqueue`] for several jobs in one statement; returns how many were new (the others'
/// dedupe keys already existed).
pub async fn enqueue_many<C: ConnectionTrait>(conn: &C, batch: Vec<NewJob>) -> ServiceResult<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let now = Utc::now();
    let rows = batch.into_iter().map(|job| jobs::ActiveModel {
        id: Set(domain::new_id()),
        kind: Set(job.kind.to_owned()),
        payload: Set(job.payload.to_string()),
        status: Set(QUEUED.into()),
        attempts: Set(0),
        max_attempts: Set(job.max_attempts),
        claims: Set(0),
        run_at: Set(job.run_at.unwrap_or(now)),
        locked_by: Set(None),
        locked_until: Set(None),
        last_error: Set(None),
        dedupe_key: Set(job.dedupe_key),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
    });
    // RETURNING yields only the rows inserted, not those skipped on a dedupe-key conflict.
    let inserted = jobs::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(jobs::Column::DedupeKey).do_nothing().to_owned())
        .exec_with_returning(conn)
        .await?;
    for job in &inserted {
        metrics::counter!("valuva_jobs_enqueued_total", "kind" => job.kind.clone()).increment(1);
    }
    Ok(inserted.len())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    #[schema(example = "queued")]
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<jobs::Model> for JobView {
    fn from(j: jobs::Model) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            locked_by: j.locked_by,
            locked_until: j.locked_until,
            last_error: j.last_error,
            payload: redact(serde_json::from_str(&j.payload).unwrap_or_default()),
            created_at: j.created_at,
            finished_at: j.finished_at,
        }
    }
}

/// Staff see what a job is about, never a credential it carries (a reset token).
fn redact(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(m) = v.as_object_mut() {
        for (k, val) in m.iter_mut() {
            if k.contains("token") || k.contains("secret") {
                *val = serde_json::Value::String("[redacted]".into());
            }
        }
    }
    v
}

/// Staff's view of the queue.
#[derive(Clone)]
pub struct JobService {
    db: Db,
    cursors: CursorCodec,
}

impl JobService {
    pub fn new(db: Db, cursors: CursorCodec) -> Self {
        Self { db, cursors }
    }

    /// Newest first, optionally by status (`queued`, `running`, `succeeded`, `dead`) and kind.
    pub async fn list(&self, status: Option<&str>, kind: Option<&str>, page: PageRequest) -> ServiceResult<Page<JobView>> {
        let mut q = jobs::Entity::find();
        if let Some(s) = status {
            if ![QUEUED, RUNNING, SUCCEEDED, DEAD].contains(&s) {
                return Err(ServiceError::field("status", "must be one of queued, running, succeeded, dead"));
            }
            q = q.filter(jobs::Column::Status.eq(s));
        }
        if let Some(k) = kind {
            q = q.filter(jobs::Column::Kind.eq(k));
        }
        if let Some(c) = &page.cursor {
            let after: Uuid = self.cursors.decode(c)?;
            q = q.filter(jobs::Column::Id.lt(after));
        }
        let rows = q.order_by_desc(jobs::Column::Id).limit(page.limit + 1).all(&self.db.reader()).await?;
        let rows: Vec<JobView> = rows.into_iter().map(JobView::from).collect();
        Ok(Page::from_rows(rows, page.limit, &self.cursors, |j| j.id))
    }

    pub async fn get(&self, id: Uuid) -> ServiceResult<JobView> {
        jobs::Entity::find_by_id(id).one(self.db.primary()).await?.map(JobView::from).ok_or(ServiceError::not_found("job"))
    }

    /// A dead job gets a fresh set of attempts. Returns the job as requeued (a worker may pick
    /// it up at once).
    pub async fn retry(&self, meta: &RequestMeta, id: Uuid) -> ServiceResult<JobView> {
        let now = Utc::now();
        let tx = self.db.begin().await?;
        let requeued = jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, QUEUED.into())
            .col_expr(jobs::Column::Attempts, 0.into())
            .col_expr(jobs::Column::RunAt, now.into())
            .col_expr(jobs::Column::UpdatedAt, now.into())
            .col_expr(jobs::Column::FinishedAt, Option::<DateTime<Utc>>::None.into())
            .filter(jobs::Column::Id.eq(id))
            .filter(jobs::Column::Status.eq(DEAD))
            .exec_with_returning(&tx)
            .await?;
        match requeued.into_iter().next() {
            Some(job) => {
                let change = Change::new(AuditAction::AdminAction, "job", job.id).new_values(serde_json::json!({"retried": job.kind}));
                audit::record(&tx, meta, change).await?;
                tx.commit().await?;
                Ok(job.into())
            }
            None => {
                drop(tx);
                self.get(id).await?;
                Err(ServiceError::conflict("not_dead", "only dead jobs can be retried"))
            }
        }
    }

    /// Jobs by status, for the queue-depth gauges.
    pub async fn depth(&self) -> ServiceResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Status)
            .column_as(jobs::Column::Id.count(), "n")
            .filter(jobs::Column::Status.is_in([QUEUED, RUNNING, DEAD]))
            .group_by(jobs::Column::Status)
            .into_tuple()
            .all(self.db.primary())
            .await?;
        Ok(rows)
    }
}

/// Deletes succeeded jobs finished before `before` (dead ones stay for staff).
pub async fn purge_succeeded(db: &Db, before: DateTime<Utc>) -> ServiceResult<u64> {
    let done = jobs::Entity::delete_many()
        .filter(jobs::Column::Status.eq(SUCCEEDED))
        .filter(jobs::Column::FinishedAt.lt(before))
        .exec(db.primary())
        .await?;
    Ok(done.rows_affected)
}
