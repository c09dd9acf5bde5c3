//! Shipping zones: a country (or `*`) belongs to one zone at most.

use crate::{
    orders_support::shop,
    support::{TestApp, assert_problem, statuses_of_concurrent},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn zone(name: &str, countries: &[&str]) -> Value {
    json!({"name": name, "countries": countries, "rates": [{"name": "Standard", "price": {"amount": 700, "currency": "EUR"}}]})
}

#[tokio::test]
async fn a_country_listed_by_another_zone_is_refused_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let staff = shop(&app).await.staff; // a `*` zone
    let zones = "/api/v1/admin/shipping/zones";
    let eu: Value = app.post(zones, Some(&staff), zone("EU", &["DE", "FR", "DE"])).await.json().await.unwrap();
    assert_eq!(eu["countries"], json!(["DE", "FR"]), "a country listed twice is kept once");
    let eu_id = eu["id"].as_str().unwrap();
    let it: Value = app.post(zones, Some(&staff), zone("Italy", &["IT"])).await.json().await.unwrap();
    let it_id = it["id"].as_str().unwrap();
    let (zones_before, rates_before) = (app.count("shipping_zones").await, app.count("shipping_rates").await);

    let problem =
        assert_problem(app.post(zones, Some(&staff), zone("South", &["FR", "ES"])).await, StatusCode::CONFLICT, "zone_overlap").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.starts_with("FR already in shipping zone \"EU\"") && detail.contains(eu_id), "{detail}");
    assert_problem(app.post(zones, Some(&staff), zone("Everywhere else", &["*"])).await, StatusCode::CONFLICT, "zone_overlap").await;
    let moved = app.patch(&format!("{zones}/{it_id}"), Some(&staff), json!({"countries": ["IT", "DE"], "name": "Renamed"})).await;
    assert_problem(moved, StatusCode::CONFLICT, "zone_overlap").await;
    let it_now: Value = app.get(&format!("{zones}/{it_id}"), Some(&staff)).await.json().await.unwrap();
    assert_eq!((it_now["name"].as_str(), &it_now["countries"]), (Some("Italy"), &json!(["IT"])), "the refused change wrote nothing");
    assert_eq!((app.count("shipping_zones").await, app.count("shipping_rates").await), (zones_before, rates_before));

    // A zone's own countries are no overlap; a country another zone gave up is free again.
    let grown = app.patch(&format!("{zones}/{eu_id}"), Some(&staff), json!({"countries": ["DE", "FR", "ES"]})).await;
    assert_eq!(grown.status(), StatusCode::OK);
    let shrunk = app.patch(&format!("{zones}/{eu_id}"), Some(&staff), json!({"countries": ["FR", "ES"]})).await;
    assert_eq!(shrunk.status(), StatusCode::OK);
    let moved = app.patch(&format!("{zones}/{it_id}"), Some(&staff), json!({"countries": ["IT", "DE"]})).await;
    assert_eq!(moved.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_zones_for_one_country_let_exactly_one_through() {
    let app = TestApp::spawn().await;
    let staff = app.admin_token().await;
    let requests =
        (0..8).map(|i| app.req(Method::POST, "/api/v1/admin/shipping/zones", Some(&staff)).json(&zone(&format!("NL {i}"), &["BE", "NL"])));
    let statuses = statuses_of_concurrent(requests.collect()).await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((created, refused), (1, 7), "{statuses:?}");
    assert_eq!(app.count("shipping_zones").await, 1);

    // Eight zones, each changed at once to add the same country: one gets it.
    let mut ids = Vec::new();
    for (i, country) in ["IT", "ES", "PT", "AT", "CH", "PL", "CZ", "DK"].into_iter().enumerate() {
        let z: Value =
            app.post("/api/v1/admin/shipping/zones", Some(&staff), zone(&format!("Z{i}"), &[country])).await.json().await.unwrap();
        ids.push((z["id"].as_str().unwrap().to_owned(), country));
    }
    let requests = ids.iter().map(|(id, own)| {
        app.req(Method::PATCH, &format!("/api/v1/admin/shipping/zones/{id}"), Some(&staff)).json(&json!({"countries": [own, "SE"]}))
    });
    let statuses = statuses_of_concurrent(requests.collect()).await;
    let changed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((changed, refused), (1, 7), "{statuses:?}");
}
