//! Rate limiting by GCRA (the generic cell rate algorithm): a policy allows `limit` requests
//! per `window`, as a burst or spread out, and a rejected client learns exactly when it may
//! retry. Shared across instances through one Lua script per decision in Redis; in process
//! (governor, the same algorithm) when there is no Redis or it is down.

use crate::redis::Redis;
use governor::{
    Quota, RateLimiter as Governor,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Names the policy in headers, metrics and Redis keys.
    pub name: Arc<str>,
    pub limit: u32,
    pub window: Duration,
}

impl Policy {
    fn interval(&self) -> Duration {
        self.window / self.limit.max(1)
    }
}

/// One decision, with what the `RateLimit` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub remaining: u32,
    /// Until the quota is whole again.
    pub reset: Duration,
    /// Rejected: when the next request would be allowed.
    pub retry_after: Duration,
}

type Local = Governor<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

#[derive(Clone)]
pub struct RateLimiter {
    redis: Option<Redis>,
    local: Arc<HashMap<Arc<str>, Local>>,
    script: Arc<redis::Script>,
}

impl RateLimiter {
    pub fn new(policies: &[Policy], redis: Option<Redis>) -> Self {
        let local = policies
            .iter()
            .map(|p| {
                let burst = NonZeroU32::new(p.limit.max(1)).expect("non-zero");
                let quota = Quota::with_period(p.interval().max(Duration::from_nanos(1))).expect("non-zero period").allow_burst(burst);
                (p.name.clone(), Governor::keyed(quota).with_middleware::<StateInformationMiddleware>())
            })
            .collect();
        let local: Arc<HashMap<_, Local>> = Arc::new(local);
        // Keys of clients gone quiet are dropped now and then, so the map stays small.
        let weak = Arc::downgrade(&local);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(local) = weak.upgrade() else { return };
                for l in local.values() {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        });
        Self { redis, local, script: Arc::new(redis::Script::new(GCRA)) }
    }

    pub async fn check(&self, policy: &Policy, key: &str) -> Decision {
        let decision = match &self.redis {
            Some(redis) => self.check_redis(redis, policy, key).await,
            None => None,
        };
        let (decision, store) = match decision {
            Some(d) => (d, "redis"),
            None => (self.check_local(policy, key), "memory"),
        };
        if !decision.allowed {
            metrics::counter!("valuva_rate_limit_rejections_total", "policy" => policy.name.to_string(), "store" => store).increment(1);
        }
        decision
    }

    async fn check_redis(&self, redis: &Redis, policy: &Policy, key: &str) -> Option<Decision> {
        let full = redis.key(&format!("rl:{}:{key}", policy.name));
        let interval = policy.interval().as_micros().max(1) as u64;
        let (allowed, remaining, reset, retry): (i64, i64, i64, i64) = redis
            .call("rate_limit", |mut c| {
                let mut inv = self.script.key(&full);
                inv.arg(interval).arg(policy.limit);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Some(Decision {
            allowed: allowed == 1,
            remaining: remaining.max(0) as u32,
            reset: Duration::from_micros(reset.max(0) as u64),
            retry_after: Duration::from_micros(retry.max(0) as u64),
        })
    }

    fn check_local(&self, policy: &Policy, key: &str) -> Decision {
        let Some(limiter) = self.local.get(&policy.name) else {
            return Decision { allowed: true, remaining: policy.limit, reset: Duration::ZERO, retry_after: Duration::ZERO };
        };
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision { allowed: true, remaining, reset: policy.interval() * (policy.limit - remaining), retry_after: Duration::ZERO }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Decision { allowed: false, remaining: 0, reset: policy.window, retry_after: wait }
            }
        }
    }
}

/// KEYS[1]: the client's theoretical arrival time (µs). ARGV: emission interval (µs), limit.
/// Returns {allowed, remaining, µs until the quota is whole, µs until a retry may pass}.
/// Uses the server's clock, so instances with skewed clocks agree.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = interval * limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
-- %.0f: Lua's default number format would round a 16-digit timestamp.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((window - (new_tat - now)) / interval), new_tat - now, 0}
";
