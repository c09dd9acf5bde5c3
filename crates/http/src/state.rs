use platform::Config;
use services::{
    carts::CartService,
    catalog::{CatalogCache, CatalogService},
    identity::IdentityService,
    inventory::InventoryService,
    orders::OrderService,
    pagination::CursorCodec,
    payments::Providers,
    shipping::ShippingService,
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};
use store::Db;

/// Everything a handler may need, built once by the binary and passed in. Cloning is one
/// reference count: axum clones the state for every extractor and middleware of every request,
/// and a deep clone (every service's pool handle, the token validator's sets) cost more than
/// serving `/live` itself.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

pub struct AppStateInner {
    pub config: Arc<Config>,
    pub db: Db,
    pub identity: IdentityService,
    pub catalog: CatalogService,
    pub inventory: InventoryService,
    pub carts: CartService,
    pub shipping: ShippingService,
    pub orders: OrderService,
    pub jobs: services::jobs::JobService,
    pub stock_alerts: services::notifications::stock_alerts::StockAlerts,
    pub media: services::media::MediaService,
    pub cursors: CursorCodec,
    /// Absent without `REDIS_URL`.
    pub redis: Option<platform::redis::Redis>,
    pub limiter: platform::ratelimit::RateLimiter,
    pub limits: platform::config::RateLimits,
    pub client_ip: crate::client::ClientIpResolver,
    /// Clients that wrote recently (read-your-writes): their reads skip the replica.
    pub recent_writers: moka::sync::Cache<String, ()>,
    pub started: Instant,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutting_down: AtomicBool,
    /// Set once every migration this binary knows is applied (it stays so), so probes stop
    /// asking.
    schema_current: AtomicBool,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        identity: IdentityService,
        cursors: CursorCodec,
        redis: Option<platform::redis::Redis>,
    ) -> Result<Self, platform::ConfigError> {
        let cache = config.cache_enabled.then(|| {
            let settings = platform::cache::CacheSettings {
                local_ttl: std::time::Duration::from_millis(config.cache_local_ttl_ms),
                local_max_bytes: config.cache_local_max_mb * 1024 * 1024,
            };
            platform::cache::Cache::new(&settings, &services::catalog::cache::spaces(&config), redis.clone())
        });
        let catalog_cache = CatalogCache::new(cache, db.clone(), config.low_stock_threshold, config.expose_stock_counts);
        let catalog =
            CatalogService::new(db.clone(), cursors.clone(), catalog_cache.clone(), config.low_stock_threshold, config.expose_stock_counts);
        let inventory = InventoryService::new(db.clone(), cursors.clone(), catalog_cache.clone());
        let carts = CartService::new(db.clone(), config.cart_ttl_days, config.low_stock_threshold);
        let shipping = ShippingService::new(db.clone(), catalog_cache.cache().cloned());
        // Providers: `manual` always; Stripe when its key is configured. Every provider shares the
        // payments breaker.
        let payments_resilience = std::sync::Arc::new(config.resilience(platform::config::Outbound::Payments));
        let mut providers: Vec<std::sync::Arc<dyn services::payments::PaymentProvider>> =
            vec![std::sync::Arc::new(services::payments::Manual)];
        if let Some(key) = &config.stripe_secret_key {
            providers.push(std::sync::Arc::new(services::payments::stripe::Stripe::new(
                &config.stripe_api_base,
                key.clone(),
                payments_resilience.clone(),
            )));
        }
        let webhooks = services::orders::WebhookSecrets {
            stripe: config.stripe_webhook_secret.clone(),
            shopify: config.shopify_webhook_secret.clone(),
        };
        let orders = OrderService::new(
            db.clone(),
            carts.clone(),
            shipping.clone(),
            Providers::new(providers),
            cursors.clone(),
            config.reservation_ttl_minutes,
            webhooks,
        )
        .with_catalog_cache(catalog_cache);
        let limits = config.rate_limits()?;
        let limiter = platform::ratelimit::RateLimiter::new(&limits.policies(), redis.clone());
        let client_ip = crate::client::ClientIpResolver::new(config.trusted_proxies()?);
        let recent_writers = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(std::time::Duration::from_millis(config.read_your_writes_ms.max(1)))
            .build();
        let jobs = services::jobs::JobService::new(db.clone(), cursors.clone());
        let stock_alerts = services::notifications::stock_alerts::StockAlerts::new(db.clone());
        let media = media_service(&config, db.clone(), cursors.clone())?;
        Ok(Self(Arc::new(AppStateInner {
            config,
            db,
            identity,
            catalog,
            inventory,
            carts,
            shipping,
            orders,
            jobs,
            stock_alerts,
            media,
            cursors,
            redis,
            limiter,
            limits,
            client_ip,
            recent_writers,
            started: Instant::now(),
            metrics: platform::metrics::install(),
            shutting_down: AtomicBool::new(false),
            schema_current: AtomicBool::new(false),
        })))
    }

    /// From now on `/ready` answers 503 so load balancers drain this instance.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether every migration is applied; asks the database until the answer is yes.
    pub async fn schema_current(&self) -> Result<bool, store::sea_orm::DbErr> {
        if self.schema_current.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let current = self.db.pending_migrations().await? == 0;
        self.schema_current.store(current, Ordering::Relaxed);
        Ok(current)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// Uploads go to STORAGE_URL's directory (served at /media) or S3 bucket.
fn media_service(config: &Config, db: Db, cursors: CursorCodec) -> Result<services::media::MediaService, platform::ConfigError> {
    use services::media::StorageTarget;
    let invalid = |m: String| platform::ConfigError::Invalid { var: "STORAGE_URL".into(), message: m };
    let (target, default_public) = match config.storage_url.expose().split_once("://") {
        Some(("s3", rest)) => {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            let options = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
            let public = format!("https://{bucket}.s3.amazonaws.com/{prefix}");
            (StorageTarget::S3 { bucket: bucket.to_owned(), prefix: prefix.to_owned(), options }, public)
        }
        Some((_, dir)) => (StorageTarget::Local(dir.into()), "/media".to_owned()),
        None => return Err(invalid("must be file://<directory> or s3://<bucket>[/<prefix>]".into())),
    };
    let public = config.storage_public_url.clone().unwrap_or(default_public);
    services::media::MediaService::new(db, cursors, target, public, Arc::new(config.resilience(platform::config::Outbound::Storage)))
        .map_err(invalid)
}
