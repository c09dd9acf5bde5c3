use super::{fk, index};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // The durable job queue. A claimed job holds a lease (`locked_until`); a worker that
        // dies loses it and the job runs again. `attempts` doubles as the fencing token: only
        // the holder of the latest claim can record the outcome.
        m.create_table(
            Table::create()
                .table("jobs")
                .col(pk_uuid("id"))
                .col(string_len("kind", 64))
                .col(text("payload"))
                .col(string_len("status", 16))
                .col(integer("attempts"))
                .col(integer("max_attempts"))
                .col(timestamp_with_time_zone("run_at"))
                .col(string_len_null("locked_by", 64))
                .col(timestamp_with_time_zone_null("locked_until"))
                .col(text_null("last_error"))
                // Enqueue-once key: a scheduled slot, or an outbox event's job.
                .col(string_len_null("dedupe_key", 200).unique_key())
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("jobs", "idx_jobs_due", &["status", "run_at"])).await?;
        m.create_index(index("jobs", "idx_jobs_status_id", &["status", "id"])).await?;

        // Back-in-stock subscriptions: one per variant and address; closed once notified.
        m.create_table(
            Table::create()
                .table("stock_subscriptions")
                .col(pk_uuid("id"))
                .col(uuid("variant_id"))
                .col(string_len("email", 254))
                .col(uuid_null("user_id"))
                .col(string_len("status", 16))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("notified_at"))
                .foreign_key(&mut fk("stock_subscriptions", "variant_id", "variants", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("stock_subscriptions", "idx_stock_subscriptions_unique", &["variant_id", "email"]).unique().to_owned())
            .await?;
        m.create_index(index("stock_subscriptions", "idx_stock_subscriptions_open", &["variant_id", "status"])).await
    }
}
