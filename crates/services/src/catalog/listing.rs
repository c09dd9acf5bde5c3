//! Storefront listing and search with keyset pagination: each page continues strictly after
//! the last row of the previous one (by the sort key, then id), so pages stay correct while
//! rows are inserted or deleted, and page 5,000 costs what page 1 costs. No OFFSET.

use super::{CatalogService, ProductView};
use crate::{
    ServiceError, ServiceResult,
    error::Errors,
    pagination::{Page, PageRequest},
};
use domain::{ProductStatus, fold_for_search};
use sea_orm::{
    ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use store::entities::{product_categories as pc, products};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    Newest,
    PriceAsc,
    PriceDesc,
    Title,
    /// Best match first; the default when searching.
    Relevance,
}

impl Sort {
    fn parse(raw: &str) -> Result<Self, domain::ParseError> {
        serde_json::from_value(serde_json::Value::String(raw.to_owned()))
            .map_err(|_| domain::ParseError::new("must be one of newest, price_asc, price_desc, title, relevance"))
    }
}

/// Raw listing parameters as they arrive.
#[derive(Debug, Clone, Default)]
pub struct ListingQuery {
    pub category: Option<String>,
    pub q: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Option<String>,
    /// Admin listings only: filter by status (storefront always sees `active`).
    pub status: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl ListingQuery {
    /// The same listing always has the same key (for the cache).
    pub fn cache_key(&self) -> String {
        serde_json::json!([self.category, self.q, self.min_price, self.max_price, self.sort, self.status, self.limit, self.cursor])
            .to_string()
    }
}

/// Where the previous page ended, in the sort's own key.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    sort: Sort,
    id: Uuid,
    #[serde(default)]
    price: Option<i64>,
    #[serde(default)]
    title: Option<String>,
    /// The rank's bit pattern: serde_json's float parsing may be off by one ulp, and the
    /// keyset comparison needs the exact value.
    #[serde(default)]
    rank: Option<u64>,
}

impl CatalogService {
    pub async fn list_products(&self, query: ListingQuery, admin: bool) -> ServiceResult<Page<ProductView>> {
        let mut errs = Errors::default();
        let folded = query.q.as_deref().map(fold_for_search).filter(|q| !q.is_empty());
        if query.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
            errs.push("q", "must be at most 200 characters");
        }
        let sort = match query.sort.as_deref() {
            Some(s) => errs.check("sort", Sort::parse(s)),
            None if folded.is_some() => Some(Sort::Relevance),
            None => Some(Sort::Newest),
        };
        if sort == Some(Sort::Relevance) && folded.is_none() {
            errs.push("sort", "relevance needs a search term (q)");
        }
        for (field, v) in [("min_price", query.min_price), ("max_price", query.max_price)] {
            if v.is_some_and(|v| v < 0) {
                errs.push(field, "must not be negative");
            }
        }
        if let (Some(lo), Some(hi)) = (query.min_price, query.max_price)
            && lo > hi
        {
            errs.push("max_price", "must not be below min_price");
        }
        let status = match (&query.status, admin) {
            (Some(s), true) => errs.check("status", ProductStatus::parse(s)),
            (Some(_), false) => {
                errs.push("status", "is not a storefront filter");
                None
            }
            (None, _) => None,
        };
        let page = PageRequest::parse(query.limit, query.cursor.clone());
        errs.finish()?;
        let page = page?;
        let sort = sort.expect("checked");
        let after: Option<Position> = page.cursor.as_deref().map(|c| self.cursors.decode(c)).transpose()?;
        if after.as_ref().is_some_and(|p| p.sort != sort) {
            return Err(ServiceError::bad_request("invalid_cursor", "the cursor belongs to another sort order"));
        }

