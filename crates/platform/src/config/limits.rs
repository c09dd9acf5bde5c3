//! Rate-limit policies: the default one, the stricter one of the auth routes, and per-endpoint
//! rules from `RATE_LIMIT_RULES`, e.g.
//! `checkout=POST /api/v1/checkout 30/1m, uploads=/api/v1/admin/uploads 20/1h`.

use super::{Config, ConfigError, invalid};
use crate::ratelimit::Policy;
use std::time::Duration;

const VAR: &str = "RATE_LIMIT_RULES";

/// Every policy a request may count against, built once from the configuration.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub default: Policy,
    /// Login, register and password reset, per client address.
    pub auth: Policy,
    /// In the order given; the first that matches a request decides its policy.
    pub rules: Vec<LimitRule>,
}

impl RateLimits {
    pub fn rule_for(&self, method: &str, path: &str) -> Option<&LimitRule> {
        self.rules.iter().find(|r| r.matches(method, path))
    }

    pub fn policies(&self) -> Vec<Policy> {
        [self.default.clone(), self.auth.clone()].into_iter().chain(self.rules.iter().map(|r| r.policy.clone())).collect()
    }
}

/// `name=[METHOD ]PATH LIMIT/WINDOW`: requests to PATH (with METHOD, or any) count against a
/// policy of their own instead of the default (the auth routes keep theirs). In PATH a `{…}`
/// segment stands for any one segment and a last segment `*` for any rest.
#[derive(Debug, Clone)]
pub struct LimitRule {
    pub method: Option<String>,
    segments: Vec<Segment>,
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Any,
    Rest,
}

impl LimitRule {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        // A HEAD request runs the GET handler, and so counts as one.
        let method = if method == "HEAD" { "GET" } else { method };
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        let mut parts = path.trim_start_matches('/').split('/');
        for seg in &self.segments {
            match (seg, parts.next()) {
                (Segment::Rest, _) => return true,
                (Segment::Any, Some(p)) if !p.is_empty() => {}
                (Segment::Literal(l), Some(p)) if l == p => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }

    fn parse(entry: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| invalid(VAR, format!("{entry:?}: {why} (expected name=[METHOD ]/path LIMIT/WINDOW)"));
        let (name, rest) = entry.split_once('=').ok_or_else(|| bad("no name"))?;
        let name = name.trim();
        let valid_name = (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(bad("the name must be 1-32 of a-z, 0-9 and _"));
        }
        if matches!(name, "default" | "auth") {
            return Err(bad("the names default and auth are taken"));
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (method, path, quota) = match words[..] {
            [path, quota] => (None, path, quota),
            [method, path, quota] if method.bytes().all(|b| b.is_ascii_uppercase()) => (Some(method.to_owned()), path, quota),
            _ => return Err(bad("a method (upper case) is optional, a path and a quota are not")),
        };
        let path = path.strip_prefix('/').ok_or_else(|| bad("the path starts with /"))?;
        let segments: Vec<Segment> = path
            .split('/')
            .map(|s| match s {
                "*" => Segment::Rest,
                s if s.starts_with('{') && s.ends_with('}') => Segment::Any,
                s => Segment::Literal(s.to_owned()),
            })
            .collect();
        if segments.iter().rev().skip(1).any(|s| *s == Segment::Rest) {
            return Err(bad("* may only be the last segment"));
        }
        let (limit, window) = quota.split_once('/').ok_or_else(|| bad("the quota is LIMIT/WINDOW, e.g. 30/1m"))?;
        let limit: u32 = limit.parse().ok().filter(|l| *l > 0).ok_or_else(|| bad("the limit is a whole number above 0"))?;
        let window = parse_window(window).ok_or_else(|| bad("the window is a number with ms, s, m or h, above 0"))?;
        Ok(Self { method, segments, policy: Policy { name: name.into(), limit, window } })
    }
}

fn parse_window(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..split].parse().ok().filter(|n| *n > 0)?;
    let ms = match &s[split..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms)?))
}

