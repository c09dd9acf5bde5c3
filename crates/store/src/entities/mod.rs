//! Table entities (sea-orm). Services query through these; they never write SQL text.

pub mod addresses;
pub mod audit_chain;
pub mod audit_logs;
pub mod categories;
pub mod idempotency_keys;
pub mod inventory_movements;
pub mod password_reset_tokens;
pub mod product_categories;
pub mod products;
pub mod refresh_tokens;
pub mod users;
pub mod variants;
