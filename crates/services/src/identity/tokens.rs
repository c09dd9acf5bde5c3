use crate::{Actor, ServiceError, ServiceResult};
use domain::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const ISSUER: &str = "valuva";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: Role,
    iat: i64,
    exp: i64,
    iss: String,
}

#[derive(Debug, Clone, Copy)]
pub struct TokenSettings {
    pub access_ttl_seconds: u64,
    pub refresh_ttl_days: u64,
    pub session_max_age_days: u64,
}

/// Signs and checks access tokens. The algorithm is pinned to HS256: a token that names any
/// other algorithm (including `none`) is refused.
#[derive(Clone)]
pub struct TokenIssuer {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    pub settings: TokenSettings,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], settings: TokenSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Self { enc: EncodingKey::from_secret(secret), dec: DecodingKey::from_secret(secret), validation, settings }
    }

    pub fn issue_access(&self, user: Uuid, role: Role) -> ServiceResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims { sub: user, role, iat: now, exp: now + self.settings.access_ttl_seconds as i64, iss: ISSUER.into() };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc).map_err(ServiceError::internal)
    }

    pub fn verify_access(&self, token: &str) -> ServiceResult<Actor> {
        jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation)
            .map(|d| Actor { id: d.claims.sub, role: d.claims.role })
            .map_err(|_| ServiceError::unauthorized("invalid_token", "the access token is invalid or expired"))
    }

    pub fn refresh_ttl(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::days(self.settings.refresh_ttl_days as i64)
    }

    pub fn session_max_age(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::days(self.settings.session_max_age_days as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            b"0123456789abcdef0123456789abcdef",
            TokenSettings { access_ttl_seconds: 60, refresh_ttl_days: 1, session_max_age_days: 1 },
        )
    }

    #[test]
    fn round_trip_and_rejections() {
        let t = issuer();
        let id = Uuid::now_v7();
        let tok = t.issue_access(id, Role::Staff).unwrap();
        assert_eq!(t.verify_access(&tok).unwrap(), Actor { id, role: Role::Staff });
        // Tampered payload.
        let mut parts: Vec<String> = tok.split('.').map(String::from).collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap().replace("staff", "admin");
        parts[1] = b64.encode(payload);
        assert!(t.verify_access(&parts.join(".")).is_err());
        // alg: none.
        let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(t.verify_access(&format!("{none_header}.{}.", parts[1])).is_err());
        // Another key.
        let other = TokenIssuer::new(b"another-secret-another-secret-xx", t.settings);
        assert!(other.verify_access(&tok).is_err());
    }
}
