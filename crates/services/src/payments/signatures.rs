//! Webhook signature checks. One HMAC-SHA256 verifier with a constant-time compare serves
//! Stripe's and Shopify's schemes and any later provider's.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Stripe's default tolerance between the signed timestamp and now.
pub const STRIPE_TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("no signature matches")]
    Mismatch,
    #[error("the signed timestamp is outside the tolerance")]
    Stale,
}

pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("hmac takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"<t>.<payload>"`. Any `v1` may match
/// (secret rotation); other schemes (`v0`) are ignored.
pub fn verify_stripe(secret: &str, header: &str, payload: &[u8], now: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signatures.push(hex::decode(s).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let expected = hmac_sha256(secret.as_bytes(), &[t.to_string().as_bytes(), b".", payload]);
    if !signatures.iter().any(|s| equal(s, &expected)) {
        return Err(SignatureError::Mismatch);
    }
    if (now - t).abs() > STRIPE_TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// `X-Shopify-Hmac-Sha256: <base64 of HMAC-SHA256(raw body)>`.
pub fn verify_shopify(secret: &str, header: &str, payload: &[u8]) -> Result<(), SignatureError> {
    let given = base64::engine::general_purpose::STANDARD.decode(header.trim()).map_err(|_| SignatureError::Malformed)?;
    if equal(&given, &hmac_sha256(secret.as_bytes(), &[payload])) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_signatures() {
        let body = br#"{"id":"evt_1"}"#;
        let sig = hex::encode(hmac_sha256(b"whsec", &[b"1000", b".", body]));
        assert_eq!(verify_stripe("whsec", &format!("t=1000,v1={sig}"), body, 1100), Ok(()));
        assert_eq!(verify_stripe("whsec", &format!("t=1000,v1=00{},v1={sig},v0=zz", &sig[2..]), body, 1000), Ok(()), "any v1 may match");
        assert_eq!(verify_stripe("other", &format!("t=1000,v1={sig}"), body, 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify_stripe("whsec", &format!("t=1000,v1={sig}"), b"{}", 1000), Err(SignatureError::Mismatch));
        assert_eq!(verify_stripe("whsec", &format!("t=1000,v1={sig}"), body, 1400), Err(SignatureError::Stale));
        assert_eq!(verify_stripe("whsec", "garbage", body, 1000), Err(SignatureError::Malformed));
    }

    #[test]
    fn shopify_signatures() {
        let body = b"{\"id\":1}";
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(b"shp", &[body]));
        assert_eq!(verify_shopify("shp", &sig, body), Ok(()));
        assert_eq!(verify_shopify("shp", &sig, b"{}"), Err(SignatureError::Mismatch));
        assert_eq!(verify_shopify("shp", "%%%", body), Err(SignatureError::Malformed));
    }
}
