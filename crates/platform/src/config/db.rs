//! Database pool settings: the primary and the optional read replica.

use super::{Backend, Config, ConfigError, invalid};
use crate::Secret;
use std::time::Duration;

/// Connection settings for one pool, with the seed's URL query parameters
/// (`connection_limit`, `pool_timeout`, `connect_timeout`, in seconds) taken off the URL.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub backend: Backend,
    pub url: Secret,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    pub slow_query: Duration,
}

impl Config {
    pub fn primary_db(&self) -> Result<DatabaseSettings, ConfigError> {
        self.db_settings("DATABASE_URL", &self.database_url, self.db_pool_max)
    }

    /// The read replica, from `DATABASE_READ_URL` or from the primary URL with
    /// `DB_READ_REPLICA_HOST`/`DB_READ_REPLICA_PORT` swapped in. `None`: reads use the primary.
    pub fn replica_db(&self) -> Result<Option<DatabaseSettings>, ConfigError> {
        let max = self.db_read_pool_max.or(self.db_pool_max);
        if let Some(url) = &self.database_read_url {
            return self.db_settings("DATABASE_READ_URL", url, max).map(Some);
        }
        let Some(host) = &self.db_read_replica_host else {
            return Ok(None);
        };
        let mut url = url::Url::parse(&self.database_url).map_err(|e| invalid("DATABASE_URL", e.to_string()))?;
        url.set_host(Some(host)).map_err(|e| invalid("DB_READ_REPLICA_HOST", e.to_string()))?;
        if let Some(port) = self.db_read_replica_port {
            url.set_port(Some(port)).map_err(|_| invalid("DB_READ_REPLICA_PORT", "cannot be set on this URL"))?;
        }
        self.db_settings("DB_READ_REPLICA_HOST", url.as_str(), max).map(Some)
    }

    fn db_settings(&self, var: &str, raw: &str, max: Option<u32>) -> Result<DatabaseSettings, ConfigError> {
        let backend = backend_of(raw).ok_or_else(|| invalid(var, "must start with sqlite:// or postgres://"))?;
        let mut url = url::Url::parse(raw).map_err(|e| invalid(var, e.to_string()))?;
        let mut limit = None;
        let mut pool_timeout = 10;
        let mut connect_timeout = 10;
        let mut keep = Vec::new();
        for (k, v) in url.query_pairs() {
            let secs = || v.parse::<u64>().map_err(|_| invalid(var, format!("query parameter {k} must be a whole number")));
            match k.as_ref() {
                "connection_limit" => limit = Some(secs()? as u32),
                "pool_timeout" => pool_timeout = secs()?,
                "connect_timeout" => connect_timeout = secs()?,
                _ => keep.push((k.into_owned(), v.into_owned())),
            }
        }
        url.set_query(None);
        if !keep.is_empty() {
            url.query_pairs_mut().extend_pairs(keep);
        }
        let default_max = match backend {
            // One writer at a time anyway; a few readers beside it in WAL mode.
            Backend::Sqlite => 4,
            Backend::Postgres => 20,
        };
        Ok(DatabaseSettings {
            backend,
            url: Secret::new(url.to_string()),
            max_connections: limit.or(max).unwrap_or(default_max).max(1),
            min_connections: self.db_pool_min,
            acquire_timeout: Duration::from_secs(pool_timeout.max(1)),
            connect_timeout: Duration::from_secs(connect_timeout.max(1)),
            statement_timeout: Duration::from_millis(self.db_statement_timeout),
            slow_query: Duration::from_millis(self.db_slow_query_ms),
        })
    }
}

