//! Cross-cutting infrastructure: configuration, telemetry, secrets, Redis, the two-tier cache,
//! rate limiting and resilience.

pub mod cache;
pub mod config;
pub mod metrics;
pub mod ratelimit;
pub mod redis;
pub mod resilience;
pub mod secret;
pub mod telemetry;

pub use config::{Config, ConfigError, DatabaseSettings};
pub use secret::Secret;
