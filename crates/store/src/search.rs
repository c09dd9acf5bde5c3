//! Full-text search over products: the one place the two backends differ in query text.
//! Both take text already folded by `domain::fold_for_search` (lower case, no accents, only
//! letters, digits and spaces), so the query strings built here cannot inject syntax.

use platform::config::Backend;
use sea_orm::sea_query::{Alias, Expr, JoinType, SelectStatement, SimpleExpr};

pub trait ProductSearch: Send + Sync {
    /// Adds what [`Self::matches`] and [`Self::rank`] need to a query over `products`.
    fn join(&self, _query: &mut SelectStatement) {}
    /// Condition on `products` rows that match every term.
    fn matches(&self, folded: &str) -> SimpleExpr;
    /// Relevance as a float, higher is better; title matches weigh more than description.
    fn rank(&self, folded: &str) -> SimpleExpr;
}

/// PostgreSQL: `tsvector` (weights A for title, B for body) with English stemming; every term
/// also matches as a prefix.
struct Postgres;

/// SQLite: FTS5 with the unicode61 tokenizer; every term matches as a prefix, ranked by BM25.
struct Sqlite;

fn terms(folded: &str) -> impl Iterator<Item = &str> {
    folded.split_whitespace().take(16)
}

impl Postgres {
    /// Each term matches as a stemmed word or as a prefix of an unstemmed one; all terms must
    /// match: `(english(t1) || simple(t1)) && (english(t2) || simple(t2))`.
    fn tsquery(folded: &str) -> SimpleExpr {
        let terms: Vec<String> = terms(folded).map(|t| format!("{t}:*")).collect();
        let sql = (1..=terms.len())
            .map(|i| format!("(to_tsquery('english', ${i}) || to_tsquery('simple', ${i}))"))
            .collect::<Vec<_>>()
            .join(" && ");
        Expr::cust_with_values(format!("({sql})"), terms)
    }
}

impl ProductSearch for Postgres {
    fn matches(&self, folded: &str) -> SimpleExpr {
        Expr::cust_with_exprs("\"products\".\"search\" @@ $1", [Self::tsquery(folded)])
    }
    fn rank(&self, folded: &str) -> SimpleExpr {
        Expr::cust_with_exprs("ts_rank(\"products\".\"search\", $1)::float8", [Self::tsquery(folded)])
    }
}

impl Sqlite {
    fn fts_query(folded: &str) -> String {
        terms(folded).map(|t| format!("\"{t}\"*")).collect::<Vec<_>>().join(" ")
    }
}

impl ProductSearch for Sqlite {
    /// One full-text query joined to the products it found. (A rank computed per row with its
    /// own MATCH re-ran the prefix query for every match: seconds on 100,000 products.)
    fn join(&self, query: &mut SelectStatement) {
        query.join(JoinType::InnerJoin, Alias::new("products_fts"), Expr::cust("\"products_fts\".rowid = \"products\".rowid"));
    }
    fn matches(&self, folded: &str) -> SimpleExpr {
        Expr::cust_with_values("\"products_fts\" MATCH ?", [Self::fts_query(folded)])
    }
    fn rank(&self, _folded: &str) -> SimpleExpr {
        Expr::cust("(-bm25(\"products_fts\", 10.0, 1.0))")
    }
}

pub fn product_search(backend: Backend) -> &'static dyn ProductSearch {
    match backend {
        Backend::Postgres => &Postgres,
        Backend::Sqlite => &Sqlite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        assert_eq!(Sqlite::fts_query("red shirt"), "\"red\"* \"shirt\"*");
    }
}
