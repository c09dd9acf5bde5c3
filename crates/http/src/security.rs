//! Security response headers: Node helmet's defaults, with the seed's CSP directives and HSTS
//! settings. Applied only when a handler did not set the header itself.

pub const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; form-action 'self'; frame-ancestors 'self'; \
         img-src 'self' data: https:; object-src 'none'; script-src 'self'; script-src-attr 'none'; \
         style-src 'self' 'unsafe-inline'; upgrade-insecure-requests",
    ),
    ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// Adds every header above that the handler did not set: one middleware rather than a layer
/// per header (each layer is cloned and allocated for every request).
pub async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in HEADERS {
        let name = axum::http::HeaderName::from_static(name);
        if !h.contains_key(&name) {
            h.insert(name, axum::http::HeaderValue::from_static(value));
        }
    }
    res
}
