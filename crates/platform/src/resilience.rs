//! One resilience layer for every outbound call (payments, email, storage, shipping):
//! timeout → retry with exponential backoff and full jitter, only for errors the caller marks
//! retryable → a circuit breaker per service (CLOSED / OPEN / HALF_OPEN).
//!
//! Written by hand: the breaker needs per-service metrics, logged transitions and a half-open
//! probe limit from config, which none of the checked crates offered together.

use std::{
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Whether a failed call is worth repeating (connect errors, timeouts, 429, 5xx — never a 4xx).
pub trait Retryable {
    fn retryable(&self) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker is open: the call was not attempted.
    #[error("{0} is unavailable (circuit open)")]
    Open(&'static str),
    #[error("{0} did not answer in time")]
    Timeout(&'static str),
    #[error(transparent)]
    Failed(E),
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub timeout: Duration,
}

impl RetryPolicy {
    /// Full jitter: a random delay in `[0, base · 2^attempt)`, capped at 30 s.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.base_delay.saturating_mul(1u32 << attempt.min(16)).min(Duration::from_secs(30));
        let ms = cap.as_millis().max(1) as u64;
        Duration::from_millis(rand::random::<u64>() % ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probes: u32 },
}

/// A circuit breaker for one service: `threshold` consecutive failures open it for `open_for`;
/// then up to `probes` calls may go through (half-open); a success closes it, a failure opens
/// it again.
#[derive(Debug)]
pub struct Breaker {
    service: &'static str,
    threshold: u32,
    open_for: Duration,
    probes: u32,
    state: Mutex<Inner>,
}

impl Breaker {
    pub fn new(service: &'static str, threshold: u32, open_for: Duration, probes: u32) -> Self {
        metrics::gauge!("valuva_circuit_breaker_state", "service" => service).set(0.0);
        Self { service, threshold: threshold.max(1), open_for, probes: probes.max(1), state: Mutex::new(Inner::Closed { failures: 0 }) }
    }

    pub fn state(&self) -> BreakerState {
        match *self.state.lock().expect("breaker lock") {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Logs a fresh outage and the recovery; the half-open probing in between (every
    /// `open_for` while the service stays down) only at debug level, so an outage logs once.
    fn transition(&self, to: BreakerState, fresh: bool) {
        let value = match to {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        metrics::gauge!("valuva_circuit_breaker_state", "service" => self.service).set(value);
        metrics::counter!("valuva_circuit_breaker_transitions_total", "service" => self.service, "to" => format!("{to:?}").to_lowercase())
            .increment(1);
        match to {
            BreakerState::Open if fresh => tracing::warn!(service = self.service, "circuit breaker opened: the service is failing"),
            BreakerState::Closed => tracing::info!(service = self.service, "circuit breaker closed: the service recovered"),
            _ => tracing::debug!(service = self.service, state = ?to, "circuit breaker changed state"),
        }
    }

    /// May a call go through now?
    fn admit(&self) -> bool {
        let mut s = self.state.lock().expect("breaker lock");
        match *s {
            Inner::Closed { .. } => true,
            Inner::Open { until } if Instant::now() < until => false,
            Inner::Open { .. } => {
                *s = Inner::HalfOpen { probes: 1 };
                drop(s);
                self.transition(BreakerState::HalfOpen, false);
                true
            }
            Inner::HalfOpen { ref mut probes } if *probes < self.probes => {
                *probes += 1;
                true
            }
            Inner::HalfOpen { .. } => false,
        }
    }

    fn success(&self) {
        let mut s = self.state.lock().expect("breaker lock");
        let was_closed = matches!(*s, Inner::Closed { .. });
        *s = Inner::Closed { failures: 0 };
        drop(s);
        if !was_closed {
            self.transition(BreakerState::Closed, false);
        }
    }

    fn failure(&self) {
        let mut s = self.state.lock().expect("breaker lock");
        let fresh = matches!(*s, Inner::Closed { .. });
        let open = match *s {
            Inner::Closed { ref mut failures } => {
                *failures += 1;
                *failures >= self.threshold
            }
            _ => true,
        };
        if open {
            *s = Inner::Open { until: Instant::now() + self.open_for };
            drop(s);
            self.transition(BreakerState::Open, fresh);
        }
    }
}

/// Retry policy plus the service's breaker.
#[derive(Debug)]
pub struct Resilience {
    pub policy: RetryPolicy,
    pub breaker: Breaker,
}

impl Resilience {
    /// Runs `attempt` under the timeout, retrying retryable failures with jittered, growing
    /// delays while the breaker allows.
    pub async fn call<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, CallError<E>>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let service = self.breaker.service;
        let mut n = 0;
        loop {
            if !self.breaker.admit() {
                return Err(CallError::Open(service));
            }
            let (err, retryable) = match tokio::time::timeout(self.policy.timeout, attempt()).await {
                Ok(Ok(v)) => {
                    self.breaker.success();
                    return Ok(v);
                }
                Ok(Err(e)) => {
                    let r = e.retryable();
                    (CallError::Failed(e), r)
                }
                Err(_) => (CallError::Timeout(service), true),
            };
            // A refusal (4xx) says nothing about the service's health.
            if retryable {
                self.breaker.failure();
            }
            n += 1;
            if !retryable || n >= self.policy.max_attempts {
                return Err(err);
            }
            let delay = self.policy.delay(n - 1);
            tracing::debug!(service, attempt = n, ?delay, "retrying a failed call");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct E(bool);
    impl Retryable for E {
        fn retryable(&self) -> bool {
            self.0
        }
    }

    fn res(threshold: u32, attempts: u32) -> Resilience {
        Resilience {
            policy: RetryPolicy { max_attempts: attempts, base_delay: Duration::from_millis(1), timeout: Duration::from_millis(200) },
            breaker: Breaker::new("test", threshold, Duration::from_millis(50), 1),
        }
    }

    #[tokio::test]
    async fn retries_only_retryable_errors() {
        let r = res(100, 4);
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = r
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E(true))
            })
            .await;
        assert!(matches!(out, Err(CallError::Failed(_))));
        assert_eq!(calls.swap(0, Ordering::SeqCst), 4);
        let out: Result<(), _> = r
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E(false))
            })
            .await;
        assert!(matches!(out, Err(CallError::Failed(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a 4xx is not retried");
    }

    #[tokio::test]
    async fn breaker_opens_fails_fast_then_probes_and_closes() {
        let r = res(5, 1);
        for _ in 0..5 {
            let _: Result<(), _> = r.call(|| async { Err(E(true)) }).await;
        }
        assert_eq!(r.breaker.state(), BreakerState::Open);
        let started = Instant::now();
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = r
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<(), E>(())
            })
            .await;
        assert!(matches!(out, Err(CallError::Open("test"))));
        assert!(started.elapsed() < Duration::from_millis(10) && calls.load(Ordering::SeqCst) == 0);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(r.breaker.state(), BreakerState::HalfOpen);
        let out: Result<(), _> = r
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<(), E>(())
            })
            .await;
        assert!(out.is_ok());
        assert_eq!(r.breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn delays_grow_and_are_jittered() {
        let p = RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), timeout: Duration::from_secs(1) };
        for attempt in 0..5 {
            let cap = Duration::from_millis(100 << attempt);
            let samples: Vec<Duration> = (0..50).map(|_| p.delay(attempt)).collect();
            assert!(samples.iter().all(|d| *d < cap));
            assert!(samples.iter().any(|d| *d != samples[0]), "jittered");
        }
    }
}
