//! Storage: database pools (primary and optional read replica), the one migration set that runs
//! on SQLite and PostgreSQL, and the table entities.

pub mod db;
pub mod entities;
pub mod migrations;
pub mod replica;
pub mod search;

pub use db::{Db, StoreError, is_unique_violation};
pub use platform::config::Backend;
pub use replica::{Reader, with_primary_reads};
pub use sea_orm;
