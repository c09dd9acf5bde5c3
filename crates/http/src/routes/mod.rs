pub mod admin;
pub mod admin_catalog;
pub mod admin_orders;
pub mod auth;
pub mod carts;
pub mod catalog;
pub mod jobs;
pub mod me;
pub mod media;
pub mod ops;
pub mod webhooks;

use chrono::{DateTime, Utc};
use services::error::Errors;
pub use services::pagination::{List, Pagination};

/// The `from` (inclusive) and `to` (exclusive) RFC 3339 query parameters of time-filtered lists.
pub fn time_range(errs: &mut Errors, from: Option<&str>, to: Option<&str>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let parse = |raw: &str| {
        DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| domain::ParseError::new("must be an RFC 3339 time"))
    };
    (from.and_then(|t| errs.check("from", parse(t))), to.and_then(|t| errs.check("to", parse(t))))
}
