//! Idempotent POSTs (Stripe's model). The first request with a key claims it; its response is
//! stored *in the same transaction as the change it made*, so a replay can never re-apply a
//! change that committed. Same key + different body → 422; same key while the first is still
//! running → 409; same key afterwards → the first response again.
//!
//! Two ways to use a key. [`run`] claims it first, in a statement of its own, for operations that
//! call out while holding it (a refund asks the payment provider before it commits). A
//! [`Recorded`] key is written once, completed, in the transaction that makes the change: for
//! operations whose whole effect is that transaction (checkout), a claim would be one more
//! statement and pool round trip for nothing. A duplicate then fails inside its own
//! transaction (it finds the first one's change, or the key) and [`Recorded::replay`] answers
//! it with the stored response.

use crate::{ServiceError, ServiceResult};
use chrono::{TimeDelta, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::Serialize;
use sha2::{Digest, Sha256};
use store::{Db, Inserts, entities::idempotency_keys as keys};

/// A claim left in progress this long belongs to a request that died before committing.
const ABANDONED_AFTER: TimeDelta = TimeDelta::seconds(60);

/// Another request holds this key and has not finished.
pub(crate) fn in_progress() -> ServiceError {
    ServiceError::conflict("idempotency_in_progress", "a request with this Idempotency-Key is in progress")
}

/// Either a fresh result or the stored first response for this key.
#[derive(Debug)]
pub enum Outcome<T> {
    Fresh(T),
    Replayed { status: u16, body: serde_json::Value },
}

pub struct Claim {
    scope: String,
    key: String,
}

impl Claim {
    /// The key's row: in progress, or completed with `(status, body)`.
    fn row(&self, hash: &str, response: Option<(u16, String)>) -> keys::ActiveModel {
        let state = if response.is_some() { "completed" } else { "in_progress" };
        let (status, body) = response.map_or((None, None), |(s, b)| (Some(s as i32), Some(b)));
        keys::ActiveModel {
            scope: Set(self.scope.clone()),
            key: Set(self.key.clone()),
            request_hash: Set(hash.to_owned()),
            state: Set(state.into()),
            response_status: Set(status),
            response_body: Set(body),
            created_at: Set(Utc::now()),
        }
    }

    /// Stores the response; call inside the transaction that makes the change.
    pub async fn complete<C: ConnectionTrait, T: Serialize>(&self, conn: &C, status: u16, response: &T) -> ServiceResult<()> {
        let body = serde_json::to_string(response).map_err(ServiceError::internal)?;
        let done = keys::Entity::update_many()
            .col_expr(keys::Column::State, Expr::value("completed"))
            .col_expr(keys::Column::ResponseStatus, Expr::value(status as i32))
            .col_expr(keys::Column::ResponseBody, Expr::value(body))
            .filter(keys::Column::Scope.eq(&self.scope))
            .filter(keys::Column::Key.eq(&self.key))
            .exec(conn)
            .await?
            .rows_affected;
        if done == 0 {
            return Err(ServiceError::internal("idempotency claim vanished before completion"));
        }
        Ok(())
    }
}

/// Validates a client-supplied key: 1–255 visible ASCII characters.
pub fn parse_key(raw: &str) -> ServiceResult<String> {
    let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ServiceError::bad_request("invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters"))
    }
}

