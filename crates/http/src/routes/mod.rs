pub mod admin;
pub mod admin_catalog;
pub mod admin_orders;
pub mod auth;
pub mod carts;
pub mod catalog;
pub mod me;
pub mod ops;
pub mod webhooks;

use chrono::{DateTime, Utc};
use serde::Serialize;
use services::{error::Errors, pagination::Page};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Pagination {
    /// Opaque; pass back as `cursor` for the next page.
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// The list envelope of every collection endpoint.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

impl<T> From<Page<T>> for List<T> {
    fn from(p: Page<T>) -> Self {
        let has_more = p.next_cursor.is_some();
        Self { data: p.items, pagination: Pagination { next_cursor: p.next_cursor, has_more } }
    }
}

impl<T> List<T> {
    /// A complete, bounded collection: one page, nothing more.
    pub fn all(data: Vec<T>) -> Self {
        Self { data, pagination: Pagination { next_cursor: None, has_more: false } }
    }
}

/// The `from` (inclusive) and `to` (exclusive) RFC 3339 query parameters of time-filtered lists.
pub fn time_range(errs: &mut Errors, from: Option<&str>, to: Option<&str>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let parse = |raw: &str| {
        DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| domain::ParseError::new("must be an RFC 3339 time"))
    };
    (from.and_then(|t| errs.check("from", parse(t))), to.and_then(|t| errs.check("to", parse(t))))
}
