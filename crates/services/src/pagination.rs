//! Opaque, tamper-proof keyset cursors: base64url(JSON position) + "." + HMAC. A forged or
//! garbled cursor is a 400, never a 500 and never a query on attacker-chosen values.

use crate::{ServiceError, ServiceResult};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;

#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl CursorCodec {
    pub fn new(secret: &[u8]) -> Self {
        // A key of its own, derived from the app secret, so cursors cannot be replayed as tokens.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("hmac takes any key length");
        mac.update(b"valuva-cursor-v1");
        Self { key: mac.finalize().into_bytes().to_vec() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("hmac takes any key length")
    }

    pub fn encode<T: Serialize>(&self, position: &T) -> String {
        let body = B64.encode(serde_json::to_vec(position).expect("cursor positions serialize"));
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    pub fn decode<T: DeserializeOwned>(&self, cursor: &str) -> ServiceResult<T> {
        let bad = || ServiceError::bad_request("invalid_cursor", "the cursor is invalid or was altered");
        let (body, sig) = cursor.split_once('.').ok_or_else(bad)?;
        let sig = B64.decode(sig).map_err(|_| bad())?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig).map_err(|_| bad())?;
        let raw = B64.decode(body).map_err(|_| bad())?;
        serde_json::from_slice(&raw).map_err(|_| bad())
    }
}

/// A page request, validated: limit within 1..=100.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u64,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub fn parse(limit: Option<i64>, cursor: Option<String>) -> ServiceResult<Self> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as u64,
            Some(_) => {
                return Err(ServiceError::field("limit", format!("must be between 1 and {MAX_LIMIT}")));
            }
        };
        Ok(Self { limit, cursor: cursor.filter(|c| !c.is_empty()) })
    }
}

/// One page of results and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `rows` was fetched with `limit + 1`: the extra row only tells that there is more.
    pub fn from_rows<P: Serialize>(mut rows: Vec<T>, limit: u64, codec: &CursorCodec, position: impl Fn(&T) -> P) -> Self {
        let has_more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if has_more { rows.last().map(|r| codec.encode(&position(r))) } else { None };
        Self { items: rows, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_resist_tampering() {
        let c = CursorCodec::new(b"secret");
        let s = c.encode(&(42i64, "x"));
        assert_eq!(c.decode::<(i64, String)>(&s).unwrap(), (42, "x".into()));
        let forged = format!("{}.{}", B64.encode(b"[43,\"x\"]"), s.split_once('.').unwrap().1);
        assert!(c.decode::<(i64, String)>(&forged).is_err());
        assert!(c.decode::<(i64, String)>("garbage").is_err());
        assert!(CursorCodec::new(b"other").decode::<(i64, String)>(&s).is_err());
    }
}

#[derive(Serialize, ToSchema)]
pub struct Pagination {
    /// Opaque; pass back as `cursor` for the next page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// The list envelope of every collection endpoint.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

impl<T> From<Page<T>> for List<T> {
    fn from(p: Page<T>) -> Self {
        let has_more = p.next_cursor.is_some();
        Self { data: p.items, pagination: Pagination { next_cursor: p.next_cursor, has_more } }
    }
}

impl<T> List<T> {
    /// A complete, bounded collection: one page, nothing more.
    pub fn all(data: Vec<T>) -> Self {
        Self { data, pagination: Pagination { next_cursor: None, has_more: false } }
    }
}
