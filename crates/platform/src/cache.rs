//! Two-tier cache-aside for pre-serialized responses: tier 1 in process (moka, bounded by
//! bytes, short TTL), tier 2 in Redis (shared by every instance). Values are the bytes sent to
//! the client, so a hit costs no serialisation.
//!
//! Invalidation. A space is either invalidated key by key (a product page) or as a whole
//! (listings: any product change may move any listing). Whole spaces carry a generation in
//! their Redis keys, bumped on invalidation, so nothing is ever found by scanning. Every
//! invalidation also bumps a global epoch; a fill stores its value only if the epoch did not
//! move while it read the database, so a read that raced a write cannot put the old value
//! back. Invalidations are broadcast over pub/sub and each instance drops its tier-1 copies.
//!
//! Redis down: tier 1 and the database serve; invalidations that could not reach Redis are
//! kept and replayed when it is back, and tier 1 is cleared after a pub/sub gap (messages from
//! other instances may have been missed).

use crate::redis::Redis;
use bytes::Bytes;
use futures_util::StreamExt;
use moka::future::Cache as Moka;
use serde::{Deserialize, Serialize};
use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// A family of cached values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Space {
    pub name: &'static str,
    /// Invalidated as a whole (by generation) rather than key by key.
    pub whole: bool,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub local_ttl: Duration,
    pub local_max_bytes: u64,
}

/// What a write made stale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    pub keys: BTreeSet<(String, String)>,
    pub spaces: BTreeSet<String>,
}

impl Invalidation {
    pub fn key(mut self, space: Space, key: impl Into<String>) -> Self {
        self.keys.insert((space.name.to_owned(), key.into()));
        self
    }

