//! Closed-loop load generator for the benchmark's multi-request scenarios, which wrk's
//! one-request model cannot express: each virtual user runs a flow (cart, lines, address,
//! checkout) on its own keep-alive connection, back to back, for a fixed time after a warm-up.
//! Prints one JSON object: requests, errors, latency percentiles (all requests, and checkout
//! requests alone), orders/s and 409s.
//!
//! The single-request scenarios (hello, product pages, listings, search) use wrk instead.

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use rand::{Rng, seq::IndexedRandom};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

#[derive(Parser)]
struct Args {
    /// checkout | contention | mixed
    #[arg(long)]
    scenario: String,
    #[arg(long)]
    base: String,
    /// JSON written by bench/run.py: variants, hot variant, shipping rate, customer tokens, paths.
    #[arg(long)]
    data: std::path::PathBuf,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
}

#[derive(Deserialize)]
struct Data {
    /// Variant ids with stock to spare.
    variants: Vec<String>,
    /// The one variant every user fights over in `contention`.
    hot_variant: String,
    shipping_rate: String,
    /// Bearer tokens of registered customers (one per virtual user, reused round-robin).
    customers: Vec<String>,
    /// Storefront GET paths for the browsing part of `mixed`.
    browse: Vec<String>,
}

/// What one virtual user measured.
struct Tally {
    all: Histogram<u64>,
    checkout: Histogram<u64>,
    requests: u64,
    errors: u64,
    orders: u64,
    conflicts: u64,
}

impl Tally {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        Self { all: h(), checkout: h(), requests: 0, errors: 0, orders: 0, conflicts: 0 }
    }
}

struct Vu {
    http: reqwest::Client,
    base: String,
    data: Arc<Data>,
    token: Option<String>,
    measure_from: Instant,
    until: Instant,
    tally: Tally,
}

impl Vu {
    fn measuring(&self, at: Instant) -> bool {
        at >= self.measure_from && at < self.until
    }

