//! One migration set for both backends, written with the schema builder so each backend gets
//! its native types (uuid/timestamptz on PostgreSQL, text/blob on SQLite).

use sea_orm_migration::prelude::*;

mod m0001_identity_audit;
mod m0002_catalog;
mod m0003_orders;
mod m0004_webhooks;
mod m0005_jobs;
mod m0006_media;
mod m0007_cart_hot_updates;
mod m0008_job_lease_index;
mod m0009_order_number_default;
mod m0010_cart_version;
mod m0011_job_claims;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_identity_audit::Migration),
            Box::new(m0002_catalog::Migration),
            Box::new(m0003_orders::Migration),
            Box::new(m0004_webhooks::Migration),
            Box::new(m0005_jobs::Migration),
            Box::new(m0006_media::Migration),
            Box::new(m0007_cart_hot_updates::Migration),
            Box::new(m0008_job_lease_index::Migration),
            Box::new(m0009_order_number_default::Migration),
            Box::new(m0010_cart_version::Migration),
            Box::new(m0011_job_claims::Migration),
        ]
    }
}

/// A foreign key from `table.column` to `target.id`.
pub(crate) fn fk(
    table: &'static str,
    column: &'static str,
    target: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(table, column).to(target, "id").on_delete(on_delete).to_owned()
}

pub(crate) fn index(table: &'static str, name: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(*c);
    }
    idx.to_owned()
}
