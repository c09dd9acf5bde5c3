//! Extractors that parse at the edge and answer problem+json when the input is wrong.

use crate::{problem::ApiError, state::AppState};
use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request},
    http::{StatusCode, header, request::Parts},
};
use domain::Role;
use serde::de::DeserializeOwned;
use services::{Actor, FieldError, RequestMeta};
use std::marker::PhantomData;

/// JSON body: requires a JSON content type, rejects unknown fields (422 naming the field),
/// syntax errors (400) and bodies over the limit (413).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || m.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read")
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body that may be absent (an empty body is `None`); otherwise as [`Json`].
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let empty = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0")
            || (!req.headers().contains_key(header::CONTENT_TYPE)
                && !req.headers().contains_key(header::TRANSFER_ENCODING)
                && !req.headers().contains_key(header::CONTENT_LENGTH));
        if empty {
            return Ok(Self(None));
        }
        Json::<T>::from_request(req, state).await.map(|j| Self(Some(j.0)))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = nul_in_json(bytes) {
        return Err(nul_refused(field));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            // A body that is valid JSON as a whole but has the wrong shape gets a field-level 422
            // (a type error can also come before a syntax error further on: that stays a 400).
            _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
                let msg = inner.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
                ApiError::validation(vec![FieldError::new(field_name(&path, &msg), msg)])
            }
            _ => ApiError::bad_request("malformed_json", format!("the request body is not valid JSON: {inner}")),
        }
    })?;
    de.end().map_err(|_| ApiError::bad_request("malformed_json", "trailing characters after the JSON value"))?;
    Ok(value)
}

/// U+0000 is refused in every text the API takes, before anything is parsed or stored:
/// PostgreSQL's `text` cannot hold it (the statement fails), SQLite would store it, and no
/// name, address or note needs it; so both backends answer the same 422.
fn nul_refused(field: String) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, "must not contain the NUL character (U+0000)")])
}

/// Where a JSON body holds U+0000 (in a string or a key), as a field path (`rates[0].name`).
/// JSON can only write it as the escape `\u0000`, so bodies without one cost a byte scan.
fn nul_in_json(bytes: &[u8]) -> Option<String> {
    let mut i = 0;
    let mut escaped_nul = false;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes.get(i + 1..i + 6) == Some(&b"u0000"[..]) {
                escaped_nul = true;
                break;
            }
            i += 2; // the escaped character, which may itself be a backslash
        } else {
            i += 1;
        }
    }
    if !escaped_nul {
        return None;
    }
    // Invalid JSON: the parser reports that instead.
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    fn find(v: &serde_json::Value, path: String) -> Option<String> {
        let join = |key: &str| if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() { "body".into() } else { path }),
            serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| find(v, format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => {
                map.iter().find_map(|(k, v)| if k.contains('\0') { Some(join(&k.replace('\0', ""))) } else { find(v, join(k)) })
            }
            _ => None,
        }
    }
    find(&value, String::new())
}

/// serde names missing and unknown fields in the message, not in the path.
fn field_name(path: &str, msg: &str) -> String {
    let named = ["unknown field `", "missing field `"].iter().find_map(|p| msg.strip_prefix(p).and_then(|rest| rest.split('`').next()));
    match (named, path) {
        (Some(name), "." | "") => name.to_owned(),
        // serde_path_to_error already ends the path with an unknown field's name.
        (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        (Some(name), p) => format!("{p}.{name}"),
        (None, "." | "") => "body".to_owned(),
        (None, p) => p.to_owned(),
    }
}

/// Query string, with the same error shape.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        if let Some((key, _)) = form_urlencoded::parse(q.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(nul_refused(key.replace('\0', "")));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            ApiError::validation(vec![FieldError::new(field_name(&path, &msg).replace("body", "query"), msg)])
        })
    }
}

/// Path parameters; a malformed id is simply a resource that does not exist (404).
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // A request line cannot carry a raw NUL, only `%00`; no resource has one in its name
        // (and PostgreSQL could not even compare it).
        if parts.uri.path().contains("%00") {
            return Err(ApiError::not_found());
        }
        axum::extract::Path::<T>::from_request_parts(parts, state).await.map(|p| Path(p.0)).map_err(|_| ApiError::not_found())
    }
}

