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