/// The seed's split variables: `postgres://DB_USER:DB_PASSWORD@DB_HOST:DB_PORT/DB_NAME`, when
/// `DATABASE_URL` is unset and `DB_HOST` is set. Parts left out take the driver's defaults, as
/// with libpq; every part is percent-encoded, so a password may hold any character.
pub(super) fn url_from_parts(var: impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    if var("DATABASE_URL").is_some() {
        return Ok(None);
    }
    let parts = ["DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"];
    let Some(host) = var("DB_HOST") else {
        return match parts.into_iter().find(|p| var(p).is_some()) {
            // Falling back to SQLite would hide the mistake until the data is missed.
            Some(p) => Err(invalid(p, "is set, but neither DB_HOST nor DATABASE_URL is")),
            None => Ok(None),
        };
    };
    let mut url = url::Url::parse("postgres://localhost").expect("a valid base URL");
    url.set_host(Some(&host)).map_err(|e| invalid("DB_HOST", e.to_string()))?;
    if let Some(port) = var("DB_PORT") {
        url.set_port(Some(port.parse().map_err(|_| invalid("DB_PORT", "must be a port number"))?)).expect("a URL with a host");
    }
    let encode = |v: String| utf8_percent_encode(&v, NON_ALPHANUMERIC).to_string();
    if let Some(user) = var("DB_USER") {
        url.set_username(&encode(user)).expect("a URL with a host");
    }
    if let Some(password) = var("DB_PASSWORD") {
        url.set_password(Some(&encode(password))).expect("a URL with a host");
    }
    if let Some(name) = var("DB_NAME") {
        url.set_path(&encode(name));
    }
    Ok(Some(url.to_string()))
}

pub(super) fn backend_of(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_query_parameters_become_pool_settings() {
        let cfg = Config {
            database_url: "postgres://u@h:5432/db?connection_limit=7&pool_timeout=3&connect_timeout=2&sslmode=disable".into(),
            ..Config::default()
        };
        let db = cfg.primary_db().unwrap();
        assert_eq!(db.max_connections, 7);
        assert_eq!(db.acquire_timeout, Duration::from_secs(3));
        assert_eq!(db.connect_timeout, Duration::from_secs(2));
        assert_eq!(db.url.expose(), "postgres://u@h:5432/db?sslmode=disable");
    }

    fn parts<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_seeds_split_variables_make_a_postgres_url() {
        let vars =
            [("DB_HOST", "db.internal"), ("DB_PORT", "6432"), ("DB_USER", "shop"), ("DB_PASSWORD", "p@ss/w%41rd"), ("DB_NAME", "e/c")];
        let url = url_from_parts(parts(&vars)).unwrap().unwrap();
        assert_eq!(url, "postgres://shop:p%40ss%2Fw%2541rd@db.internal:6432/e%2Fc");
        // The driver percent-decodes each part, and gets back exactly the values set.
        let parsed = url::Url::parse(&url).unwrap();
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned();
        assert_eq!(decode(parsed.password().unwrap()), "p@ss/w%41rd");
        assert_eq!(decode(parsed.path().trim_start_matches('/')), "e/c");
        let cfg = Config { database_url: url, ..Config::default() };
        assert_eq!(cfg.backend(), Backend::Postgres);
        // Digits only is a password like any other.
        let digits = url_from_parts(parts(&[("DB_HOST", "db"), ("DB_PASSWORD", "123456")])).unwrap().unwrap();
        assert_eq!(digits, "postgres://:123456@db");
        assert_eq!(url_from_parts(parts(&[("DB_HOST", "db")])).unwrap().unwrap(), "postgres://db");
        // DATABASE_URL wins; nothing set means the embedded default.
        assert_eq!(url_from_parts(parts(&[("DATABASE_URL", "sqlite://x.db"), ("DB_HOST", "db")])).unwrap(), None);
        assert_eq!(url_from_parts(parts(&[])).unwrap(), None);
    }

    #[test]
    fn split_variables_without_a_host_are_refused() {
        let e = url_from_parts(parts(&[("DB_NAME", "ecommerce")])).unwrap_err().to_string();
        assert!(e.contains("DB_NAME") && e.contains("DB_HOST"), "{e}");
        let e = url_from_parts(parts(&[("DB_HOST", "db"), ("DB_PORT", "five")])).unwrap_err().to_string();
        assert!(e.contains("DB_PORT"), "{e}");
    }

    #[test]
    fn replica_from_host_and_port() {
        let cfg = Config {
            database_url: "postgres://u@primary:5432/db".into(),
            db_read_replica_host: Some("replica".into()),
            db_read_replica_port: Some(5433),
            ..Config::default()
        };
        assert_eq!(cfg.replica_db().unwrap().unwrap().url.expose(), "postgres://u@replica:5433/db");
    }
}
