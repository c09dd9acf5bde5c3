use super::{fk, index};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("users")
                .col(pk_uuid("id"))
                .col(string_len_uniq("email", 254))
                .col(string("password_hash"))
                .col(string_len_null("name", 200))
                .col(string_len("role", 16))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("refresh_tokens")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(uuid("family_id"))
                .col(string_len_uniq("token_hash", 64))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("used_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .foreign_key(&mut fk("refresh_tokens", "user_id", "users", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("refresh_tokens", "idx_refresh_tokens_family", &["family_id"])).await?;
        m.create_index(index("refresh_tokens", "idx_refresh_tokens_user", &["user_id"])).await?;

        m.create_table(
            Table::create()
                .table("password_reset_tokens")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(string_len_uniq("token_hash", 64))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("used_at"))
                .foreign_key(&mut fk("password_reset_tokens", "user_id", "users", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("password_reset_tokens", "idx_password_reset_user", &["user_id"])).await?;

        m.create_table(
            Table::create()
                .table("addresses")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(string_len("name", 200))
                .col(string_len("line1", 200))
                .col(string_len_null("line2", 200))
                .col(string_len("city", 100))
                .col(string_len("postal_code", 20))
                .col(string_len("country", 2))
                .col(string_len_null("phone", 32))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("addresses", "user_id", "users", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("addresses", "idx_addresses_user", &["user_id", "id"])).await?;

        // Append-only and hash-chained; no foreign keys, so history outlives what it describes.
        // Rows are written by the transaction that made the change with seq/prev_hash/hash
        // empty; the sealer then chains them in order, keeping a hot row out of every write.
        m.create_table(
            Table::create()
                .table("audit_logs")
                .col(pk_uuid("id"))
                .col(big_integer_null("seq").unique_key())
                .col(timestamp_with_time_zone("created_at"))
                .col(uuid_null("actor_id"))
                .col(string_len("action", 32))
                .col(string_len("entity_type", 64))
                .col(string_len_null("entity_id", 128))
                .col(text_null("old_values"))
                .col(text_null("new_values"))
                .col(string_len_null("ip", 64))
                .col(string_len_null("user_agent", 512))
                .col(string_len_null("request_id", 128))
                .col(string_len_null("prev_hash", 64))
                .col(string_len_null("hash", 64))
                .to_owned(),
        )
        .await?;
        m.create_index(index("audit_logs", "idx_audit_entity", &["entity_type", "entity_id", "id"])).await?;
        m.create_index(index("audit_logs", "idx_audit_actor", &["actor_id", "id"])).await?;
        m.create_index(index("audit_logs", "idx_audit_action", &["action", "id"])).await?;
        m.create_index(index("audit_logs", "idx_audit_created", &["created_at"])).await?;
        m.create_index(index("audit_logs", "idx_audit_unsealed", &["seq", "created_at"])).await?;

        // The chain's head (last seq and hash) and its checkpoint (where pruning left off). One
        // row; the sealer locks it, so sealing is strictly ordered.
        m.create_table(
            Table::create()
                .table("audit_chain")
                .col(integer("id").primary_key())
                .col(big_integer("last_seq"))
                .col(string_len("last_hash", 64))
                .col(big_integer("checkpoint_seq"))
                .col(string_len("checkpoint_hash", 64))
                .to_owned(),
        )
        .await?;
        let genesis = "0".repeat(64);
        m.exec_stmt(
            Query::insert()
                .into_table("audit_chain")
                .columns(["id", "last_seq", "last_hash", "checkpoint_seq", "checkpoint_hash"])
                .values_panic([1.into(), 0i64.into(), genesis.clone().into(), 0i64.into(), genesis.into()])
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
