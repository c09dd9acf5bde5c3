use crate::{
    ServiceResult,
    pagination::{CursorCodec, Page, PageRequest},
};
use chrono::{DateTime, Utc};
use domain::AuditAction;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use store::{Db, entities::audit_logs};
use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<Uuid>,
    pub action: Option<AuditAction>,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: Uuid,
    /// Position in the hash chain (null until sealed, normally within a second).
    pub seq: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub hash: Option<String>,
}

/// Newest first, keyset-paginated on the (time-ordered) id.
pub async fn list(db: &Db, codec: &CursorCodec, f: AuditFilter, page: PageRequest) -> ServiceResult<Page<AuditView>> {
    let mut q = audit_logs::Entity::find();
    if let Some(c) = &page.cursor {
        let before: Uuid = codec.decode(c)?;
        q = q.filter(audit_logs::Column::Id.lt(before));
    }
    if let Some(a) = f.actor {
        q = q.filter(audit_logs::Column::ActorId.eq(a));
    }
    if let Some(a) = f.action {
        q = q.filter(audit_logs::Column::Action.eq(a.as_str()));
    }
    if let Some(t) = f.entity_type {
        q = q.filter(audit_logs::Column::EntityType.eq(t));
    }
    if let Some(id) = f.entity_id {
        q = q.filter(audit_logs::Column::EntityId.eq(id));
    }
    if let Some(from) = f.from {
        q = q.filter(audit_logs::Column::CreatedAt.gte(from));
    }
    if let Some(to) = f.to {
        q = q.filter(audit_logs::Column::CreatedAt.lt(to));
    }
    let rows = q.order_by_desc(audit_logs::Column::Id).limit(page.limit + 1).all(&db.reader()).await?;
    Ok(Page::from_rows(rows, page.limit, codec, |r| r.id).map(|r| AuditView {
        id: r.id,
        seq: r.seq,
        created_at: r.created_at,
        actor_id: r.actor_id,
        action: r.action,
        entity_type: r.entity_type,
        entity_id: r.entity_id,
        old_values: r.old_values.and_then(|s| serde_json::from_str(&s).ok()),
        new_values: r.new_values.and_then(|s| serde_json::from_str(&s).ok()),
        ip: r.ip,
        user_agent: r.user_agent,
        request_id: r.request_id,
        hash: r.hash,
    }))
}
