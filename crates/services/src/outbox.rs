//! Transactional outbox: a domain event is a row written in the transaction that caused it, so
//! it exists exactly when the change does. Delivery (jobs) reads them afterwards.

use crate::ServiceResult;
use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use store::entities::outbox_events;
use uuid::Uuid;

pub async fn emit<C: ConnectionTrait>(conn: &C, topic: &str, aggregate_id: Uuid, payload: serde_json::Value) -> ServiceResult<()> {
    let row = outbox_events::ActiveModel {
        id: Set(domain::new_id()),
        topic: Set(topic.to_owned()),
        aggregate_id: Set(Some(aggregate_id)),
        payload: Set(payload.to_string()),
        created_at: Set(Utc::now()),
        dispatched_at: Set(None),
    };
    outbox_events::Entity::insert(row).exec_without_returning(conn).await?;
    Ok(())
}
