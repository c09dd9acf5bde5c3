use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Uploaded images: the stored original's key and its renditions (JSON).
        m.create_table(
            Table::create()
                .table("media")
                .col(pk_uuid("id"))
                .col(string_len("content_type", 32))
                .col(integer("width"))
                .col(integer("height"))
                .col(big_integer("size_bytes"))
                .col(string_len("original_key", 200))
                .col(text("renditions"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await
    }
}
