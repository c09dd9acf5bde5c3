//! Inventory: stock changes only through here, and every change writes a ledger row (a
//! movement) in the same transaction. Invariant, checked by [`verify`]:
//! `sum(movements) == stock + reserved` for every variant.

use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    idempotency::{self, Outcome},
    pagination::{CursorCodec, Page, PageRequest},
};
use chrono::{DateTime, Utc};
use domain::AuditAction;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
    sea_query::{Expr, ExprTrait},
};
use serde::Serialize;
use std::collections::HashMap;
use store::{
    Db, Inserts,
    entities::{inventory_movements as mv, variants},
};
use utoipa::ToSchema;
use uuid::Uuid;

/// Why stock changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Initial,
    Adjustment,
    /// Checkout: available → reserved.
    Reservation,
    /// Payment captured: reserved units leave.
    Sale,
    /// Unpaid order cancelled: reserved → available.
    Cancellation,
    /// Unpaid order timed out: reserved → available.
    Expiry,
    /// Paid order cancelled or refunded with restock: units come back.
    Restock,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Adjustment => "adjustment",
            Self::Reservation => "reservation",
            Self::Sale => "sale",
            Self::Cancellation => "cancellation",
            Self::Expiry => "expiry",
            Self::Restock => "restock",
        }
    }
}

/// One ledger entry: how available stock and reserved units changed, and why.
pub struct Movement<'a> {
    pub variant_id: Uuid,
    /// Change to available stock.
    pub delta: i64,
    /// Change to units reserved by unpaid orders.
    pub reserved_delta: i64,
    pub kind: Kind,
    pub reason: &'a str,
    /// Available stock after the change.
    pub stock_after: i64,
    pub order_id: Option<Uuid>,
    /// Falling to this many units or fewer alerts staff.
    pub low_stock: i64,
}

pub async fn record_movement<C: ConnectionTrait>(conn: &C, meta: &RequestMeta, m: Movement<'_>) -> ServiceResult<Uuid> {
    let ids = record_movements(conn, meta, vec![m]).await?;
    ids.into_iter().next().ok_or_else(|| ServiceError::internal("no movement recorded"))
}

/// Ledger entries written with one multi-row insert (checkout writes one per line).
pub async fn record_movements<C: ConnectionTrait>(conn: &C, meta: &RequestMeta, list: Vec<Movement<'_>>) -> ServiceResult<Vec<Uuid>> {
    let mut batch = Inserts::new();
    let ids = stage_movements(&mut batch, meta, list);
    batch.run(conn).await?;
    Ok(ids)
}

/// [`record_movements`] as inserts of a batch the caller runs in the change's transaction.
pub fn stage_movements(batch: &mut Inserts, meta: &RequestMeta, list: Vec<Movement<'_>>) -> Vec<Uuid> {
    if list.is_empty() {
        return Vec::new();
    }
    let now = Utc::now();
    let ids: Vec<Uuid> = list.iter().map(|_| domain::new_id()).collect();
    let rows = list.iter().zip(&ids).map(|(m, id)| mv::ActiveModel {
        id: Set(*id),
        variant_id: Set(m.variant_id),
        delta: Set(m.delta),
        reserved_delta: Set(m.reserved_delta),
        kind: Set(m.kind.as_str().to_owned()),
        reason: Set(m.reason.to_owned()),
        stock_after: Set(m.stock_after),
        actor_id: Set(meta.actor.map(|a| a.id)),
        order_id: Set(m.order_id),
        created_at: Set(now),
    });
    batch.add(mv::Entity::insert_many(rows));
    for m in &list {
        // Crossings become domain events, in this transaction: back in stock (subscribers
        // are emailed) and low stock (staff are).
        let before = m.stock_after - m.delta;
        if before <= 0 && m.stock_after > 0 && !matches!(m.kind, Kind::Initial) {
            crate::outbox::stage(batch, "variant.back_in_stock", m.variant_id, serde_json::json!({"stock": m.stock_after}));
        }
        if before > m.low_stock && m.stock_after <= m.low_stock {
            crate::outbox::stage(batch, "variant.low_stock", m.variant_id, serde_json::json!({"stock": m.stock_after}));
        }
    }
    ids
}