        let search = self.db.product_search();
        let rank = folded.as_deref().map(|q| search.rank(q)).unwrap_or_else(|| Expr::cust("CAST(0 AS DOUBLE PRECISION)"));
        let mut q = products::Entity::find()
            .select_only()
            .column(products::Column::Id)
            .column(products::Column::MinPrice)
            .column(products::Column::Title)
            .expr(rank.clone())
            .filter(products::Column::DeletedAt.is_null());
        q = match (admin, status) {
            (false, _) => q.filter(products::Column::Status.eq(ProductStatus::Active.as_str())),
            (true, Some(s)) => q.filter(products::Column::Status.eq(s.as_str())),
            (true, None) => q,
        };
        if let Some(c) = &query.category {
            let ids = self.category_and_descendants(c).await?.ok_or_else(|| ServiceError::field("category", "no such category"))?;
            let sub =
                Query::select().column(pc::Column::ProductId).from(pc::Entity).and_where(pc::Column::CategoryId.is_in(ids)).to_owned();
            q = q.filter(products::Column::Id.in_subquery(sub));
        }
        if let Some(lo) = query.min_price {
            q = q.filter(products::Column::MinPrice.gte(lo));
        }
        if let Some(hi) = query.max_price {
            q = q.filter(products::Column::MinPrice.lte(hi));
        }
        if let Some(f) = &folded {
            search.join(sea_orm::QueryTrait::query(&mut q));
            q = q.filter(search.matches(f));
        }
        let id = || Expr::col((products::Entity, products::Column::Id));
        if matches!(sort, Sort::PriceAsc | Sort::PriceDesc) {
            q = q.filter(products::Column::MinPrice.is_not_null());
        }
        q = match sort {
            Sort::Newest => q.order_by(products::Column::Id, Order::Desc),
            Sort::PriceAsc => q.order_by(products::Column::MinPrice, Order::Asc).order_by(products::Column::Id, Order::Asc),
            Sort::PriceDesc => q.order_by(products::Column::MinPrice, Order::Desc).order_by(products::Column::Id, Order::Desc),
            Sort::Title => q.order_by(products::Column::Title, Order::Asc).order_by(products::Column::Id, Order::Asc),
            Sort::Relevance => q.order_by(rank.clone(), Order::Desc).order_by(products::Column::Id, Order::Desc),
        };
        if let Some(p) = &after {
            let bad = || ServiceError::bad_request("invalid_cursor", "the cursor is invalid or was altered");
            let key = |col: products::Column| Expr::col((products::Entity, col));
            q = q.filter(match sort {
                Sort::Newest => id().lt(p.id),
                Sort::PriceAsc => Expr::tuple([key(products::Column::MinPrice), id()])
                    .gt(Expr::tuple([Expr::val(p.price.ok_or_else(bad)?), Expr::val(p.id)])),
                Sort::PriceDesc => Expr::tuple([key(products::Column::MinPrice), id()])
                    .lt(Expr::tuple([Expr::val(p.price.ok_or_else(bad)?), Expr::val(p.id)])),
                Sort::Title => Expr::tuple([key(products::Column::Title), id()])
                    .gt(Expr::tuple([Expr::val(p.title.clone().ok_or_else(bad)?), Expr::val(p.id)])),
                Sort::Relevance => {
                    Expr::tuple([rank.clone(), id()]).lt(Expr::tuple([Expr::val(f64::from_bits(p.rank.ok_or_else(bad)?)), Expr::val(p.id)]))
                }
            });
        }
        let keys: Vec<(Uuid, Option<i64>, String, f64)> = q.limit(page.limit + 1).into_tuple().all(&self.fill_reader()).await?;
        let page = Page::from_rows(keys, page.limit, &self.cursors, |(id, price, title, rank)| Position {
            sort,
            id: *id,
            price: *price,
            title: matches!(sort, Sort::Title).then(|| title.clone()),
            rank: matches!(sort, Sort::Relevance).then_some(rank.to_bits()),
        });
        // Second step: the page's rows in full, three batched queries, in page order.
        let ids: Vec<Uuid> = page.items.iter().map(|k| k.0).collect();
        let mut rows: HashMap<Uuid, products::Model> = products::Entity::find()
            .filter(products::Column::Id.is_in(ids.clone()))
            .all(&self.fill_reader())
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let ordered = ids.iter().filter_map(|id| rows.remove(id)).collect();
        let views = self.views(&self.fill_reader(), ordered, admin).await?;
        Ok(Page { items: views, next_cursor: page.next_cursor })
    }
}
