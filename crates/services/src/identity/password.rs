//! argon2id with the OWASP-recommended parameters (19 MiB, t=2, p=1: the crate's defaults),
//! run on the blocking pool so a hash never stalls the async workers.

use crate::{ServiceError, ServiceResult};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use domain::Password;

pub(crate) fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())
}

pub(crate) async fn hash(password: &Password) -> ServiceResult<String> {
    let p = password.expose().to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(&p)).await.map_err(ServiceError::internal)?.map_err(ServiceError::internal)
}

/// True when `password` matches `stored`. A malformed stored hash counts as a mismatch.
pub(crate) async fn verify(password: &str, stored: &str) -> bool {
    let (p, h) = (password.to_owned(), stored.to_owned());
    tokio::task::spawn_blocking(move || Argon2::default().verify_password(p.as_bytes(), h.as_str()).is_ok()).await.unwrap_or(false)
}
