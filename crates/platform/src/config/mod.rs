//! One typed configuration, loaded once from the environment (and an optional `.env`, read by
//! the binary before calling [`Config::load`]), validated, then passed explicitly.

use crate::Secret;
use figment::{
    Figment,
    providers::{Env, Serialized},
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

mod db;
mod limits;
mod scale;
pub use db::DatabaseSettings;
use db::backend_of;
pub use limits::{LimitRule, RateLimits};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Every field is read from the upper-cased environment variable of the same name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub log_level: String,
    /// Unset: readable lines on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    pub database_url: String,
    pub database_read_url: Option<String>,
    pub db_read_replica_host: Option<String>,
    pub db_read_replica_port: Option<u16>,
    pub db_pool_max: Option<u32>,
    pub db_pool_min: u32,
    pub db_read_pool_max: Option<u32>,
    pub db_statement_timeout: u64,
    pub db_slow_query_ms: u64,
    /// Reads skip the replica while its replay lag is above this.
    pub db_replica_max_lag_ms: u64,
    /// After a write, the same client's reads go to the primary for this long.
    pub read_your_writes_ms: u64,
    /// Unset: cache and rate limits in process only.
    #[serde(skip_serializing)]
    pub redis_url: Option<Secret>,
    /// Namespaces every Redis key (several deployments may share one Redis).
    pub redis_prefix: String,
    /// Timeout of one Redis call; past it the in-process fallback answers.
    pub redis_timeout_ms: u64,
    pub cache_enabled: bool,
    /// Tier-1 (in-process) entries live this long; pub/sub drops them sooner on writes.
    pub cache_local_ttl_ms: u64,
    pub cache_local_max_mb: u64,
    pub cache_product_ttl_seconds: u64,
    pub cache_listing_ttl_seconds: u64,
    pub cache_category_ttl_seconds: u64,
    pub rate_limit_enabled: bool,
    pub rate_limit_window_ms: u64,
    pub rate_limit_max_requests: u32,
    /// Login, register and password reset, per client address.
    pub rate_limit_auth_window_ms: u64,
    pub rate_limit_auth_max_requests: u32,
    /// Per-endpoint policies, `name=[METHOD ]PATH LIMIT/WINDOW`, comma-separated.
    pub rate_limit_rules: String,
    /// Comma-separated addresses or CIDR ranges of proxies whose `X-Forwarded-For` is trusted.
    pub trusted_proxies: String,
    pub migrate_on_start: bool,
    #[serde(skip_serializing)]
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_days: u64,
    /// A sign-in's session ends this long after it began, however often it is refreshed.
    pub session_max_age_days: u64,
    pub password_reset_ttl_minutes: u64,
    pub auth_cookies: bool,
    pub request_timeout_ms: u64,
    pub shutdown_timeout_seconds: u64,
    pub audit_retention_days: u32,
    /// Without SMTP_URL, emails are written here as .eml files.
    pub email_outbox_dir: String,
    /// `smtp://user:pass@host:port` (STARTTLS with `?tls=required`) or `smtps://…`.
    #[serde(skip_serializing)]
    pub smtp_url: Option<Secret>,
    /// Run the job worker inside `serve` (turn off when `valuva worker` processes run apart).
    pub worker_enabled: bool,
    /// How often an idle worker looks for due jobs.
    pub job_poll_ms: u64,
    /// A claimed job's lease; renewed while it runs, taken over by another worker when it lapses.
    pub job_lease_seconds: u64,
    /// First retry delay of a failed job (doubling per attempt, jittered, at most an hour).
    pub job_retry_base_ms: u64,
    /// Jobs one worker claims and runs at once.
    pub job_concurrency: u64,
    /// Succeeded jobs are deleted after this many days.
    pub job_retention_days: u64,
    /// Where uploads go: `file://<dir>` (served by the API under /media) or
    /// `s3://bucket[/prefix][?endpoint=…&region=…]` (credentials from the `AWS_*` environment or
    /// the query). A secret: the query may carry keys.
    #[serde(skip_serializing, default = "default_storage_url")]
    pub storage_url: Secret,
    /// Base URL clients fetch stored files from. Unset: `/media` for a directory, the bucket's
    /// AWS address for S3.
    pub storage_public_url: Option<String>,
    pub upload_max_bytes: u64,
    pub email_from: String,
    /// Storefront shows "low stock" at or below this many units.
    pub low_stock_threshold: i64,
    /// Show exact stock counts on the storefront (admin views always do).
    pub expose_stock_counts: bool,
    /// Unset: on for a SQLite database file that does not exist yet, off otherwise.
    pub seed_on_startup: Option<bool>,
    /// Unpaid orders are cancelled and their stock released after this long.
    pub reservation_ttl_minutes: u64,
    /// Carts idle longer than this are gone.
    pub cart_ttl_days: u64,
    /// How often background housekeeping (reservation expiry, audit sealing, key purge) runs.
    pub housekeeping_interval_ms: u64,
    /// Comma-separated origins allowed to call the API from a browser; `*` allows any origin
    /// (without credentials). Empty: no cross-origin access.
    pub cors_origin: String,
    /// Serve `/metrics` on this port instead of the API port.
    pub metrics_port: Option<u16>,
    /// Require `Authorization: Bearer <token>` on `/metrics`.
    #[serde(skip_serializing)]
    pub metrics_token: Option<Secret>,
    /// Report panics and 5xx errors to Sentry (or any server speaking its envelope protocol).
    #[serde(skip_serializing)]
    pub sentry_dsn: Option<Secret>,
    /// Share of requests traced for performance monitoring (0.0–1.0).
    pub sentry_traces_sample_rate: f32,
    pub sentry_environment: String,
    #[serde(skip_serializing)]
    pub stripe_secret_key: Option<Secret>,
    #[serde(skip_serializing)]
    pub stripe_webhook_secret: Option<Secret>,
    /// Stripe's API; tests point it at a local fake.
    pub stripe_api_base: String,
    #[serde(skip_serializing)]
    pub shopify_webhook_secret: Option<Secret>,
    pub breaker_payments_failures: u32,
    pub breaker_payments_open_seconds: u64,
    pub breaker_email_failures: u32,
    pub breaker_email_open_seconds: u64,
    pub breaker_storage_failures: u32,
    pub breaker_storage_open_seconds: u64,
    /// Calls allowed through a half-open breaker before it decides.
    pub breaker_half_open_probes: u32,
    pub retry_max_attempts: u32,
    pub retry_base_delay_ms: u64,
    /// Timeout of one outbound call attempt.
    pub outbound_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8080,
            log_level: "info".into(),
            log_format: None,
            database_url: "sqlite://valuva.db".into(),
            database_read_url: None,
            db_read_replica_host: None,
            db_read_replica_port: None,
            db_pool_max: None,
            db_pool_min: 0,
            db_read_pool_max: None,
            db_statement_timeout: 30_000,
            db_slow_query_ms: 1_000,
            db_replica_max_lag_ms: 5_000,
            read_your_writes_ms: 2_000,
            redis_url: None,
            redis_prefix: "valuva".into(),
            redis_timeout_ms: 250,
            cache_enabled: true,
            cache_local_ttl_ms: 5_000,
            cache_local_max_mb: 32,
            cache_product_ttl_seconds: 300,
            cache_listing_ttl_seconds: 60,
            cache_category_ttl_seconds: 300,
            rate_limit_enabled: true,
            rate_limit_window_ms: 60_000,
            rate_limit_max_requests: 600,
            rate_limit_auth_window_ms: 60_000,
            rate_limit_auth_max_requests: 10,
            rate_limit_rules: String::new(),
            trusted_proxies: String::new(),
            migrate_on_start: true,
            jwt_secret: None,
            access_token_ttl_seconds: 900,
            refresh_token_ttl_days: 30,
            session_max_age_days: 90,
            password_reset_ttl_minutes: 30,
            auth_cookies: false,
            request_timeout_ms: 30_000,
            shutdown_timeout_seconds: 30,
            audit_retention_days: 365,
            email_outbox_dir: "outbox".into(),
            smtp_url: None,
            worker_enabled: true,
            job_poll_ms: 500,
            job_lease_seconds: 30,
            job_retry_base_ms: 1_000,
            job_concurrency: 32,
            job_retention_days: 7,
            storage_url: default_storage_url(),
            storage_public_url: None,
            upload_max_bytes: 10 * 1024 * 1024,
            email_from: "Valuva <no-reply@localhost>".into(),
            low_stock_threshold: 5,
            expose_stock_counts: false,
            seed_on_startup: None,
            reservation_ttl_minutes: 30,
            cart_ttl_days: 30,
            housekeeping_interval_ms: 1000,
            cors_origin: String::new(),
            metrics_port: None,
            metrics_token: None,
            sentry_dsn: None,
            sentry_traces_sample_rate: 0.0,
            sentry_environment: "production".into(),
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: "https://api.stripe.com".into(),
            shopify_webhook_secret: None,
            breaker_payments_failures: 5,
            breaker_payments_open_seconds: 30,
            breaker_email_failures: 3,
            breaker_email_open_seconds: 30,
            breaker_storage_failures: 5,
            breaker_storage_open_seconds: 30,
            breaker_half_open_probes: 1,
            retry_max_attempts: 3,
            retry_base_delay_ms: 200,
            outbound_timeout_ms: 10_000,
        }
    }
}

