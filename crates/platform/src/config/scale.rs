//! Scale-out settings: Redis, the cache, rate limits, proxies.

use super::{Config, ConfigError, invalid};
use ipnet::IpNet;
use std::{net::IpAddr, time::Duration};

impl Config {
    pub(super) fn validate_scale_out(&self) -> Result<(), ConfigError> {
        self.trusted_proxies()?;
        self.rate_limits()?;
        let storage = self.storage_url.expose();
        if !(storage.starts_with("file://") || storage.starts_with("s3://")) || storage.len() <= "s3://".len() {
            return Err(invalid("STORAGE_URL", "must be file://<directory> or s3://<bucket>[/<prefix>]"));
        }
        if let Some(url) = &self.redis_url
            && redis::parse_redis_url(url.expose()).is_none()
        {
            return Err(invalid("REDIS_URL", "is not a redis:// URL"));
        }
        let positive = [
            ("RATE_LIMIT_WINDOW_MS", self.rate_limit_window_ms),
            ("RATE_LIMIT_MAX_REQUESTS", self.rate_limit_max_requests.into()),
            ("RATE_LIMIT_AUTH_WINDOW_MS", self.rate_limit_auth_window_ms),
            ("RATE_LIMIT_AUTH_MAX_REQUESTS", self.rate_limit_auth_max_requests.into()),
            ("REDIS_TIMEOUT_MS", self.redis_timeout_ms),
            ("CACHE_LOCAL_TTL_MS", self.cache_local_ttl_ms),
            ("JOB_POLL_MS", self.job_poll_ms),
            ("JOB_LEASE_SECONDS", self.job_lease_seconds),
            ("JOB_CONCURRENCY", self.job_concurrency),
            ("UPLOAD_MAX_BYTES", self.upload_max_bytes),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((var, _)) => Err(invalid(var, "must be greater than 0")),
            None => Ok(()),
        }
    }

    /// `TRUSTED_PROXIES` parsed: single addresses become /32 (or /128) ranges.
    pub fn trusted_proxies(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| invalid("TRUSTED_PROXIES", format!("{s:?} is neither an IP address nor a CIDR range")))
            })
            .collect()
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_accept_addresses_and_ranges() {
        let cfg = Config { trusted_proxies: "10.0.0.0/8, 127.0.0.1,::1".into(), ..Config::default() };
        let nets = cfg.trusted_proxies().unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[0].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        let bad = Config { trusted_proxies: "10.0.0.0/33".into(), ..Config::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("TRUSTED_PROXIES"));
    }

    #[test]
    fn zero_limits_are_refused() {
        let cfg = Config { rate_limit_max_requests: 0, ..Config::default() };
        assert!(cfg.validate().unwrap_err().to_string().contains("RATE_LIMIT_MAX_REQUESTS"));
    }
}
