//! Transactional outbox: a domain event is a row written in the transaction that caused it, so
//! it exists exactly when the change does. Delivery (jobs) reads them afterwards.

use crate::ServiceResult;
use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use store::{Inserts, entities::outbox_events};
use uuid::Uuid;

pub async fn emit<C: ConnectionTrait>(conn: &C, topic: &str, aggregate_id: Uuid, payload: serde_json::Value) -> ServiceResult<()> {
    let mut batch = Inserts::new();
    stage(&mut batch, topic, aggregate_id, payload);
    Ok(batch.run(conn).await?)
}

/// [`emit`] as one insert of a batch the caller runs in the change's transaction.
pub fn stage(batch: &mut Inserts, topic: &str, aggregate_id: Uuid, payload: serde_json::Value) {
    let row = outbox_events::ActiveModel {
        id: Set(domain::new_id()),
        topic: Set(topic.to_owned()),
        aggregate_id: Set(Some(aggregate_id)),
        payload: Set(payload.to_string()),
        created_at: Set(Utc::now()),
        dispatched_at: Set(None),
    };
    batch.add(outbox_events::Entity::insert(row));
}

/// Jobs an event leads to (besides the fan-outs in [`dispatch`]).
fn jobs_for(event: Uuid, topic: &str, aggregate: Option<Uuid>) -> Vec<crate::jobs::NewJob> {
    use crate::jobs::NewJob;
    let Some(id) = aggregate else { return Vec::new() };
    match topic {
        "order.created" => vec![NewJob::new(crate::notifications::jobs::ORDER_CONFIRMATION, serde_json::json!({"order_id": id}))],
        "order.shipped" => vec![NewJob::new(crate::notifications::jobs::SHIPPING_NOTICE, serde_json::json!({"order_id": id}))],
        "variant.low_stock" => {
            vec![NewJob::new(crate::notifications::jobs::LOW_STOCK, serde_json::json!({"variant_id": id, "event": event}))]
        }
        _ => Vec::new(),
    }
}

/// Turns pending events into jobs, in one transaction per batch: an event is marked
/// dispatched exactly when its jobs exist, so a crash anywhere loses nothing (and the
/// events' dedupe keys make a re-dispatch enqueue nothing twice). Returns events handled.
pub async fn dispatch(db: &store::Db, limit: u64) -> ServiceResult<usize> {
    use sea_orm::{
        ColumnTrait, QueryFilter, QueryOrder, QuerySelect,
        sea_query::{LockBehavior, LockType},
    };
    let tx = db.begin().await?;
    db.prefer_index_walks(&tx).await?;
    // Ids are time-ordered (UUIDv7), so id order is creation order, and it is the order of
    // `idx_outbox_pending`: the scan stops after `limit` entries instead of sorting every
    // pending one (and every entry a dispatched event left behind until VACUUM).
    let events = outbox_events::Entity::find()
        .filter(outbox_events::Column::DispatchedAt.is_null())
        .order_by_asc(outbox_events::Column::Id)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&tx)
        .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut batch = Vec::new();
    for e in &events {
        for job in jobs_for(e.id, &e.topic, e.aggregate_id) {
            let key = format!("{}:{}", e.id, job.kind);
            batch.push(job.dedupe(key));
        }
        if e.topic == "variant.back_in_stock"
            && let Some(variant) = e.aggregate_id
        {
            crate::notifications::stock_alerts::fan_out(&tx, variant).await?;
        }
    }
    crate::jobs::enqueue_many(&tx, batch).await?;
    outbox_events::Entity::update_many()
        .col_expr(outbox_events::Column::DispatchedAt, sea_orm::sea_query::Expr::value(Utc::now()))
        .filter(outbox_events::Column::Id.is_in(events.iter().map(|e| e.id)))
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(events.len())
}
