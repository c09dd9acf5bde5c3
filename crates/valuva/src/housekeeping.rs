//! Periodic background work, run in every instance (each task is safe to run concurrently on
//! several instances): seal the audit chain, expire unpaid orders, purge old idempotency keys
//! and abandoned carts. Stops at a safe point (between rounds) on shutdown.

use http_api::AppState;
use std::time::Duration;
use tokio::sync::watch;

/// Purges run once per this many rounds.
const PURGE_EVERY: u64 = 300;

pub fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(state.config.housekeeping_interval_ms.max(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            run_once(&state, round.is_multiple_of(PURGE_EVERY)).await;
            round += 1;
        }
    })
}

fn outcome<T, E: std::fmt::Display>(task: &'static str, r: Result<T, E>) {
    let outcome = match &r {
        Ok(_) => "ok",
        Err(e) => {
            tracing::warn!(task, error = %e, "background task failed; retrying next round");
            "error"
        }
    };
    metrics::counter!("valuva_housekeeping_runs_total", "task" => task, "outcome" => outcome).increment(1);
}

/// One round; errors are logged and retried next round.
pub async fn run_once(state: &AppState, purge: bool) {
    outcome("audit_seal", services::audit::seal(&state.db).await);
    outcome("order_expiry", state.orders.expire_overdue().await);
    if purge {
        outcome("idempotency_purge", services::idempotency::purge_older_than(&state.db, chrono::TimeDelta::hours(24)).await);
        outcome("cart_purge", state.carts.purge_expired().await);
    }
}
