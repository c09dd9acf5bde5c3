//! Adding a cart line without a transaction: read the cart, its lines and the variant in one
//! statement, check the rules in Rust, then write with one statement that raises the cart's
//! `version` only if it is still the one that was read, and adds or raises the line only if it
//! did. A write that finds the cart changed in between did nothing, and the add is done again
//! the row-locking way. Every writer of a cart or its lines raises its version (m0010).
//!
//! Two statements where the row-locking way takes five (BEGIN, lock, read, write, COMMIT). On
//! PostgreSQL each is a round trip through the pool; on SQLite the read goes to the read-only
//! pool and the write is one hop to the one writer connection, which five hops kept busy.

use super::{CartAccess, LineVariant, PricedLine, reachable_by};
use crate::{ServiceError, ServiceResult};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};
use store::{Db, Write, Written, entities::carts};
use uuid::Uuid;

/// Portable SQL: the wanted variant joins the cart's variant ids, so the cart comes back (with
/// its lines) even when it is empty or the variant does not exist.
const READ: &str = "SELECT c.id AS cart_id, c.token_hash AS cart_token_hash, c.user_id AS cart_user_id, \
    c.currency AS cart_currency, c.email AS cart_email, c.shipping_address AS cart_shipping_address, \
    c.status AS cart_status, c.created_at AS cart_created_at, c.updated_at AS cart_updated_at, c.version AS cart_version, \
    v.id AS variant_id, v.product_id, v.sku, v.price, v.currency, v.options, v.stock, v.weight_grams, \
    p.title, p.status AS product_status, p.deleted_at AS product_deleted_at, ci.id AS item_id, ci.quantity \
    FROM carts c \
    CROSS JOIN (SELECT variant_id FROM cart_items WHERE cart_id = $1 UNION SELECT $5) ids \
    LEFT JOIN variants v ON v.id = ids.variant_id \
    LEFT JOIN products p ON p.id = v.product_id \
    LEFT JOIN cart_items ci ON ci.cart_id = c.id AND ci.variant_id = ids.variant_id \
    WHERE c.id = $1 AND c.status = 'active' AND c.updated_at >= $2 AND (c.token_hash = $3 OR c.user_id = $4)";

/// PostgreSQL: one statement; the line is written only if the cart's update returned a row.
const WRITE_POSTGRES: &str = "WITH cart AS ( \
        UPDATE carts SET updated_at = $2, version = version + 1 \
        WHERE id = $1 AND version = $3 AND status = 'active' RETURNING version \
    ), line AS ( \
        INSERT INTO cart_items (id, cart_id, variant_id, quantity, created_at) \
        SELECT $4, $1, $5, $6, $2 FROM cart \
        ON CONFLICT (id) DO UPDATE SET quantity = EXCLUDED.quantity \
    ) \
    SELECT version FROM cart";

/// SQLite has no writes inside WITH: two statements sent as one, on the one writer connection,
/// so no other write runs between them. Each commits on its own, and readers may look in
/// between: the line is written first (if the cart is still at the version read), then the
/// version raised (if the line was written), so no reader sees the new version without the
/// line.
const WRITE_SQLITE: &str = "INSERT INTO cart_items (id, cart_id, variant_id, quantity, created_at) \
    SELECT $4, $1, $5, $6, $2 WHERE EXISTS (SELECT 1 FROM carts WHERE id = $1 AND version = $3 AND status = 'active') \
    ON CONFLICT (id) DO UPDATE SET quantity = excluded.quantity; \
    UPDATE carts SET updated_at = $2, version = version + 1 WHERE id = $1 AND version = $3 AND changes() = 1";

/// The cart as the caller may reach it (open, by token or owner), its lines with their
/// variants, and `variant` as a line of it would show it (`None`: no such variant).
pub(super) async fn read<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    access: &CartAccess,
    open_since: DateTime<Utc>,
    variant: Uuid,
) -> ServiceResult<(carts::Model, Vec<PricedLine>, Option<LineVariant>)> {
    reachable_by(access).ok_or(ServiceError::not_found("cart"))?;
    let token = access.token.as_deref().map(crate::identity::hash_token);
    let values: [sea_orm::Value; 5] = [id.into(), open_since.into(), token.into(), access.user.into(), variant.into()];
    let rows = conn.query_all_raw(Statement::from_sql_and_values(conn.get_database_backend(), READ, values)).await?;
    let first = rows.first().ok_or(ServiceError::not_found("cart"))?;
    let cart = carts::Model::from_query_result(first, "cart_")?;
    let (mut lines, mut wanted) = (Vec::new(), None);
    for row in &rows {
        if row.try_get::<Option<Uuid>>("", "variant_id")?.is_none() {
            continue; // the wanted variant does not exist
        }
        let v = LineVariant::from_query_result(row, "")?;
        if v.variant_id == variant {
            wanted = Some(v.clone());
        }
        if let (Some(item_id), Some(quantity)) = (row.try_get("", "item_id")?, row.try_get("", "quantity")?) {
            lines.push(PricedLine { item_id, quantity, variant: v });
        }
    }
    lines.sort_by_key(|l| l.item_id);
    Ok((cart, lines, wanted))
}

/// Sets the cart's line `item` (for `variant`) to `quantity`, creating it if needed, provided
/// the cart is still at version `seen`. The cart's new `updated_at`, or `None` when the cart
/// changed (or closed) since it was read and nothing was written.
pub(super) async fn write(
    db: &Db,
    cart: Uuid,
    seen: i64,
    item: Uuid,
    variant: Uuid,
    quantity: i32,
) -> ServiceResult<Option<DateTime<Utc>>> {
    let now = super::now_micros();
    let backend = db.primary().get_database_backend();
    let values: [sea_orm::Value; 6] = [cart.into(), now.into(), seen.into(), item.into(), variant.into(), quantity.into()];
    // A line for this variant that appeared without the cart's version moving (a login
    // merge): the first one won.
    let concurrent = |e: sea_orm::DbErr| {
        if store::is_unique_violation(&e) {
            ServiceError::conflict("concurrent_update", "the cart changed meanwhile; reload it")
        } else {
            e.into()
        }
    };
    // A write on its own: on SQLite it commits in a group with others (`store::group`).
    let write = match backend {
        DbBackend::Sqlite => Write::Count(Statement::from_sql_and_values(backend, WRITE_SQLITE, values)),
        _ => Write::Rows(Statement::from_sql_and_values(backend, WRITE_POSTGRES, values)),
    };
    Ok(match db.write(write).await.map_err(concurrent)? {
        // Rows changed by both statements: the line and the cart's version.
        Written::Count(changed) => (changed == 2).then_some(now),
        Written::Rows(rows) => (!rows.is_empty()).then_some(now),
    })
}