/// Runs `op` at most once per (scope, key). Without a key, `op` simply runs.
pub async fn run<T, F, Fut>(db: &Db, scope: String, key: Option<String>, request: &impl Serialize, op: F) -> ServiceResult<Outcome<T>>
where
    F: FnOnce(Option<Claim>) -> Fut,
    Fut: Future<Output = ServiceResult<T>>,
{
    let Some(key) = key else {
        return op(None).await.map(Outcome::Fresh);
    };
    let hash = request_hash(request)?;
    let claim = Claim { scope: scope.clone(), key: key.clone() };
    if let Err(e) = keys::Entity::insert(claim.row(&hash, None)).exec_without_returning(db.primary()).await {
        if !store::is_unique_violation(&e) {
            return Err(e.into());
        }
        let existing = keys::Entity::find_by_id((scope.clone(), key.clone())).one(db.primary()).await?.ok_or_else(in_progress)?;
        if let Some(replay) = completed(existing, &hash)? {
            return Ok(replay);
        }
        // Take over a claim whose request died before committing; otherwise it is running.
        let taken = keys::Entity::update_many()
            .col_expr(keys::Column::CreatedAt, Expr::value(Utc::now()))
            .filter(keys::Column::Scope.eq(&scope))
            .filter(keys::Column::Key.eq(&key))
            .filter(keys::Column::State.eq("in_progress"))
            .filter(keys::Column::CreatedAt.lt(Utc::now() - ABANDONED_AFTER))
            .exec(db.primary())
            .await?
            .rows_affected;
        if taken == 0 {
            return Err(in_progress());
        }
    }
    match op(Some(claim)).await {
        Ok(v) => Ok(Outcome::Fresh(v)),
        Err(e) => {
            // Free the key only if nothing committed: a key whose response was stored (the
            // change committed, a later step failed) keeps replaying that response.
            let _ = keys::Entity::delete_many()
                .filter(keys::Column::Scope.eq(&scope))
                .filter(keys::Column::Key.eq(&key))
                .filter(keys::Column::State.eq("in_progress"))
                .exec(db.primary())
                .await;
            Err(e)
        }
    }
}

/// The stored response of a key row, if its request completed; 422 if it was another request.
fn completed<T>(row: keys::Model, hash: &str) -> ServiceResult<Option<Outcome<T>>> {
    if row.request_hash != hash {
        return Err(ServiceError::Validation(vec![crate::FieldError::new(
            "Idempotency-Key",
            "was already used with a different request body",
        )]));
    }
    if row.state != "completed" {
        return Ok(None);
    }
    let body = row.response_body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default();
    Ok(Some(Outcome::Replayed { status: row.response_status.unwrap_or(200) as u16, body }))
}

fn request_hash(request: &impl Serialize) -> ServiceResult<String> {
    Ok(hex::encode(Sha256::digest(serde_json::to_vec(request).map_err(ServiceError::internal)?)))
}

/// A key stored only with its response, inside the transaction that makes the change (see the
/// module documentation).
pub struct Recorded {
    claim: Claim,
    hash: String,
}

impl Recorded {
    pub fn new(scope: String, key: String, request: &impl Serialize) -> ServiceResult<Self> {
        Ok(Self { claim: Claim { scope, key }, hash: request_hash(request)? })
    }

    /// Adds the key, completed with `response`, to a batch the caller runs inside the
    /// transaction that makes the change. On PostgreSQL a concurrent first request holding the
    /// key makes that batch wait for it, then fail with a unique violation (the key is taken):
    /// [`Self::replay`] then answers with the first one's response.
    pub fn stage<T: Serialize>(&self, batch: &mut Inserts, status: u16, response: &T) -> ServiceResult<()> {
        let body = serde_json::to_string(response).map_err(ServiceError::internal)?;
        batch.add(keys::Entity::insert(self.claim.row(&self.hash, Some((status, body)))));
        Ok(())
    }

    /// The recorded key, for replacing its stored response ([`Claim::complete`]) when a later
    /// step of the same request added to it.
    pub fn claim(&self) -> &Claim {
        &self.claim
    }

    /// After the operation failed: the first request's response if this key completed before
    /// (the failure was this duplicate running into the first one's change), 422 if the key was
    /// used with another body, `None` if the key is unused (the failure is this request's own).
    pub async fn replay<T>(&self, db: &Db) -> ServiceResult<Option<Outcome<T>>> {
        let row = keys::Entity::find_by_id((self.claim.scope.clone(), self.claim.key.clone())).one(db.primary()).await?;
        row.map_or(Ok(None), |row| completed(row, &self.hash))
    }
}

/// Removes keys older than `age` (housekeeping).
pub async fn purge_older_than(db: &Db, age: TimeDelta) -> ServiceResult<u64> {
    let res = keys::Entity::delete_many().filter(keys::Column::CreatedAt.lt(Utc::now() - age)).exec(db.primary()).await?;
    Ok(res.rows_affected)
}
