use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // A cart's version, raised by every write to the cart or its lines: a line write that
        // read the cart without locking it applies only if the version is still the one it
        // read. `updated_at` cannot serve: two writers may stamp the same microsecond, and a
        // stamp taken before waiting for the row can be older than the one it overwrites. Not
        // indexed, so cart updates stay HOT (m0007).
        m.alter_table(Table::alter().table("carts").add_column(ColumnDef::new("version").big_integer().not_null().default(0)).to_owned())
            .await
    }
}
