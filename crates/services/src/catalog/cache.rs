//! The storefront's cached catalog reads, as the bytes the client receives, and the one place
//! that decides what a write makes stale. Product pages are cached by id (and slugs map to
//! ids), so a change to a product drops exactly its entries; listings and the category tree
//! are dropped as a whole, because any product change may move any listing.

use super::{CatalogService, ListingQuery};
use crate::{ServiceError, ServiceResult, pagination::List};
use bytes::Bytes;
use domain::Availability;
use platform::cache::{Cache, Invalidation, Space};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, sea_query::Query};
use std::{sync::Arc, time::Duration, time::Instant};
use store::entities::{order_lines, products, variants};
use uuid::Uuid;

pub const PRODUCT: Space = Space { name: "product", whole: false };
pub const PRODUCT_SLUG: Space = Space { name: "product_slug", whole: false };
pub const LISTING: Space = Space { name: "listing", whole: true };
pub const CATEGORY: Space = Space { name: "category", whole: true };

/// The cache spaces and their Redis TTLs.
pub fn spaces(config: &platform::Config) -> Vec<(Space, Duration)> {
    let secs = Duration::from_secs;
    vec![
        (PRODUCT, secs(config.cache_product_ttl_seconds)),
        (PRODUCT_SLUG, secs(config.cache_product_ttl_seconds)),
        (LISTING, secs(config.cache_listing_ttl_seconds)),
        (CATEGORY, secs(config.cache_category_ttl_seconds)),
        (crate::shipping::RATES, secs(config.cache_category_ttl_seconds)),
    ]
}

/// One variant's available stock before and after a committed change.
#[derive(Debug, Clone, Copy)]
pub struct StockMove {
    pub product_id: Uuid,
    pub before: i64,
    pub after: i64,
}

/// Invalidation of catalog entries after writes. Cheap to clone; a no-op without a cache.
#[derive(Clone)]
pub struct CatalogCache {
    cache: Option<Cache>,
    db: store::Db,
    low_stock: i64,
    expose_stock: bool,
}

impl CatalogCache {
    pub fn new(cache: Option<Cache>, db: store::Db, low_stock: i64, expose_stock: bool) -> Self {
        Self { cache, db, low_stock, expose_stock }
    }

    /// `LOW_STOCK_THRESHOLD`.
    pub fn low_stock(&self) -> i64 {
        self.low_stock
    }

    pub fn cache(&self) -> Option<&Cache> {
        self.cache.as_ref()
    }

    async fn invalidate(&self, what: Invalidation) {
        if let Some(c) = &self.cache {
            c.invalidate(what).await;
        }
    }

    /// Products created, edited, (un)published or deleted; `slugs`: every slug they had or have.
    pub async fn products_changed(&self, ids: &[Uuid], slugs: &[&str]) {
        let mut what = Invalidation::default().space(LISTING);
        for id in ids {
            what = what.key(PRODUCT, id.to_string());
        }
        for s in slugs {
            what = what.key(PRODUCT_SLUG, *s);
        }
        self.invalidate(what).await;
    }

    /// The category tree changed (listings filter by it).
    pub async fn categories_changed(&self) {
        self.invalidate(Invalidation::default().space(CATEGORY).space(LISTING)).await;
    }

    /// Stock moved. Only a change the storefront can see (availability, or the count when
    /// `EXPOSE_STOCK_COUNTS`) drops cached entries, so steady sales keep the cache warm.
    pub async fn stock_moved(&self, moves: &[StockMove]) {
        let visible = |m: &&StockMove| {
            m.before != m.after
                && (self.expose_stock || Availability::of(m.before, self.low_stock) != Availability::of(m.after, self.low_stock))
        };
        let ids: Vec<Uuid> = moves.iter().filter(visible).map(|m| m.product_id).collect();
        if !ids.is_empty() {
            self.products_changed(&ids, &[]).await;
        }
    }

