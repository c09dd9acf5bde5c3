//! Table entities (sea-orm). Services query through these; they never write SQL text.

pub mod addresses;
pub mod audit_chain;
pub mod audit_logs;
pub mod password_reset_tokens;
pub mod refresh_tokens;
pub mod users;