impl Config {
    /// Every rate-limit policy; `RATE_LIMIT_RULES` is checked by [`Config::validate`].
    pub fn rate_limits(&self) -> Result<RateLimits, ConfigError> {
        let rules: Vec<LimitRule> =
            self.rate_limit_rules.split(',').map(str::trim).filter(|e| !e.is_empty()).map(LimitRule::parse).collect::<Result<_, _>>()?;
        for (i, r) in rules.iter().enumerate() {
            if rules[..i].iter().any(|o| o.policy.name == r.policy.name) {
                return Err(invalid(VAR, format!("the name {} is used twice", r.policy.name)));
            }
        }
        Ok(RateLimits {
            default: Policy {
                name: "default".into(),
                limit: self.rate_limit_max_requests,
                window: Duration::from_millis(self.rate_limit_window_ms),
            },
            auth: Policy {
                name: "auth".into(),
                limit: self.rate_limit_auth_max_requests,
                window: Duration::from_millis(self.rate_limit_auth_window_ms),
            },
            rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rules: &str) -> Result<RateLimits, ConfigError> {
        Config { rate_limit_rules: rules.into(), ..Config::default() }.rate_limits()
    }

    #[test]
    fn rules_match_method_and_path_in_order() {
        let l = limits(concat!(
            "checkout=POST /api/v1/checkout 30/1m, items=/api/v1/carts/{id}/items 5/10s, ",
            "ships=/api/v1/admin/orders/{id}/ship 9/1s, admin=/api/v1/admin/* 1000/1h, search=GET /api/v1/products 100/1m",
        ))
        .unwrap();
        let name = |m: &str, p: &str| l.rule_for(m, p).map(|r| r.policy.name.to_string());
        // The first rule that matches wins: `ships` before the broader `admin`.
        assert_eq!(name("POST", "/api/v1/admin/orders/1/ship").as_deref(), Some("ships"));
        assert_eq!(name("HEAD", "/api/v1/products").as_deref(), Some("search"));
        assert_eq!(name("POST", "/api/v1/checkout").as_deref(), Some("checkout"));
        assert_eq!(name("GET", "/api/v1/checkout"), None);
        assert_eq!(name("POST", "/api/v1/checkout/x"), None);
        assert_eq!(name("PATCH", "/api/v1/carts/0193/items").as_deref(), Some("items"));
        assert_eq!(name("PATCH", "/api/v1/carts//items"), None);
        assert_eq!(name("GET", "/api/v1/carts/0193"), None);
        assert_eq!(name("GET", "/api/v1/admin/orders/1/fulfill").as_deref(), Some("admin"));
        let checkout = &l.rule_for("POST", "/api/v1/checkout").unwrap().policy;
        assert_eq!((checkout.limit, checkout.window), (30, Duration::from_secs(60)));
        assert_eq!(l.rule_for("GET", "/api/v1/carts/1/items").unwrap().policy.window, Duration::from_secs(10));
        assert_eq!(l.policies().len(), 7);
        assert!(limits("").unwrap().rules.is_empty());
    }

    #[test]
    fn bad_rules_name_the_variable_and_the_entry() {
        for bad in [
            "/api/v1/checkout 30/1m",
            "Checkout=/api/v1/checkout 30/1m",
            "default=/api/v1/checkout 30/1m",
            "c=post /api/v1/checkout 30/1m",
            "c=api/v1/checkout 30/1m",
            "c=/api/v1/checkout 0/1m",
            "c=/api/v1/checkout 30/1d",
            "c=/api/v1/checkout 30/0s",
            "c=/api/v1/checkout 30",
            "c=/api/*/checkout 30/1m",
            "c=/a 1/1s, c=/b 1/1s",
        ] {
            let e = limits(bad).unwrap_err().to_string();
            assert!(e.contains("RATE_LIMIT_RULES"), "{bad}: {e}");
        }
    }
}
