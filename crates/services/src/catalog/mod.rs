//! Catalog: categories (a tree), products, variants, listing and search.

pub mod cache;
mod categories;
mod listing;
pub mod model;
mod products;
mod rows;
mod variants;

pub use cache::{CatalogCache, StockMove};
pub use categories::DeleteCategory;
pub use listing::{ListingQuery, Sort};
pub use model::*;
pub(crate) use variants::parse_money;

use crate::pagination::CursorCodec;
use store::Db;

#[derive(Clone)]
pub struct CatalogService {
    db: Db,
    cursors: CursorCodec,
    low_stock_threshold: i64,
    expose_stock: bool,
    cache: CatalogCache,
}

impl CatalogService {
    pub fn new(db: Db, cursors: CursorCodec, cache: CatalogCache, low_stock_threshold: i64, expose_stock: bool) -> Self {
        Self { db, cursors, low_stock_threshold, expose_stock, cache }
    }
}

/// Counts a committed catalog write.
pub(crate) fn count(entity: &'static str, operation: &'static str) {
    metrics::counter!("valuva_catalog_operations_total", "entity" => entity, "operation" => operation).increment(1);
}
