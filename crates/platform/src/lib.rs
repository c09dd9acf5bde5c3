//! Cross-cutting infrastructure: configuration, telemetry, secrets.

pub mod config;
pub mod metrics;
pub mod resilience;
pub mod secret;
pub mod telemetry;

pub use config::{Config, ConfigError, DatabaseSettings};
pub use secret::Secret;
