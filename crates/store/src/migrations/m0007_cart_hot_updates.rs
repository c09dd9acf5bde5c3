use sea_orm_migration::{prelude::*, sea_orm::DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Every cart write stamps `updated_at`. With that column indexed, PostgreSQL cannot
        // update the row in place (HOT): each stamp wrote new entries into all three indexes,
        // and the busiest statement of a checkout flow was this one. The hourly purge of idle
        // carts reads the table instead; it is the only query that filtered on it.
        m.drop_index(Index::drop().name("idx_carts_updated").table("carts").to_owned()).await?;
        if m.get_database_backend() == DatabaseBackend::Postgres {
            // Room on each page for the new row version, so in-place updates keep finding it.
            m.get_connection().execute_unprepared("ALTER TABLE carts SET (fillfactor = 80)").await?;
        }
        Ok(())
    }
}