    /// One request; `None` when it failed to complete or answered an unexpected status.
    async fn send(&mut self, req: reqwest::RequestBuilder, ok: &[u16], is_checkout: bool) -> Option<(u16, Value)> {
        let started = Instant::now();
        let res = req.send().await;
        let (status, body) = match res {
            Ok(r) => {
                let s = r.status().as_u16();
                (Some(s), r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(_) => (None, Value::Null),
        };
        let elapsed = started.elapsed().as_micros() as u64;
        if self.measuring(started) {
            self.tally.requests += 1;
            let _ = self.tally.all.record(elapsed.max(1));
            if is_checkout {
                let _ = self.tally.checkout.record(elapsed.max(1));
                match status {
                    Some(201) => self.tally.orders += 1,
                    Some(409) => self.tally.conflicts += 1,
                    _ => {}
                }
            }
            if !status.is_some_and(|s| ok.contains(&s)) {
                self.tally.errors += 1;
            }
        }
        status.filter(|s| ok.contains(s)).map(|s| (s, body))
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Cart, `lines` added, address, checkout with a fresh key. `conflict_ok`: a 409 (sold
    /// out) is an expected answer, not an error.
    async fn checkout(&mut self, lines: Vec<String>, conflict_ok: bool) {
        let Some((_, cart)) =
            self.send(self.req(reqwest::Method::POST, "/api/v1/carts").json(&json!({"currency": "EUR"})), &[201], false).await
        else {
            return;
        };
        let (id, cart_token) = (cart["id"].as_str().unwrap_or_default().to_owned(), cart["token"].as_str().map(str::to_owned));
        let with_cart = |r: reqwest::RequestBuilder| match &cart_token {
            Some(t) => r.header("x-cart-token", t),
            None => r,
        };
        // Sold out (contention): the cart already refuses the line with a 409, an expected answer.
        let line_ok: &[u16] = if conflict_ok { &[200, 409] } else { &[200] };
        for variant in lines {
            let r = with_cart(self.req(reqwest::Method::POST, &format!("/api/v1/carts/{id}/items")))
                .json(&json!({"variant_id": variant, "quantity": 1}));
            if let Some((409, _)) = self.send(r, line_ok, false).await {
                self.tally.conflicts += u64::from(self.measuring(Instant::now()));
                return;
            }
        }
        let address = json!({"name": "Bench User", "line1": "1 Load St", "city": "Berlin", "postal_code": "10115", "country": "DE"});
        let r = with_cart(self.req(reqwest::Method::PATCH, &format!("/api/v1/carts/{id}")))
            .json(&json!({"email": "bench@example.com", "shipping_address": address}));
        if self.send(r, &[200], false).await.is_none() {
            return;
        }
        let r = with_cart(self.req(reqwest::Method::POST, "/api/v1/checkout"))
            .header("idempotency-key", uuid::Uuid::now_v7().to_string())
            .json(&json!({"cart_id": id, "shipping_rate_id": self.data.shipping_rate}));
        let ok: &[u16] = if conflict_ok { &[201, 409] } else { &[201] };
        self.send(r, ok, true).await;
    }

    async fn run(mut self, scenario: &str) -> Tally {
        while Instant::now() < self.until {
            match scenario {
                "checkout" => {
                    let lines = self.data.variants.choose_multiple(&mut rand::rng(), 3).cloned().collect();
                    self.checkout(lines, false).await;
                }
                "contention" => {
                    let hot = self.data.hot_variant.clone();
                    self.checkout(vec![hot], true).await;
                }
                _ => {
                    let roll = rand::rng().random_range(0..100);
                    if roll < 90 {
                        let path = self.data.browse.choose(&mut rand::rng()).cloned().unwrap_or_default();
                        self.send(self.req(reqwest::Method::GET, &path), &[200], false).await;
                    } else if roll < 98 {
                        // Browsing into a cart: create it and add a line.
                        let r = self.req(reqwest::Method::POST, "/api/v1/carts").json(&json!({"currency": "EUR"}));
                        if let Some((_, cart)) = self.send(r, &[201], false).await {
                            let variant = self.data.variants.choose(&mut rand::rng()).cloned().unwrap_or_default();
                            let mut r = self
                                .req(reqwest::Method::POST, &format!("/api/v1/carts/{}/items", cart["id"].as_str().unwrap_or_default()))
                                .json(&json!({"variant_id": variant, "quantity": 1}));
                            if let Some(t) = cart["token"].as_str() {
                                r = r.header("x-cart-token", t);
                            }
                            self.send(r, &[200], false).await;
                        }
                    } else {
                        let lines = self.data.variants.choose_multiple(&mut rand::rng(), 3).cloned().collect();
                        self.checkout(lines, false).await;
                    }
                }
            }
        }
        self.tally
    }
}

fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"p50": ms(0.50), "p75": ms(0.75), "p90": ms(0.90), "p95": ms(0.95), "p99": ms(0.99), "p999": ms(0.999), "max": h.max() as f64 / 1000.0})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(matches!(args.scenario.as_str(), "checkout" | "contention" | "mixed"), "unknown scenario {}", args.scenario);
    let data: Data = serde_json::from_slice(&std::fs::read(&args.data).context("reading --data")?).context("parsing --data")?;
    anyhow::ensure!(!data.variants.is_empty() && !data.customers.is_empty(), "--data needs variants and customers");
    let data = Arc::new(data);
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).timeout(Duration::from_secs(30)).build()?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let until = measure_from + Duration::from_secs_f64(args.duration);
    let users: Vec<_> = (0..args.concurrency)
        .map(|i| {
            // Checkout runs as customers; the mixed scenario's shoppers are guests.
            let token = (args.scenario != "mixed").then(|| data.customers[i % data.customers.len()].clone());
            let vu =
                Vu { http: http.clone(), base: args.base.clone(), data: data.clone(), token, measure_from, until, tally: Tally::new() };
            let scenario = args.scenario.clone();
            tokio::spawn(async move { vu.run(&scenario).await })
        })
        .collect();
    let mut total = Tally::new();
    for u in users {
        let t = u.await?;
        total.all.add(&t.all)?;
        total.checkout.add(&t.checkout)?;
        total.requests += t.requests;
        total.errors += t.errors;
        total.orders += t.orders;
        total.conflicts += t.conflicts;
    }
    let secs = args.duration;
    let out = json!({
        "requests": total.requests,
        "rps": total.requests as f64 / secs,
        "errors": total.errors,
        "orders": total.orders,
        "orders_per_second": total.orders as f64 / secs,
        "conflicts": total.conflicts,
        "latency_ms": percentiles(&total.all),
        "checkout_latency_ms": if !total.checkout.is_empty() { percentiles(&total.checkout) } else { Value::Null },
    });
    println!("{out}");
    Ok(())
}