    /// An order's units went back to stock (cancel, expiry, restocking refund): its products'
    /// pages and the listings are dropped.
    pub async fn order_restocked(&self, order_id: Uuid) {
        if self.cache.is_none() {
            return;
        }
        let ids = variants::Entity::find()
            .select_only()
            .column(variants::Column::ProductId)
            .filter(
                variants::Column::Id.in_subquery(
                    Query::select()
                        .column(order_lines::Column::VariantId)
                        .from(order_lines::Entity)
                        .and_where(order_lines::Column::OrderId.eq(order_id))
                        .to_owned(),
                ),
            )
            .into_tuple::<Uuid>()
            .all(self.db.primary())
            .await;
        match ids {
            Ok(ids) => self.products_changed(&ids, &[]).await,
            // Without the ids, drop every product page rather than serve a stale one.
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell which products an order restocked; dropping all product pages");
                self.invalidate(Invalidation::default().space(LISTING).space(PRODUCT)).await;
            }
        }
    }

    pub fn last_change(&self) -> Option<Instant> {
        self.cache.as_ref().and_then(Cache::last_change)
    }
}

fn json<T: serde::Serialize>(value: &T) -> ServiceResult<Bytes> {
    serde_json::to_vec(value).map(Bytes::from).map_err(ServiceError::internal)
}

impl CatalogService {
    async fn cached<F, Fut>(&self, space: Space, key: &str, load: F) -> ServiceResult<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ServiceResult<Bytes>>,
    {
        match self.cache.cache() {
            Some(c) => c.get_or_load(space, key, load).await.map_err(ServiceError::from_shared),
            None => load().await,
        }
    }

    /// Storefront product page (by id or slug), as JSON.
    pub async fn product_json(&self, id_or_slug: &str) -> ServiceResult<Bytes> {
        let id = match Uuid::parse_str(id_or_slug) {
            Ok(id) => id,
            Err(_) => {
                let raw = self
                    .cached(PRODUCT_SLUG, id_or_slug, || async {
                        let id = products::Entity::find()
                            .select_only()
                            .column(products::Column::Id)
                            .filter(products::Column::Slug.eq(id_or_slug))
                            .filter(products::Column::Status.eq("active"))
                            .filter(products::Column::DeletedAt.is_null())
                            .into_tuple::<Uuid>()
                            .one(&self.fill_reader())
                            .await?
                            .ok_or(ServiceError::not_found("product"))?;
                        Ok(Bytes::copy_from_slice(id.as_bytes()))
                    })
                    .await?;
                Uuid::from_slice(&raw).map_err(ServiceError::internal)?
            }
        };
        self.cached(PRODUCT, &id.to_string(), || async { json(&self.product_view(&self.fill_reader(), id).await?) }).await
    }

    /// Storefront listing or search page, as JSON.
    pub async fn products_json(&self, q: ListingQuery) -> ServiceResult<Bytes> {
        let key = q.cache_key();
        self.cached(LISTING, &key, || async { json(&List::from(self.list_products(q, false).await?)) }).await
    }

    pub async fn category_tree_json(&self) -> ServiceResult<Bytes> {
        self.cached(CATEGORY, "tree", || async { json(&List::all(self.category_tree().await?)) }).await
    }

    pub async fn category_json(&self, id_or_slug: &str) -> ServiceResult<Bytes> {
        self.cached(CATEGORY, &format!("one:{id_or_slug}"), || async { json(&self.category(id_or_slug).await?) }).await
    }

    /// Where cache fills read: the replica, unless it may not have seen the latest change
    /// yet (a stale fill would outlive the replica's lag).
    pub(super) fn fill_reader(&self) -> store::Reader<'_> {
        self.db.reader_fresh_since(self.cache.last_change())
    }
}

impl ServiceError {
    /// A load error shared by every waiter of a single-flight fill, back as an owned error.
    pub fn from_shared(e: Arc<ServiceError>) -> Self {
        Arc::try_unwrap(e).unwrap_or_else(|e| match &*e {
            Self::NotFound { what } => Self::NotFound { what },
            Self::Validation(v) => Self::Validation(v.clone()),
            Self::BadRequest { code, detail } => Self::BadRequest { code, detail: detail.clone() },
            Self::Unavailable { code, detail } => Self::Unavailable { code, detail: detail.clone() },
            other => Self::Internal(other.to_string()),
        })
    }
}