fn default_storage_url() -> Secret {
    Secret::new("file://uploads")
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {var}: {message}")]
    Invalid { var: String, message: String },
}

pub(crate) fn invalid(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var: var.to_owned(), message: message.into() }
}

/// The services Valuva calls out to, each behind a breaker of its own. (Shipping rates come
/// from the shop's own zones, so no carrier is called and there is no shipping breaker.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    Payments,
    Email,
    Storage,
}

impl Outbound {
    /// The breaker's label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Payments => "payments",
            Self::Email => "email",
            Self::Storage => "storage",
        }
    }
}

/// Which database engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Config {
    /// Reads the process environment over the defaults and validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        let mut cfg: Config = Figment::from(Serialized::defaults(Config::default())).merge(Env::raw()).extract().map_err(|e| {
            let var = e.path.last().map(|k| k.to_uppercase()).unwrap_or_else(|| "environment".into());
            invalid(&var, e.kind.to_string())
        })?;
        // Read raw: a password is any string, which figment would take for a number or unquote.
        if let Some(url) = db::url_from_parts(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))? {
            cfg.database_url = url;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.primary_db()?;
        self.replica_db()?;
        if let Some(s) = &self.jwt_secret
            && s.expose().len() < 32
        {
            return Err(invalid("JWT_SECRET", "must be at least 32 characters"));
        }
        let positive = [
            ("ACCESS_TOKEN_TTL_SECONDS", self.access_token_ttl_seconds),
            ("REFRESH_TOKEN_TTL_DAYS", self.refresh_token_ttl_days),
            ("SESSION_MAX_AGE_DAYS", self.session_max_age_days),
            ("PASSWORD_RESET_TTL_MINUTES", self.password_reset_ttl_minutes),
            ("REQUEST_TIMEOUT_MS", self.request_timeout_ms),
            ("DB_STATEMENT_TIMEOUT", self.db_statement_timeout),
        ];
        if let Some((var, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(var, "must be greater than 0"));
        }
        // Lifetimes are added to dates: far beyond any real session, they would overflow.
        for (var, days) in [("REFRESH_TOKEN_TTL_DAYS", self.refresh_token_ttl_days), ("SESSION_MAX_AGE_DAYS", self.session_max_age_days)] {
            if days > 3650 {
                return Err(invalid(var, "must be at most 3650 days"));
            }
        }
        for origin in self.cors_origins() {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid("CORS_ORIGIN", format!("{origin:?} is not an origin like https://shop.example.com")));
            }
        }
        if !(0.0..=1.0).contains(&self.sentry_traces_sample_rate) {
            return Err(invalid("SENTRY_TRACES_SAMPLE_RATE", "must be between 0.0 and 1.0"));
        }
        if let Some(dsn) = &self.sentry_dsn
            && dsn.expose().parse::<sentry::types::Dsn>().is_err()
        {
            return Err(invalid("SENTRY_DSN", "is not a valid DSN (https://key@host/project)"));
        }
        self.validate_scale_out()?;
        if self.db_pool_max == Some(0) {
            return Err(invalid("DB_POOL_MAX", "must be greater than 0"));
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        backend_of(&self.database_url).unwrap_or(Backend::Sqlite)
    }

    /// The resilience layer (retry policy and breaker) for one outbound service.
    pub fn resilience(&self, service: Outbound) -> crate::resilience::Resilience {
        let (failures, open) = match service {
            Outbound::Payments => (self.breaker_payments_failures, self.breaker_payments_open_seconds),
            Outbound::Email => (self.breaker_email_failures, self.breaker_email_open_seconds),
            Outbound::Storage => (self.breaker_storage_failures, self.breaker_storage_open_seconds),
        };
        let service = service.name();
        crate::resilience::Resilience {
            policy: crate::resilience::RetryPolicy {
                max_attempts: self.retry_max_attempts.max(1),
                base_delay: Duration::from_millis(self.retry_base_delay_ms),
                timeout: Duration::from_millis(self.outbound_timeout_ms.max(1)),
            },
            breaker: crate::resilience::Breaker::new(service, failures, Duration::from_secs(open), self.breaker_half_open_probes),
        }
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origin.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect()
    }

    pub fn bind_addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The SQLite database file, when the primary is a SQLite file (not `:memory:`).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite://").or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| path.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Config::load` does with an empty environment: every field has a default (secrets
    /// are not serialised into the defaults, so each needs its own).
    #[test]
    fn defaults_alone_make_a_config() {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default())).extract().expect("defaults deserialise");
        assert_eq!(cfg.storage_url.expose(), "file://uploads");
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cfg = Config { database_url: "mysql://x".into(), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("DATABASE_URL"));
        let cfg = Config { jwt_secret: Some(Secret::new("short")), ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("JWT_SECRET"));
    }

    /// Records the field names serde asks a deserializer for, secrets included.
    struct FieldNames<'a>(&'a mut Vec<&'static str>);

    impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only a struct's field names are wanted"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend(fields);
            self.deserialize_any(v)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    /// `.env.example` says it lists every variable Valuva reads: hold it to that.
    #[test]
    fn env_example_lists_every_variable() {
        let mut fields = Vec::new();
        let _ = Config::deserialize(FieldNames(&mut fields));
        assert!(fields.len() > 50, "{fields:?}");
        let example = include_str!("../../../../.env.example");
        let missing: Vec<String> = fields.iter().map(|f| f.to_uppercase()).filter(|var| !example.contains(&format!("# {var}="))).collect();
        assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    }

    #[test]
    fn sqlite_path() {
        let cfg = Config::default();
        assert_eq!(cfg.sqlite_path().unwrap(), std::path::PathBuf::from("valuva.db"));
        let cfg = Config { database_url: "sqlite::memory:".into(), ..Config::default() };
        assert!(cfg.sqlite_path().is_none());
    }
}