/// Minimum role an [`Auth`] extractor demands.
pub trait MinRole {
    const ROLE: Role;
}
pub struct AnyRole;
pub struct StaffRole;
pub struct AdminRole;
impl MinRole for AnyRole {
    const ROLE: Role = Role::Customer;
}
impl MinRole for StaffRole {
    const ROLE: Role = Role::Staff;
}
impl MinRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// The one place roles are enforced: 401 without a valid bearer token, 403 when the role is
/// below `R`. Also carries the request's audit metadata with the actor filled in.
pub struct Auth<R: MinRole = AnyRole> {
    pub actor: Actor,
    pub meta: RequestMeta,
    _role: PhantomData<R>,
}

pub type Staff = Auth<StaffRole>;
pub type Admin = Auth<AdminRole>;

impl<S: Send + Sync, R: MinRole> FromRequestParts<S> for Auth<R>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // The client middleware already verified a valid token; only a missing or bad one is
        // looked at again here, for its error.
        let actor = match parts.extensions.get::<Verified>() {
            Some(Verified(actor)) => *actor,
            None => {
                let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
                AppState::from_ref(state).identity.tokens().verify_access(token).map_err(ApiError::from)?
            }
        };
        if !actor.role.at_least(R::ROLE) {
            return Err(ApiError::forbidden(format!("this requires the {} role", R::ROLE.as_str())));
        }
        tracing::Span::current().record("user_id", tracing::field::display(actor.id));
        let meta = meta_of(parts).with_actor(actor);
        Ok(Self { actor, meta, _role: PhantomData })
    }
}

/// Audit metadata of an anonymous request.
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Meta(meta_of(parts)))
    }
}

fn meta_of(parts: &Parts) -> RequestMeta {
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    RequestMeta {
        actor: None,
        ip: parts
            .extensions
            .get::<crate::client::ClientIp>()
            .map(|c| c.0.to_string())
            .or_else(|| parts.extensions.get::<ConnectInfo<crate::net::ClientAddr>>().map(|c| c.0.0.ip().to_string())),
        user_agent: header(header::USER_AGENT),
        request_id: parts.extensions.get::<crate::middleware::RequestId>().map(|r| r.0.clone()),
    }
}

/// The `Idempotency-Key` header, if sent (validated by the service).
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(None)),
            Some(v) => v
                .to_str()
                .map(|s| Self(Some(s.to_owned())))
                .map_err(|_| ApiError::bad_request("invalid_idempotency_key", "Idempotency-Key must be visible ASCII")),
        }
    }
}

/// The bearer's identity when a token is sent (401 if it is invalid), `None` when not.
pub struct OptionalAuth(pub Option<Actor>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalAuth
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(Self(None));
        }
        let auth = Auth::<AnyRole>::from_request_parts(parts, state).await?;
        Ok(Self(Some(auth.actor)))
    }
}

/// A cookie's value from the request headers.
pub fn read_cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The actor of a request whose bearer token was verified (set by the client middleware).
#[derive(Clone, Copy)]
pub struct Verified(pub Actor);

#[cfg(test)]
mod tests {
    use super::nul_in_json;

    #[test]
    fn finds_nul_escapes_by_field_and_ignores_escaped_backslashes() {
        assert_eq!(nul_in_json(br#"{"name": "a\u0000b"}"#).as_deref(), Some("name"));
        assert_eq!(nul_in_json(br#"{"rates": [{"name": "x"}, {"name": "\u0000"}]}"#).as_deref(), Some("rates[1].name"));
        assert_eq!(nul_in_json(br#"{"options": {"a\u0000b": "x"}}"#).as_deref(), Some("options.ab"));
        assert_eq!(nul_in_json(br#""\u0000""#).as_deref(), Some("body"));
        // A backslash, then the six characters `u0000`: no NUL.
        assert_eq!(nul_in_json(br#"{"name": "a\\u0000b"}"#), None);
        assert_eq!(nul_in_json(br#"{"name": "a\\\u0000b"}"#).as_deref(), Some("name"));
        assert_eq!(nul_in_json(br#"{"name": "plain"}"#), None);
        // Not JSON: left to the parser's own error.
        assert_eq!(nul_in_json(br#"{"name": "\u0000"#), None);
    }
}
