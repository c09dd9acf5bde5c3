//! Transactions that lost a conflict to a concurrent one, run again.

use crate::{ServiceError, ServiceResult};
use std::time::Duration;

/// SERIALIZABLE transactions that lose a conflict are re-run this many times at most. Many
/// concurrent checkouts of one hot variant abort each other in turn (each commit can abort every
/// other one in flight), so the budget is generous; the jittered backoff spreads them out.
const MAX_ATTEMPTS: u32 = 50;

/// Runs `attempt` again (after a short random pause) when it lost a serialization conflict.
pub async fn with_retry<T, F, Fut>(mut attempt: F) -> ServiceResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ServiceResult<T>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Err(ServiceError::Contention(why)) if n + 1 < MAX_ATTEMPTS => {
                n += 1;
                // Full jitter, growing with the attempt: conflicting transactions spread out.
                let cap = 2u64 << std::cmp::min(n, 5);
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % cap + 1)).await;
                metrics::counter!("valuva_checkout_retries_total").increment(1);
                tracing::debug!(attempt = n, %why, "retrying after a transaction conflict");
            }
            other => return other,
        }
    }
}
