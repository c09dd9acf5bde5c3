//! The one periodic task that runs every second in every instance rather than as a scheduled
//! job: sealing the audit chain (safe concurrently on several instances). Reservation expiry
//! and the purges are scheduled jobs (see `jobs.rs`). Stops between rounds on shutdown.

use http_api::AppState;
use std::time::Duration;
use tokio::sync::watch;

pub fn spawn(state: AppState, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(state.config.housekeeping_interval_ms.max(50));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            run_once(&state).await;
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
pub async fn run_once(state: &AppState) {
    outcome("audit_seal", services::audit::seal(&state.db).await);
}
