//! Table entities (sea-orm). Services query through these; they never write SQL text.

pub mod addresses;
pub mod audit_chain;
pub mod audit_logs;
pub mod cart_items;
pub mod carts;
pub mod categories;
pub mod counters;
pub mod idempotency_keys;
pub mod inventory_movements;
pub mod jobs;
pub mod media;
pub mod order_lines;
pub mod orders;
pub mod outbox_events;
pub mod password_reset_tokens;
pub mod payments;
pub mod product_categories;
pub mod products;
pub mod refresh_tokens;
pub mod refunds;
pub mod shipping_rates;
pub mod shipping_zones;
pub mod stock_subscriptions;
pub mod users;
pub mod variants;
pub mod webhook_events;
