//! The audit trail: one writer used by every mutation, inside the mutation's own transaction.
//! Rows are hash-chained by the sealer (each hash covers the row and the previous hash), so
//! editing, removing or reordering a sealed row is detectable by [`verify`].

mod chain;
mod query;

pub use chain::{VerifyReport, prune, seal, verify};
pub use query::{AuditFilter, AuditView, list};

use crate::{RequestMeta, ServiceResult};
use chrono::{DurationRound, TimeDelta, Utc};
use domain::AuditAction;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::Value;
use store::{Inserts, entities::audit_logs};

/// What changed. `old`/`new` are scrubbed of secrets before they are stored.
pub struct Change {
    pub action: AuditAction,
    pub entity_type: &'static str,
    pub entity_id: Option<String>,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl Change {
    pub fn new(action: AuditAction, entity_type: &'static str, entity_id: impl ToString) -> Self {
        Self { action, entity_type, entity_id: Some(entity_id.to_string()), old: None, new: None }
    }
    pub fn old(mut self, v: impl serde::Serialize) -> Self {
        self.old = serde_json::to_value(v).ok();
        self
    }
    pub fn new_values(mut self, v: impl serde::Serialize) -> Self {
        self.new = serde_json::to_value(v).ok();
        self
    }
}

/// Appends one row. Call inside the transaction of the change it records: the row commits or
/// rolls back with it. The row is chained later by [`seal`], so concurrent writers never
/// contend on the chain head (at SERIALIZABLE they would abort each other).
pub async fn record<C: ConnectionTrait>(conn: &C, meta: &RequestMeta, change: Change) -> ServiceResult<()> {
    let mut batch = Inserts::new();
    stage(&mut batch, meta, change);
    Ok(batch.run(conn).await?)
}

/// [`record`] as one insert of a batch the caller runs in the change's transaction.
pub fn stage(batch: &mut Inserts, meta: &RequestMeta, change: Change) {
    let row = audit_logs::Model {
        id: domain::new_id(),
        seq: None,
        // Stored precision is microseconds on both backends; hash what is stored.
        created_at: Utc::now().duration_trunc(TimeDelta::microseconds(1)).unwrap_or_else(|_| Utc::now()),
        actor_id: meta.actor.map(|a| a.id),
        action: change.action.as_str().to_owned(),
        entity_type: change.entity_type.to_owned(),
        entity_id: change.entity_id,
        old_values: change.old.map(|v| scrub(v).to_string()),
        new_values: change.new.map(|v| scrub(v).to_string()),
        ip: meta.ip.clone().map(|s| truncate(s, 64)),
        user_agent: meta.user_agent.clone().map(|s| truncate(s, 512)),
        request_id: meta.request_id.clone().map(|s| truncate(s, 128)),
        prev_hash: None,
        hash: None,
    };
    batch.add(audit_logs::Entity::insert(audit_logs::ActiveModel::from(row)));
}

const SECRET_KEYS: [&str; 7] = ["password", "password_hash", "token", "secret", "refresh_token", "access_token", "card"];

/// Replaces the value of any key that names a secret, at any depth.
fn scrub(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.iter().any(|s| k.to_ascii_lowercase().contains(s));
                    (k, if secret { Value::String("[redacted]".into()) } else { scrub(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub).collect()),
        other => other,
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_secrets_at_any_depth() {
        let v = serde_json::json!({"email": "a@b.c", "password": "x", "nested": [{"api_token": "t"}]});
        let s = scrub(v).to_string();
        assert!(s.contains("a@b.c") && !s.contains("\"x\"") && !s.contains("\"t\""));
    }
}
