//! Recurring jobs, cron-like. Every worker computes the same slots; the slot's dedupe key lets
//! exactly one of them enqueue it. Slots missed while no worker ran are not backfilled.

use super::{NewJob, enqueue};
use crate::{ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use croner::Cron;
use std::str::FromStr;
use store::Db;

pub struct Entry {
    pub kind: &'static str,
    cron: Cron,
    next: Option<DateTime<Utc>>,
}

/// The recurring jobs and when each is next due.
#[derive(Default)]
pub struct Schedule {
    entries: Vec<Entry>,
}

impl Schedule {
    /// `pattern`: five fields (minutes) or six (seconds first), e.g. `*/30 * * * * *`.
    pub fn every(mut self, kind: &'static str, pattern: &str) -> ServiceResult<Self> {
        let cron = Cron::from_str(pattern).map_err(|e| ServiceError::internal(format!("schedule {kind}: {e}")))?;
        self.entries.push(Entry { kind, cron, next: None });
        Ok(self)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.kind)
    }

    /// Enqueues every slot that has come (once across all workers).
    pub async fn enqueue_due(&mut self, db: &Db) -> ServiceResult<usize> {
        let now = Utc::now();
        let mut n = 0;
        for e in &mut self.entries {
            let next = match e.next {
                Some(t) => t,
                None => {
                    let first = e.cron.find_next_occurrence(&now, false).map_err(ServiceError::internal)?;
                    e.next = Some(first);
                    first
                }
            };
            if next > now {
                continue;
            }
            let job =
                NewJob::new(e.kind, serde_json::json!({"slot": next})).dedupe(format!("{}@{}", e.kind, next.timestamp())).max_attempts(3);
            if enqueue(db.primary(), job).await? {
                n += 1;
            }
            e.next = Some(e.cron.find_next_occurrence(&now, false).map_err(ServiceError::internal)?);
        }
        Ok(n)
    }
}
