use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Provider events already applied: the primary key makes a replayed event (or the same
        // event reaching two instances at once) a no-op.
        m.create_table(
            Table::create()
                .table("webhook_events")
                .col(string_len("provider", 32))
                .col(string_len("event_id", 255))
                .col(string_len("event_type", 100))
                .col(uuid_null("order_id"))
                .col(timestamp_with_time_zone("received_at"))
                .primary_key(Index::create().col("provider").col("event_id"))
                .to_owned(),
        )
        .await
    }
}
