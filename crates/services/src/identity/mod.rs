//! Identity: accounts, sessions (access JWT + rotating refresh tokens), password reset,
//! profiles, addresses, roles.

mod addresses;
mod password;
mod sessions;
mod tokens;
mod users;

pub use addresses::{AddressPatch, AddressView};
pub use sessions::AuthSession;
pub use tokens::{TokenIssuer, TokenSettings};
pub use users::{ProfilePatch, UserView};

use store::Db;

/// Entry point of the identity context. Cheap to clone.
#[derive(Clone)]
pub struct IdentityService {
    db: Db,
    tokens: TokenIssuer,
    reset_ttl: chrono::TimeDelta,
    /// Verified against when the email is unknown, so both failures cost one argon2 run.
    dummy_hash: std::sync::Arc<str>,
}

impl IdentityService {
    pub fn new(db: Db, tokens: TokenIssuer, reset_ttl_minutes: u64) -> Self {
        let dummy_hash = password::hash_blocking("valuva-timing-equaliser").expect("argon2 with default params hashes").into();
        Self { db, tokens, reset_ttl: chrono::TimeDelta::minutes(reset_ttl_minutes as i64), dummy_hash }
    }

    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }
}

/// A random, URL-safe secret token (256 bits) and the SHA-256 hex under which it is stored.
pub(crate) fn new_secret_token() -> (String, String) {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

pub(crate) fn hash_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
