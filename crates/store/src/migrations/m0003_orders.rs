use super::{fk, index};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("carts")
                .col(pk_uuid("id"))
                // SHA-256 of the guest's secret cart token.
                .col(string_len_uniq("token_hash", 64))
                .col(uuid_null("user_id"))
                .col(string_len("currency", 3))
                .col(string_len_null("email", 254))
                .col(text_null("shipping_address"))
                // active | converted | merged
                .col(string_len("status", 16))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("carts", "user_id", "users", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("carts", "idx_carts_user", &["user_id", "status"])).await?;
        m.create_index(index("carts", "idx_carts_updated", &["status", "updated_at"])).await?;

        m.create_table(
            Table::create()
                .table("cart_items")
                .col(pk_uuid("id"))
                .col(uuid("cart_id"))
                .col(uuid("variant_id"))
                .col(integer("quantity"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("cart_items", "cart_id", "carts", ForeignKeyAction::Cascade))
                .foreign_key(&mut fk("cart_items", "variant_id", "variants", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("cart_items", "idx_cart_items_line", &["cart_id", "variant_id"]).unique().to_owned()).await?;

        m.create_table(
            Table::create()
                .table("shipping_zones")
                .col(pk_uuid("id"))
                .col(string_len("name", 200))
                // JSON array of ISO-3166 alpha-2 codes; ["*"] covers every country.
                .col(text("countries"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("shipping_rates")
                .col(pk_uuid("id"))
                .col(uuid("zone_id"))
                .col(string_len("name", 200))
                .col(big_integer("price"))
                .col(string_len("currency", 3))
                // Weight band (inclusive min, exclusive max); both null = any weight.
                .col(integer_null("min_weight_grams"))
                .col(integer_null("max_weight_grams"))
                // Free when the cart subtotal reaches this amount.
                .col(big_integer_null("free_above"))
                .col(integer("position"))
                .foreign_key(&mut fk("shipping_rates", "zone_id", "shipping_zones", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("shipping_rates", "idx_shipping_rates_zone", &["zone_id", "position"])).await?;

        m.create_table(
            Table::create()
                .table("orders")
                .col(pk_uuid("id"))
                .col(big_integer_uniq("number"))
                .col(uuid_null("user_id"))
                .col(uuid("cart_id"))
                .col(string_len("email", 254))
                .col(string_len("status", 32))
                // Bumped by every transition: two concurrent transitions cannot both win.
                .col(integer("version"))
                .col(string_len("currency", 3))
                .col(big_integer("subtotal"))
                .col(big_integer("shipping_total"))
                .col(big_integer("total"))
                .col(big_integer("refunded_total"))
                .col(text("shipping_address"))
                .col(string_len("shipping_method", 200))
                .col(string_len("payment_provider", 32))
                .col(string_len_null("carrier", 100))
                .col(string_len_null("tracking_number", 100))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("orders", "idx_orders_user", &["user_id", "id"])).await?;
        m.create_index(index("orders", "idx_orders_status", &["status", "id"])).await?;
        m.create_index(index("orders", "idx_orders_expiry", &["status", "expires_at"])).await?;
        m.create_index(index("orders", "idx_orders_cart", &["cart_id"])).await?;

        // Lines keep a snapshot (SKU, title, price) and no foreign key to the variant, so the
        // order's history survives catalog changes.
        m.create_table(
            Table::create()
                .table("order_lines")
                .col(pk_uuid("id"))
                .col(uuid("order_id"))
                .col(uuid("variant_id"))
                .col(string_len("sku", 64))
                .col(string_len("title", 300))
                .col(integer("quantity"))
                .col(big_integer("unit_price"))
                .col(big_integer("line_total"))
                .col(integer("restocked_quantity"))
                .foreign_key(&mut fk("order_lines", "order_id", "orders", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("order_lines", "idx_order_lines_order", &["order_id"])).await?;

        m.create_table(
            Table::create()
                .table("payments")
                .col(pk_uuid("id"))
                .col(uuid("order_id"))
                .col(string_len("provider", 32))
                .col(string_len_null("reference", 255))
                .col(big_integer("amount"))
                .col(string_len("currency", 3))
                // pending | succeeded | failed
                .col(string_len("status", 16))
                .col(big_integer("refunded_amount"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("payments", "order_id", "orders", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("payments", "idx_payments_order", &["order_id"])).await?;

        m.create_table(
            Table::create()
                .table("refunds")
                .col(pk_uuid("id"))
                .col(uuid("order_id"))
                .col(uuid("payment_id"))
                .col(big_integer("amount"))
                .col(string_len("currency", 3))
                .col(boolean("restock"))
                .col(string_len("status", 16))
                .col(string_len_null("reason", 500))
                .col(uuid_null("actor_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("refunds", "order_id", "orders", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("refunds", "idx_refunds_order", &["order_id"])).await?;

        // Transactional outbox: domain events written in the transaction that caused them,
        // delivered afterwards (at least once) by the job worker.
        m.create_table(
            Table::create()
                .table("outbox_events")
                .col(pk_uuid("id"))
                .col(string_len("topic", 100))
                .col(uuid_null("aggregate_id"))
                .col(text("payload"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("dispatched_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("outbox_events", "idx_outbox_pending", &["dispatched_at", "id"])).await?;

        // Named counters (order numbers); one row each, locked by the writer that bumps it.
        m.create_table(Table::create().table("counters").col(string_len("name", 64).primary_key()).col(big_integer("value")).to_owned())
            .await?;
        m.exec_stmt(
            Query::insert()
                .into_table("counters")
                .columns(["name", "value"])
                .values_panic(["order_number".into(), 1000i64.into()])
                .to_owned(),
        )
        .await?;
        // PostgreSQL hands out order numbers from a sequence: nextval() never blocks or
        // aborts a concurrent SERIALIZABLE checkout the way a shared counter row would.
        if m.get_database_backend() == sea_orm::DbBackend::Postgres {
            m.get_connection().execute_unprepared("CREATE SEQUENCE order_number_seq START 1001").await?;
        }
        Ok(())
    }
}
