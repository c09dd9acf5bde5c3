use crate::{
    RequestMeta, ServiceResult,
    audit::{Change, record},
};
use chrono::{DateTime, SecondsFormat, Utc};
use domain::AuditAction;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use store::{
    Db,
    entities::{audit_chain, audit_logs},
};

/// SHA-256 over every stored field (unit-separated) and the previous row's hash.
pub(crate) fn row_hash(r: &audit_logs::Model) -> String {
    let fields: [&str; 13] = [
        &r.seq.to_string(),
        &r.id.to_string(),
        &r.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        &r.actor_id.map(|a| a.to_string()).unwrap_or_default(),
        &r.action,
        &r.entity_type,
        r.entity_id.as_deref().unwrap_or_default(),
        r.old_values.as_deref().unwrap_or_default(),
        r.new_values.as_deref().unwrap_or_default(),
        r.ip.as_deref().unwrap_or_default(),
        r.user_agent.as_deref().unwrap_or_default(),
        r.request_id.as_deref().unwrap_or_default(),
        &r.prev_hash,
    ];
    let mut h = Sha256::new();
    for f in fields {
        h.update(f.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub rows_checked: u64,
    /// The first row found edited, removed or out of order, and why.
    pub first_problem: Option<(i64, String)>,
}

/// Walks the chain from the last checkpoint to the head, in batches.
pub async fn verify(db: &Db) -> ServiceResult<VerifyReport> {
    let conn = db.primary();
    let head = audit_chain::Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| crate::ServiceError::internal("audit chain head missing"))?;
    let (mut expected_seq, mut prev) = (head.checkpoint_seq + 1, head.checkpoint_hash.clone());
    let mut checked = 0u64;
    let fail = |seq: i64, why: String, checked| {
        Ok(VerifyReport {
            rows_checked: checked,
            first_problem: Some((seq, why)),
        })
    };
    loop {
        let batch = audit_logs::Entity::find()
            .filter(audit_logs::Column::Seq.gt(expected_seq - 1))
            .order_by_asc(audit_logs::Column::Seq)
            .limit(1000)
            .all(conn)
            .await?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            if row.seq != expected_seq {
                return fail(
                    expected_seq,
                    format!(
                        "row {expected_seq} is missing (next present row is {})",
                        row.seq
                    ),
                    checked,
                );
            }
            if row.prev_hash != prev {
                return fail(
                    row.seq,
                    "link to the previous row is broken (rows removed or reordered)".into(),
                    checked,
                );
            }
            if row_hash(&row) != row.hash {
                return fail(
                    row.seq,
                    "content does not match its hash (row edited)".into(),
                    checked,
                );
            }
            prev = row.hash;
            expected_seq += 1;
            checked += 1;
        }
    }
    if expected_seq - 1 != head.last_seq || prev != head.last_hash {
        return fail(
            expected_seq,
            format!(
                "the chain ends at row {} but the head records row {} (rows removed)",
                expected_seq - 1,
                head.last_seq
            ),
            checked,
        );
    }
    Ok(VerifyReport {
        rows_checked: checked,
        first_problem: None,
    })
}

/// Deletes rows older than `before` and moves the checkpoint to the last deleted row, so the
/// remaining chain still verifies. Records the pruning itself as an ADMIN_ACTION. Returns the
/// number of rows removed.
pub async fn prune(db: &Db, meta: &RequestMeta, before: DateTime<Utc>) -> ServiceResult<u64> {
    let tx = db.begin().await?;
    let head = audit_chain::Entity::find_by_id(1)
        .lock_exclusive()
        .one(&tx)
        .await?
        .ok_or_else(|| crate::ServiceError::internal("audit chain head missing"))?;
    let last_old = audit_logs::Entity::find()
        .filter(audit_logs::Column::CreatedAt.lt(before))
        .order_by_desc(audit_logs::Column::Seq)
        .one(&tx)
        .await?;
    let Some(last_old) = last_old else {
        tx.rollback().await?;
        return Ok(0);
    };
    let removed = audit_logs::Entity::delete_many()
        .filter(audit_logs::Column::Seq.lte(last_old.seq))
        .exec(&tx)
        .await?
        .rows_affected;
    audit_chain::ActiveModel {
        id: Set(head.id),
        checkpoint_seq: Set(last_old.seq),
        checkpoint_hash: Set(last_old.hash.clone()),
        ..Default::default()
    }
    .update(&tx)
    .await?;
    let change = Change {
        action: AuditAction::AdminAction,
        entity_type: "audit_log",
        entity_id: None,
        old: None,
        new: None,
    }
    .new_values(
        serde_json::json!({"pruned_through_seq": last_old.seq, "rows": removed, "before": before}),
    );
    record(&tx, meta, change).await?;
    tx.commit().await?;
    Ok(removed)
}
