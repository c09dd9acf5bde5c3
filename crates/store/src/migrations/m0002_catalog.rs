use super::{fk, index};
use sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Slugs are unique across the whole tree (simpler URLs: /categories/{slug}).
        m.create_table(
            Table::create()
                .table("categories")
                .col(pk_uuid("id"))
                .col(uuid_null("parent_id"))
                .col(string_len("name", 200))
                .col(string_len_uniq("slug", 100))
                .col(text_null("description"))
                .col(integer("position"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("categories", "parent_id", "categories", ForeignKeyAction::Restrict))
                .to_owned(),
        )
        .await?;
        m.create_index(index("categories", "idx_categories_parent", &["parent_id", "position"])).await?;

        m.create_table(
            Table::create()
                .table("products")
                .col(pk_uuid("id"))
                .col(string_len_uniq("slug", 100))
                .col(string_len("title", 200))
                .col(text("description"))
                .col(string_len("status", 16))
                // JSON text: option names, image references.
                .col(text("options"))
                .col(text("images"))
                // Cheapest variant and its currency: listing filters and sorts without a join.
                .col(big_integer_null("min_price"))
                .col(string_len_null("currency", 3))
                // Accent-folded, lower-cased copies that the full-text index is built from.
                .col(text("search_title"))
                .col(text("search_body"))
                .col(timestamp_with_time_zone_null("published_at"))
                .col(timestamp_with_time_zone_null("deleted_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .to_owned(),
        )
        .await?;
        // Keyset paths for each listing sort (newest = id, UUIDv7 being time-ordered).
        m.create_index(index("products", "idx_products_status_id", &["status", "id"])).await?;
        m.create_index(index("products", "idx_products_status_price", &["status", "min_price", "id"])).await?;
        m.create_index(index("products", "idx_products_status_title", &["status", "title", "id"])).await?;

        m.create_table(
            Table::create()
                .table("product_categories")
                .col(uuid("product_id"))
                .col(uuid("category_id"))
                .primary_key(Index::create().col("product_id").col("category_id"))
                .foreign_key(&mut fk("product_categories", "product_id", "products", ForeignKeyAction::Cascade))
                .foreign_key(&mut fk("product_categories", "category_id", "categories", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("product_categories", "idx_product_categories_category", &["category_id", "product_id"])).await?;

        m.create_table(
            Table::create()
                .table("variants")
                .col(pk_uuid("id"))
                .col(uuid("product_id"))
                .col(string_len_uniq("sku", 64))
                .col(big_integer("price"))
                .col(string_len("currency", 3))
                .col(big_integer_null("compare_at_price"))
                .col(text("options"))
                // Canonical "name=value|…" of the options: unique within a product.
                .col(string_len("option_key", 512))
                .col(integer("weight_grams"))
                // Units that can be sold now, and units held by unpaid orders.
                .col(big_integer("stock").check(Expr::col("stock").gte(0)))
                .col(big_integer("reserved").check(Expr::col("reserved").gte(0)))
                .col(integer("position"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk("variants", "product_id", "products", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("variants", "idx_variants_option_key", &["product_id", "option_key"]).unique().to_owned()).await?;

        // The inventory ledger: every stock change, in the transaction that made it.
        m.create_table(
            Table::create()
                .table("inventory_movements")
                .col(pk_uuid("id"))
                .col(uuid("variant_id"))
                // Change to available stock, and to units reserved by unpaid orders.
                .col(big_integer("delta"))
                .col(big_integer("reserved_delta").default(0))
                .col(string_len("kind", 32))
                .col(string_len("reason", 500))
                .col(big_integer("stock_after"))
                .col(uuid_null("actor_id"))
                .col(uuid_null("order_id"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("inventory_movements", "variant_id", "variants", ForeignKeyAction::Cascade))
                .to_owned(),
        )
        .await?;
        m.create_index(index("inventory_movements", "idx_movements_variant", &["variant_id", "id"])).await?;

        // Idempotent POSTs: the first response is kept and replayed for the same key.
        m.create_table(
            Table::create()
                .table("idempotency_keys")
                .col(string_len("scope", 200))
                .col(string_len("key", 255))
                .col(string_len("request_hash", 64))
                .col(string_len("state", 16))
                .col(integer_null("response_status"))
                .col(text_null("response_body"))
                .col(timestamp_with_time_zone("created_at"))
                .primary_key(Index::create().col("scope").col("key"))
                .to_owned(),
        )
        .await?;
        m.create_index(index("idempotency_keys", "idx_idempotency_created", &["created_at"])).await?;

        // Full-text search differs per backend: a generated tsvector with a GIN index on
        // PostgreSQL (stemmed 'english' lexemes for word forms, unstemmed 'simple' ones so a
        // typed prefix longer than the stem still matches), an FTS5 index kept in sync by
        // triggers on SQLite.
        let db = m.get_connection();
        match m.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', search_title), 'A') ||
                        setweight(to_tsvector('simple', search_title), 'A') ||
                        setweight(to_tsvector('english', search_body), 'B') ||
                        setweight(to_tsvector('simple', search_body), 'B')) STORED;
                     CREATE INDEX idx_products_search ON products USING GIN (search);",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE VIRTUAL TABLE products_fts USING fts5(
                        search_title, search_body, content='products', content_rowid='rowid',
                        tokenize='unicode61 remove_diacritics 2');
                     CREATE TRIGGER products_fts_ai AFTER INSERT ON products BEGIN
                        INSERT INTO products_fts(rowid, search_title, search_body) VALUES (new.rowid, new.search_title, new.search_body);
                     END;
                     CREATE TRIGGER products_fts_ad AFTER DELETE ON products BEGIN
                        INSERT INTO products_fts(products_fts, rowid, search_title, search_body) VALUES ('delete', old.rowid, old.search_title, old.search_body);
                     END;
                     CREATE TRIGGER products_fts_au AFTER UPDATE OF search_title, search_body ON products BEGIN
                        INSERT INTO products_fts(products_fts, rowid, search_title, search_body) VALUES ('delete', old.rowid, old.search_title, old.search_body);
                        INSERT INTO products_fts(rowid, search_title, search_body) VALUES (new.rowid, new.search_title, new.search_body);
                     END;",
                )
                .await?;
            }
        }
        Ok(())
    }
}
