//! The shared Redis connection: one multiplexed connection that reconnects by itself, behind
//! a circuit breaker so that a dead Redis costs one fast failure, not a timeout per request.
//! Callers get `None` when Redis cannot answer and fall back to their in-process tier.

use crate::{
    Secret,
    resilience::{Breaker, Resilience, RetryPolicy, Retryable},
};
use redis::{Client, RedisError, aio::ConnectionManager, aio::ConnectionManagerConfig};
use std::{sync::Arc, time::Duration};

impl Retryable for RedisError {
    fn retryable(&self) -> bool {
        true
    }
}

#[derive(Clone)]
pub struct Redis {
    client: Client,
    conn: ConnectionManager,
    prefix: Arc<str>,
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects lazily: a Redis that is down at start-up only means the in-process fallbacks
    /// serve until it is back. `prefix` namespaces every key (several deployments or test runs
    /// may share one server).
    pub fn open(url: &Secret, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = Client::open(url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_lazy(config)?;
        // One attempt per call (the callers have a fallback, waiting is worse); the breaker
        // stops calls for a second after two failures in a row.
        let resilience = Resilience {
            policy: RetryPolicy { max_attempts: 1, base_delay: Duration::ZERO, timeout },
            breaker: Breaker::new("redis", 2, Duration::from_secs(1), 1),
        };
        Ok(Self { client, conn, prefix: prefix.into(), resilience: Arc::new(resilience) })
    }

    /// `prefix:rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// Runs one Redis interaction; `None` when Redis is down, slow or the breaker is open.
    pub async fn call<T, F, Fut>(&self, what: &'static str, mut f: F) -> Option<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        match self.resilience.call(|| f(self.conn.clone())).await {
            Ok(v) => Some(v),
            Err(e) => {
                metrics::counter!("valuva_redis_errors_total", "operation" => what).increment(1);
                tracing::debug!(operation = what, error = %e, "redis call failed");
                None
            }
        }
    }

    /// For `/ready` and `/health`: a real round trip, not the breaker's opinion.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.resilience.policy.timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// A fresh connection for pub/sub (which cannot share the multiplexed one).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        let connect = self.client.get_async_pubsub();
        match tokio::time::timeout(Duration::from_secs(2), connect).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from((redis::ErrorKind::Io, "pub/sub connect timed out"))),
        }
    }
}
