//! argon2id with the OWASP-recommended parameters (19 MiB, t=2, p=1: the crate's defaults),
//! run on the blocking pool so a hash never stalls the async workers.

use crate::{ServiceError, ServiceResult};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use domain::Password;
use std::sync::LazyLock;
use tokio::sync::Semaphore;

pub(crate) fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())
}

/// Hashes running at once, process-wide: one per core. Each holds 19 MiB and a core for tens of
/// milliseconds; unbounded, a burst of sign-ins took one blocking thread and one 19 MiB block
/// per request (the benchmark's 64 parallel sign-ins left ~35 MB resident afterwards) and
/// starved everything else of CPU. Queued callers wait their turn instead.
static SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

async fn limited<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> ServiceResult<T> {
    let _slot = SLOTS.acquire().await.map_err(ServiceError::internal)?;
    tokio::task::spawn_blocking(work).await.map_err(ServiceError::internal)
}

pub(crate) async fn hash(password: &Password) -> ServiceResult<String> {
    let p = password.expose().to_owned();
    limited(move || hash_blocking(&p)).await?.map_err(ServiceError::internal)
}

/// True when `password` matches `stored`. A malformed stored hash counts as a mismatch.
pub(crate) async fn verify(password: &str, stored: &str) -> bool {
    let (p, h) = (password.to_owned(), stored.to_owned());
    limited(move || Argon2::default().verify_password(p.as_bytes(), h.as_str()).is_ok()).await.unwrap_or(false)
}
