//! Who is calling: the client's address (through trusted proxies only), and the key that rate
//! limits and read-your-writes follow: the user when a valid bearer token is sent, else the
//! address. One middleware applies both rate limits and read routing.

use crate::{net::ClientAddr, problem::ApiError, state::AppState};
use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use ipnet::IpNet;
use platform::ratelimit::{Decision, Policy};
use std::{net::IpAddr, sync::Arc};

#[derive(Clone, Debug)]
pub struct ClientIpResolver {
    trusted: Arc<Vec<IpNet>>,
}

/// The client's address as resolved once per request (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl ClientIpResolver {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted: Arc::new(trusted) }
    }

    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The peer, unless it is a trusted proxy: then the right-most `X-Forwarded-For` hop that
    /// is not itself trusted (hops left of it could be forged by the client).
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(&peer) {
            return peer;
        }
        let hops = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
        let hops: Vec<&str> = hops.map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = ip;
            if !self.trusted(&ip) {
                break;
            }
        }
        client
    }
}

/// Routes that are never limited: probes, metrics, docs.
fn exempt(path: &str) -> bool {
    matches!(path, "/live" | "/ready" | "/health" | "/metrics" | "/openapi.json") || path.starts_with("/docs")
}

fn auth_route(path: &str) -> bool {
    matches!(path, "/api/v1/auth/login" | "/api/v1/auth/register" | "/api/v1/auth/password/forgot" | "/api/v1/auth/password/reset")
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Marks a client as a recent writer across instances (the in-process map covers this one).
const WROTE_COOKIE: &str = "valuva_rw";

pub async fn identify_limit_route(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<ClientAddr>>().map(|c| c.0.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let ip = state.client_ip.resolve(peer, req.headers());
    req.extensions_mut().insert(ClientIp(ip));
    let path = req.uri().path().to_owned();
    if exempt(&path) {
        return next.run(req).await;
    }
    let user = crate::extract::bearer(req.headers()).and_then(|t| state.identity.tokens().verify_access(t).ok());
    let client = match user {
        Some(actor) => {
            req.extensions_mut().insert(crate::extract::Verified(actor));
            format!("user:{}", actor.id)
        }
        None => format!("ip:{ip}"),
    };

    let mut decision = None;
    if state.config.rate_limit_enabled {
        let limits = &state.limits;
        // Login and friends keep their own policy, per address whoever claims to be calling: a
        // broad rule (`/api/*`) must not lift the limit that slows password guessing.
        let (policy, key) = match limits.rule_for(req.method().as_str(), &path) {
            _ if auth_route(&path) => (&limits.auth, format!("ip:{ip}")),
            Some(rule) => (&rule.policy, client.clone()),
            None => (&limits.default, client.clone()),
        };
        let d = state.limiter.check(policy, &key).await;
        if !d.allowed {
            let mut res = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry later").into_response();
            let secs = d.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            rate_limit_headers(res.headers_mut(), policy, &d);
            return res;
        }
        decision = Some((policy, d));
    }

    let write = is_write(req.method());
    let wrote_recently = state.recent_writers.contains_key(&client) || crate::extract::read_cookie(req.headers(), WROTE_COOKIE).is_some();
    let mut res = store::with_primary_reads(wrote_recently, next.run(req)).await;
    if write && res.status().is_success() {
        state.recent_writers.insert(client, ());
        let max_age = state.config.read_your_writes_ms.div_ceil(1000).max(1);
        let cookie = format!("{WROTE_COOKIE}=1; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if let Some((policy, d)) = decision {
        rate_limit_headers(res.headers_mut(), policy, &d);
    }
    res
}

/// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
fn rate_limit_headers(h: &mut HeaderMap, policy: &Policy, d: &Decision) {
    let policy_value = format!("\"{}\";q={};w={}", policy.name, policy.limit, policy.window.as_secs().max(1));
    let state_value = format!("\"{}\";r={};t={}", policy.name, d.remaining, d.reset.as_secs_f64().ceil() as u64);
    if let (Ok(p), Ok(s)) = (HeaderValue::from_str(&policy_value), HeaderValue::from_str(&state_value)) {
        h.insert("ratelimit-policy", p);
        h.insert("ratelimit", s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_proxies() {
        let r = ClientIpResolver::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(r.resolve(client, &headers("1.2.3.4")), client);
        // Through a trusted proxy: the right-most untrusted hop, not the forgeable left one.
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(r.resolve(proxy, &headers("6.6.6.6, 203.0.113.9, 10.0.0.7")), client);
        // Garbage stops the walk at the last good hop.
        assert_eq!(r.resolve(proxy, &headers("nonsense")), proxy);
    }
}