    pub fn space(mut self, space: Space) -> Self {
        self.spaces.insert(space.name.to_owned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.spaces.is_empty()
    }

    fn merge(&mut self, other: Invalidation) {
        self.keys.extend(other.keys);
        self.spaces.extend(other.spaces);
    }
}

#[derive(Serialize, Deserialize)]
struct Message {
    origin: String,
    /// Receivers acknowledge under this id once applied (see [`Cache::invalidate`]).
    id: String,
    #[serde(flatten)]
    what: Invalidation,
}

struct Tier {
    space: Space,
    local: Moka<String, Bytes>,
    remote_ttl: Duration,
}

struct Inner {
    tiers: HashMap<&'static str, Tier>,
    redis: Option<Redis>,
    origin: String,
    epoch: AtomicU64,
    /// Milliseconds after `started` of the latest invalidation seen (0 = none).
    last_change_ms: AtomicU64,
    started: Instant,
    pending: Mutex<Invalidation>,
    scripts: Scripts,
}

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl Cache {
    /// `spaces`: every space with its Redis TTL. With `redis`, also starts the subscriber that
    /// applies other instances' invalidations.
    pub fn new(settings: &CacheSettings, spaces: &[(Space, Duration)], redis: Option<Redis>) -> Self {
        let share = (settings.local_max_bytes / spaces.len().max(1) as u64).max(1);
        let tiers = spaces
            .iter()
            .map(|&(space, remote_ttl)| {
                // Tier 1 lives briefly when Redis is shared (another instance's write reaches
                // it by pub/sub, or at worst by expiry); alone, it is the only tier, every write
                // invalidates it directly, and it keeps the space's full TTL.
                let ttl = if redis.is_some() { settings.local_ttl } else { remote_ttl };
                let local = Moka::builder()
                    .max_capacity(share)
                    .weigher(|k: &String, v: &Bytes| (k.len() + v.len()).try_into().unwrap_or(u32::MAX))
                    .time_to_live(ttl)
                    .build();
                (space.name, Tier { space, local, remote_ttl })
            })
            .collect();
        let inner = Arc::new(Inner {
            tiers,
            redis,
            origin: uuid::Uuid::now_v7().to_string(),
            epoch: AtomicU64::new(0),
            last_change_ms: AtomicU64::new(0),
            started: Instant::now(),
            pending: Mutex::new(Invalidation::default()),
            scripts: Scripts::new(),
        });
        if inner.redis.is_some() {
            tokio::spawn(subscribe(Arc::downgrade(&inner)));
            tokio::spawn(retry_pending(Arc::downgrade(&inner)));
        }
        Self { inner }
    }

    fn tier(&self, space: Space) -> &Tier {
        self.inner.tiers.get(space.name).unwrap_or_else(|| panic!("cache space {} was not configured", space.name))
    }

    /// The cached bytes, or `load`'s. Concurrent misses for one key on this instance share one
    /// `load` (single flight); errors are not cached.
    pub async fn get_or_load<E, F, Fut>(&self, space: Space, key: &str, load: F) -> Result<Bytes, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
        E: Send + Sync + 'static,
    {
        let tier = self.tier(space);
        if let Some(v) = tier.local.get(key).await {
            count(space, "hit_local");
            return Ok(v);
        }
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        let result = tier.local.try_get_with_by_ref(key, self.fill(tier, key, load)).await;
        // Invalidated while loading: what was read may predate the write.
        if result.is_ok() && self.inner.epoch.load(Ordering::Acquire) != epoch {
            tier.local.invalidate(key).await;
        }
        result
    }

    async fn fill<E, F, Fut>(&self, tier: &Tier, key: &str, load: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let remote = match &self.inner.redis {
            Some(redis) => self.inner.scripts.get(redis, tier.space, key).await.map(|r| (redis, r)),
            None => None,
        };
        if let Some((_, Lookup { value: Some(v), .. })) = remote {
            count(tier.space, "hit_remote");
            return Ok(v);
        }
        count(tier.space, "miss");
        let value = load().await?;
        if let Some((redis, lookup)) = remote {
            self.inner.scripts.put(redis, tier, key, &lookup, value.clone()).await;
        }
        Ok(value)
    }

    /// Drops what `what` names here, in Redis, and (by broadcast) on every other instance.
    /// Call after the write committed.
    pub async fn invalidate(&self, what: Invalidation) {
        if what.is_empty() {
            return;
        }
        self.inner.apply_local(&what).await;
        let Some(redis) = &self.inner.redis else { return };
        let mut all = std::mem::take(&mut *self.inner.pending.lock().expect("pending lock"));
        all.merge(what);
        let id = uuid::Uuid::now_v7().simple().to_string();
        match self.inner.publish(redis, &id, &all).await {
            Some(receivers) if receivers > 0 => self.inner.await_acks(redis, &id, receivers).await,
            Some(_) => {}
            None => self.inner.pending.lock().expect("pending lock").merge(all),
        }
    }

    /// When the latest invalidation (here or, through pub/sub, elsewhere) happened.
    pub fn last_change(&self) -> Option<Instant> {
        match self.inner.last_change_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.inner.started + Duration::from_millis(ms)),
        }
    }

    pub fn redis(&self) -> Option<&Redis> {
        self.inner.redis.as_ref()
    }
}