/// Moves units from available to reserved for every `(variant, quantity)` that has enough
/// available, in one statement, and returns the available stock left for each variant it moved.
/// A variant missing from the answer was short: the caller rolls back. PostgreSQL re-checks
/// `stock >= quantity` against the latest row version when a concurrent update got there first,
/// so no interleaving oversells; crossing reservations that deadlock are retried as contention.
pub async fn reserve<C: ConnectionTrait>(conn: &C, wanted: &[(Uuid, i64)]) -> ServiceResult<HashMap<Uuid, i64>> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let sql = format!(
        "UPDATE variants SET stock = variants.stock - r.column2, reserved = variants.reserved + r.column2 \
         FROM (VALUES {}) AS r WHERE variants.id = r.column1 AND variants.stock >= r.column2 \
         RETURNING variants.id AS id, variants.stock AS stock",
        store::values_rows(wanted.len(), 2)
    );
    let values = wanted.iter().flat_map(|(id, q)| [(*id).into(), (*q).into()]);
    let stmt = Statement::from_sql_and_values(conn.get_database_backend(), sql, values);
    let mut left = HashMap::with_capacity(wanted.len());
    for row in conn.query_all_raw(stmt).await? {
        left.insert(row.try_get::<Uuid>("", "id")?, row.try_get::<i64>("", "stock")?);
    }
    Ok(left)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Adjustment {
    pub variant_id: Uuid,
    /// Units available after the change.
    pub stock: i64,
    pub movement_id: Uuid,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MovementView {
    pub id: Uuid,
    pub variant_id: Uuid,
    pub delta: i64,
    pub reserved_delta: i64,
    pub kind: String,
    pub reason: String,
    pub stock_after: i64,
    pub actor_id: Option<Uuid>,
    pub order_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct InventoryService {
    db: Db,
    cursors: CursorCodec,
    catalog: crate::catalog::CatalogCache,
}

impl InventoryService {
    pub fn new(db: Db, cursors: CursorCodec, catalog: crate::catalog::CatalogCache) -> Self {
        Self { db, cursors, catalog }
    }

    /// Adds `delta` (negative removes) to a variant's stock with one conditional update: stock
    /// never goes below zero, whatever runs concurrently.
    pub async fn adjust(
        &self,
        meta: &RequestMeta,
        variant_id: Uuid,
        delta: i64,
        reason: &str,
        key: Option<String>,
    ) -> ServiceResult<Outcome<Adjustment>> {
        let mut errs = crate::error::Errors::default();
        if delta == 0 || !(-1_000_000_000..=1_000_000_000).contains(&delta) {
            errs.push("delta", "must be a non-zero whole number within ±1000000000");
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            errs.push("reason", "must be 1-500 characters");
        }
        errs.finish()?;
        let key = key.as_deref().map(idempotency::parse_key).transpose()?;
        let scope = format!("inventory:{}:{variant_id}", meta.actor.map(|a| a.id.to_string()).unwrap_or_default());
        let request = serde_json::json!({"delta": delta, "reason": reason});
        idempotency::run(&self.db, scope, key, &request, |claim| async move {
            let tx = self.db.begin().await?;
            let changed = variants::Entity::update_many()
                .col_expr(variants::Column::Stock, Expr::col(variants::Column::Stock).add(delta))
                .col_expr(variants::Column::UpdatedAt, Expr::value(Utc::now()))
                .filter(variants::Column::Id.eq(variant_id))
                .filter(Expr::col(variants::Column::Stock).add(delta).gte(0))
                .exec(&tx)
                .await?
                .rows_affected;
            let row = variants::Entity::find_by_id(variant_id).one(&tx).await?.ok_or(ServiceError::not_found("variant"))?;
            if changed == 0 {
                return Err(ServiceError::conflict(
                    "insufficient_stock",
                    format!("only {} units in stock; cannot remove {}", row.stock, delta.unsigned_abs()),
                ));
            }
            let movement = Movement {
                variant_id,
                delta,
                reserved_delta: 0,
                kind: Kind::Adjustment,
                reason,
                stock_after: row.stock,
                order_id: None,
                low_stock: self.catalog.low_stock(),
            };
            let movement_id = record_movement(&tx, meta, movement).await?;
            let result = Adjustment { variant_id, stock: row.stock, movement_id };
            let change = Change::new(AuditAction::Inventory, "variant", variant_id)
                .old(serde_json::json!({"stock": row.stock - delta}))
                .new_values(serde_json::json!({"stock": row.stock, "delta": delta, "reason": reason}));
            audit::record(&tx, meta, change).await?;
            if let Some(c) = &claim {
                c.complete(&tx, 200, &result).await?;
            }
            tx.commit().await?;
            let moved = crate::catalog::StockMove { product_id: row.product_id, before: row.stock - delta, after: row.stock };
            self.catalog.stock_moved(&[moved]).await;
            Ok(result)
        })
        .await
    }

    /// The ledger of one variant, newest first.
    pub async fn movements(&self, variant_id: Uuid, page: PageRequest) -> ServiceResult<Page<MovementView>> {
        if variants::Entity::find_by_id(variant_id).one(&self.db.reader()).await?.is_none() {
            return Err(ServiceError::not_found("variant"));
        }
        let mut q = mv::Entity::find().filter(mv::Column::VariantId.eq(variant_id));
        if let Some(c) = &page.cursor {
            let before: Uuid = self.cursors.decode(c)?;
            q = q.filter(mv::Column::Id.lt(before));
        }
        let rows = q.order_by_desc(mv::Column::Id).limit(page.limit + 1).all(&self.db.reader()).await?;
        Ok(Page::from_rows(rows, page.limit, &self.cursors, |m| m.id).map(|m| MovementView {
            id: m.id,
            variant_id: m.variant_id,
            delta: m.delta,
            reserved_delta: m.reserved_delta,
            kind: m.kind,
            reason: m.reason,
            stock_after: m.stock_after,
            actor_id: m.actor_id,
            order_id: m.order_id,
            created_at: m.created_at,
        }))
    }
}

/// A variant whose ledger does not add up.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct LedgerMismatch {
    pub sku: String,
    pub ledger_stock: i64,
    pub ledger_reserved: i64,
    pub stock: i64,
    pub reserved: i64,
}

/// Checks, for every variant in one query, that the ledger's available and reserved deltas add
/// up to its current stock and reservations (so `initial + movements == available + reserved`).
pub async fn verify(db: &Db) -> ServiceResult<Vec<LedgerMismatch>> {
    let conn = db.primary();
    let sql = "SELECT v.sku AS sku, CAST(COALESCE(m.d, 0) AS BIGINT) AS ledger_stock, CAST(COALESCE(m.r, 0) AS BIGINT) AS ledger_reserved,
                      v.stock AS stock, v.reserved AS reserved
               FROM variants v
               LEFT JOIN (SELECT variant_id, SUM(delta) AS d, SUM(reserved_delta) AS r FROM inventory_movements GROUP BY variant_id) m
                 ON m.variant_id = v.id
               WHERE COALESCE(m.d, 0) <> v.stock OR COALESCE(m.r, 0) <> v.reserved
               ORDER BY v.sku";
    Ok(LedgerMismatch::find_by_statement(Statement::from_string(conn.get_database_backend(), sql)).all(conn).await?)
}
