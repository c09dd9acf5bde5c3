//! Storage: database pools (primary and optional read replica), the one migration set that runs
//! on SQLite and PostgreSQL, and the table entities.

pub mod batch;
mod checkpoint;
pub mod db;
pub mod entities;
pub mod group;
mod lane;
pub mod migrations;
pub mod replica;
pub mod search;
mod setup;

pub use batch::Inserts;
pub use db::{Db, StoreError, is_foreign_key_violation, is_unique_violation};
pub use group::{Write, Written};
pub use platform::config::Backend;
pub use replica::{Reader, with_primary_reads};
pub use sea_orm;
pub use setup::SetupLock;

/// `($1, $2), ($3, $4), …`: a VALUES list of `rows` rows of `cols` placeholders, for statements
/// that join a batch of rows in one go (`UPDATE … FROM (VALUES …) AS v`). Both backends accept
/// `$n` placeholders and name the columns `column1`, `column2`, …
pub fn values_rows(rows: usize, cols: usize) -> String {
    let row = |r: usize| format!("({})", (1..=cols).map(|c| format!("${}", r * cols + c)).collect::<Vec<_>>().join(", "));
    (0..rows).map(row).collect::<Vec<_>>().join(", ")
}