impl Inner {
    async fn apply_local(&self, what: &Invalidation) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let ms = (self.started.elapsed().as_millis() as u64).max(1);
        self.last_change_ms.fetch_max(ms, Ordering::AcqRel);
        for name in &what.spaces {
            if let Some(t) = self.tiers.get(name.as_str()) {
                t.local.invalidate_all();
                metrics::counter!("valuva_cache_invalidations_total", "cache" => t.space.name).increment(1);
            }
        }
        for (name, key) in &what.keys {
            if let Some(t) = self.tiers.get(name.as_str()) {
                t.local.invalidate(key).await;
                metrics::counter!("valuva_cache_invalidations_total", "cache" => t.space.name).increment(1);
            }
        }
    }

    /// Publishes the invalidations that could not reach Redis; what fails again stays pending.
    async fn resend_pending(&self, redis: &Redis) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("pending lock"));
        if pending.is_empty() {
            return;
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        match self.publish(redis, &id, &pending).await {
            Some(_) => tracing::info!("invalidations that could not reach Redis have been sent"),
            None => self.pending.lock().expect("pending lock").merge(pending),
        }
    }

    fn clear_local(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for t in self.tiers.values() {
            t.local.invalidate_all();
        }
    }

    /// Bumps the epoch and generations, deletes the keys and broadcasts, atomically.
    /// Returns how many subscribers received the message (`None`: Redis unreachable).
    async fn publish(&self, redis: &Redis, id: &str, what: &Invalidation) -> Option<i64> {
        let message =
            serde_json::to_string(&Message { origin: self.origin.clone(), id: id.to_owned(), what: what.clone() }).expect("serialisable");
        let gens: Vec<String> = what.spaces.iter().map(|s| redis.key(&format!("c:{s}:gen"))).collect();
        let dels: Vec<String> = what.keys.iter().map(|(s, k)| redis.key(&format!("c:{s}:k:{k}"))).collect();
        let script = &self.scripts.invalidate;
        let epoch_key = redis.key("c:epoch");
        let channel = redis.key("c:invalidate");
        redis
            .call("cache_invalidate", |mut c| {
                let mut inv = script.key(&epoch_key);
                inv.arg(gens.len()).arg(&gens).arg(&dels).arg(&channel).arg(&message);
                async move { inv.invoke_async::<i64>(&mut c).await }
            })
            .await
    }

    /// Waits (briefly, bounded) until `receivers` instances applied invalidation `id`, so the
    /// writer's response goes out only when no instance can still serve the old copy.
    async fn await_acks(&self, redis: &Redis, id: &str, receivers: i64) {
        let key = redis.key(&format!("c:ack:{id}"));
        let deadline = Instant::now() + ACK_WAIT;
        loop {
            let acked: Option<i64> = redis
                .call("cache_ack_wait", |mut c| {
                    let key = key.clone();
                    async move { redis::cmd("LLEN").arg(key).query_async(&mut c).await }
                })
                .await;
            match acked {
                Some(n) if n >= receivers => return,
                None => return,
                _ if Instant::now() >= deadline => {
                    tracing::debug!(id, receivers, "not every instance acknowledged a cache invalidation in time");
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
}

/// How long a write waits for other instances to drop their copies. A healthy instance takes
/// well under a millisecond; a stuck one must not stall writes for long.
const ACK_WAIT: Duration = Duration::from_millis(250);

/// How often invalidations that could not reach Redis are sent again.
const PENDING_RETRY: Duration = Duration::from_secs(1);

/// Sends again, until they get through, the invalidations that could not reach Redis. Redis can
/// refuse commands for a moment (a stall, a failover, the breaker open) while the pub/sub
/// connection stays up, so waiting for a reconnect, or for this instance's next write, could
/// leave the Redis copies stale, and other instances serving them, for a whole TTL.
async fn retry_pending(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(PENDING_RETRY).await;
        let Some(strong) = inner.upgrade() else { return };
        let redis = strong.redis.clone().expect("runs with redis");
        strong.resend_pending(&redis).await;
    }
}

/// Applies other instances' invalidations until the cache is dropped; reconnects with backoff.
async fn subscribe(inner: std::sync::Weak<Inner>) {
    let mut delay = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let redis = strong.redis.clone().expect("subscriber runs with redis");
        let channel = redis.key("c:invalidate");
        drop(strong);
        if let Ok(mut ps) = redis.pubsub().await
            && ps.subscribe(&channel).await.is_ok()
        {
            delay = Duration::from_millis(100);
            let Some(strong) = inner.upgrade() else { return };
            if connected_before {
                tracing::info!("cache invalidation channel reconnected; dropping in-process copies");
                strong.clear_local();
            }
            connected_before = true;
            // Our own invalidations that could not reach Redis while it was away.
            strong.resend_pending(&redis).await;
            drop(strong);
            let mut stream = ps.into_on_message();
            while let Some(msg) = stream.next().await {
                let Some(strong) = inner.upgrade() else { return };
                let Ok(m) = serde_json::from_slice::<Message>(msg.get_payload_bytes()) else { continue };
                if m.origin != strong.origin {
                    strong.apply_local(&m.what).await;
                }
                // Every receiver (the sender's own subscription too) acknowledges.
                let key = redis.key(&format!("c:ack:{}", m.id));
                let _: Option<()> = redis
                    .call("cache_ack", |mut c| {
                        let key = key.clone();
                        async move { redis::pipe().rpush(&key, 1).ignore().pexpire(&key, 10_000).ignore().query_async(&mut c).await }
                    })
                    .await;
            }
            tracing::warn!("cache invalidation channel lost; retrying");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn count(space: Space, result: &'static str) {
    metrics::counter!("valuva_cache_requests_total", "cache" => space.name, "result" => result).increment(1);
}

/// What Redis holds for a key, and the epoch/generation it was read at.
struct Lookup {
    epoch: i64,
    generation: i64,
    value: Option<Bytes>,
}

struct Scripts {
    get: redis::Script,
    put: redis::Script,
    invalidate: redis::Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            // KEYS: epoch, generation (ignored for per-key spaces). ARGV: base, key, whole.
            get: redis::Script::new(
                r"local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
                  local gen = 0
                  local k = ARGV[1] .. ':k:' .. ARGV[2]
                  if ARGV[3] == '1' then
                    gen = tonumber(redis.call('GET', KEYS[2]) or '0')
                    k = ARGV[1] .. ':' .. gen .. ':' .. ARGV[2]
                  end
                  return {epoch, gen, redis.call('GET', k)}",
            ),
            // KEYS: epoch, value key. ARGV: expected epoch, value, ttl ms.
            put: redis::Script::new(
                r"if tonumber(redis.call('GET', KEYS[1]) or '0') == tonumber(ARGV[1]) then
                    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
                    return 1
                  end
                  return 0",
            ),
            // KEYS: epoch. ARGV: n, n generation keys, keys to delete..., channel, message.
            invalidate: redis::Script::new(
                r"redis.call('INCR', KEYS[1])
                  local n = tonumber(ARGV[1])
                  for i = 2, n + 1 do redis.call('INCR', ARGV[i]) end
                  for i = n + 2, #ARGV - 2 do redis.call('DEL', ARGV[i]) end
                  return redis.call('PUBLISH', ARGV[#ARGV - 1], ARGV[#ARGV])",
            ),
        }
    }

    async fn get(&self, redis: &Redis, space: Space, key: &str) -> Option<Lookup> {
        let (epoch_key, gen_key, base) =
            (redis.key("c:epoch"), redis.key(&format!("c:{}:gen", space.name)), redis.key(&format!("c:{}", space.name)));
        let whole = if space.whole { "1" } else { "0" };
        let (epoch, generation, value): (i64, i64, Option<Vec<u8>>) = redis
            .call("cache_get", |mut c| {
                let mut inv = self.get.key(&epoch_key);
                inv.key(&gen_key).arg(&base).arg(key).arg(whole);
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        Some(Lookup { epoch, generation, value: value.map(Bytes::from) })
    }

    async fn put(&self, redis: &Redis, tier: &Tier, key: &str, at: &Lookup, value: Bytes) {
        let base = redis.key(&format!("c:{}", tier.space.name));
        let full = if tier.space.whole { format!("{base}:{}:{key}", at.generation) } else { format!("{base}:k:{key}") };
        let epoch_key = redis.key("c:epoch");
        let ttl = tier.remote_ttl.as_millis().max(1) as u64;
        let _: Option<i64> = redis
            .call("cache_put", |mut c| {
                let mut inv = self.put.key(&epoch_key);
                inv.key(&full).arg(at.epoch).arg(value.as_ref()).arg(ttl);
                async move { inv.invoke_async(&mut c).await }
            })
            .await;
    }
}
