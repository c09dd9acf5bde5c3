//! Keyset pagination over a 1,000-product catalog stays exact while rows are inserted.

use crate::{catalog::product, support::TestApp};
use serde_json::Value;
use std::collections::HashSet;

async fn walk(app: &TestApp, staff: &str, sort: &str, insert_every: usize) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/api/v1/products?limit=7&sort={sort}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.get(&path, None).await.json().await.unwrap();
        pages += 1;
        seen.extend(page["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        if insert_every > 0 && pages % insert_every == 0 {
            // New rows mid-walk: newer than everything, or priced anywhere in the range.
            let body = product(
                &format!("Inserted {sort} {pages}"),
                &format!("INS-{sort}-{pages}").to_uppercase().replace('_', "-"),
                (pages as i64 * 97) % 20_000 + 500,
            );
            let res = app.post("/api/v1/admin/products", Some(staff), body).await;
            assert_eq!(res.status(), reqwest::StatusCode::CREATED);
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    (seen, pages)
}

#[tokio::test]
async fn walking_1000_products_in_pages_of_7_has_no_gaps_or_duplicates() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    services::seed::bulk(&app.state.db, 1000, 250, |_| {}).await.unwrap();
    let original: HashSet<String> = {
        let (ids, _) = walk(&app, &staff, "newest", 0).await;
        assert_eq!(ids.len(), 1000);
        ids.into_iter().collect()
    };
    for sort in ["newest", "price_asc", "price_desc", "title"] {
        let (ids, pages) = walk(&app, &staff, sort, 10).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{sort}: no duplicates");
        let missing = original.iter().filter(|id| !unique.contains(id)).count();
        assert_eq!(missing, 0, "{sort}: no gaps");
        assert!(pages >= 143, "{sort}: {pages} pages");
    }
}
