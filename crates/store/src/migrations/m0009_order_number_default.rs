use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // PostgreSQL: the order row draws its number from the sequence as it is inserted and
        // returns it, instead of a `SELECT nextval(…)` round trip before. SQLite keeps its
        // counter row, bumped inside the (exclusive) write transaction.
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            m.get_connection().execute_unprepared("ALTER TABLE orders ALTER COLUMN number SET DEFAULT nextval('order_number_seq')").await?;
        }
        Ok(())
    }
}
