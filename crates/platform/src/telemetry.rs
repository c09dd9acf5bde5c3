use crate::config::LogFormat;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global tracing subscriber: JSON lines for machines, readable lines for people.
/// `LOG_LEVEL` accepts a level (`info`) or a full filter (`info,sqlx=warn`).
pub fn init(level: &str, format: LogFormat, sentry: bool) {
    let filter = EnvFilter::try_new(level)
        .or_else(|_| EnvFilter::try_new("info"))
        .expect("static filter parses")
        // sqlx logs every statement at info; our own slow-query log covers what matters.
        .add_directive("sqlx=warn".parse().expect("static directive"))
        .add_directive("sea_orm=warn".parse().expect("static directive"));
    let sentry_layers = sentry.then(|| {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
        use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
        // ERROR events become Sentry events carrying the request span's fields (request id,
        // method, route, user id: the span layer keeps them); INFO and WARN lines become the
        // breadcrumbs leading up to them. Spans are sent as traces only at
        // SENTRY_TRACES_SAMPLE_RATE.
        SpanLayer::new()
            .with_filter(LevelFilter::INFO)
            .and_then(ErrorLayer::new().enable_span_attributes().with_filter(LevelFilter::ERROR.or(filter_fn(|m| m.is_span()))))
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let registry = tracing_subscriber::registry().with(filter).with(sentry_layers);
    let result = match format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true).with_span_list(false)).try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    // A second init (tests start many apps in one process) keeps the first subscriber.
    let _ = result;
}

/// Starts the Sentry client when a DSN is configured; keep the guard alive for the process's
/// life (dropping it flushes pending events). Events are scrubbed of anything that looks like a
/// credential before they leave the process.
pub fn init_sentry(config: &crate::Config) -> Option<sentry::ClientInitGuard> {
    let dsn = config.sentry_dsn.as_ref()?.expose().parse().ok()?;
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn);
    options.release = Some(env!("CARGO_PKG_VERSION").into());
    options.environment = Some(config.sentry_environment.clone().into());
    options.send_default_pii = false;
    options.attach_stacktrace = true;
    options.before_send = Some(std::sync::Arc::new(|mut event| {
        scrub_event(&mut event);
        Some(event)
    }));
    Some(sentry::init(options.traces_sample_rate(config.sentry_traces_sample_rate)))
}

const SENSITIVE: [&str; 6] = ["password", "token", "secret", "authorization", "cookie", "card"];

fn scrub_event(event: &mut sentry::protocol::Event<'static>) {
    if let Some(request) = event.request.as_mut() {
        request.headers.retain(|k, _| !SENSITIVE.iter().any(|s| k.to_ascii_lowercase().contains(s)));
        request.cookies = None;
        request.data = None;
    }
    event.extra.retain(|k, _| !SENSITIVE.iter().any(|s| k.to_ascii_lowercase().contains(s)));
    for crumb in event.breadcrumbs.values.iter_mut() {
        crumb.data.retain(|k, _| !SENSITIVE.iter().any(|s| k.to_ascii_lowercase().contains(s)));
    }
}
