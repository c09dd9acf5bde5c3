use super::{OrderAccess, OrderService, OrderView};
use crate::contention::with_retry;
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    error::Errors,
    idempotency::{self, Outcome},
    inventory::{self, Kind, Movement},
    outbox,
};
use chrono::Utc;
use domain::{AuditAction, OrderEvent, OrderStatus};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use store::entities::{order_lines, orders, payments, variants};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who asks for a transition.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    /// May only cancel their own unpaid order.
    Customer(Uuid),
    Staff,
    /// The reservation-expiry task.
    System,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ShipInfo {
    #[schema(example = "DHL")]
    pub carrier: String,
    #[schema(example = "JJD000390007612345")]
    pub tracking_number: String,
}

pub(super) fn invalid(e: domain::InvalidTransition) -> ServiceError {
    ServiceError::conflict("invalid_transition", e.to_string())
}

/// Moves `q` units of a variant between available and reserved stock (and out of both for a
/// sale), with its ledger row.
pub(super) async fn move_stock(
    tx: &DatabaseTransaction,
    meta: &RequestMeta,
    order: Uuid,
    variant: Uuid,
    (delta, reserved_delta): (i64, i64),
    kind: Kind,
    low_stock: i64,
) -> ServiceResult<()> {
    variants::Entity::update_many()
        .col_expr(variants::Column::Stock, Expr::col(variants::Column::Stock).add(delta))
        .col_expr(variants::Column::Reserved, Expr::col(variants::Column::Reserved).add(reserved_delta))
        .filter(variants::Column::Id.eq(variant))
        .exec(tx)
        .await?;
    // The variant may have been deleted since: the order keeps its history, the ledger has
    // nothing left to record.
    let Some(stock) =
        variants::Entity::find_by_id(variant).select_only().column(variants::Column::Stock).into_tuple::<i64>().one(tx).await?
    else {
        return Ok(());
    };
    let reason = match kind {
        Kind::Sale => "payment captured",
        Kind::Cancellation => "order cancelled before payment",
        Kind::Expiry => "reservation expired",
        _ => "order returned to stock",
    };
    inventory::record_movement(
        tx,
        meta,
        Movement { variant_id: variant, delta, reserved_delta, kind, reason, stock_after: stock, order_id: Some(order), low_stock },
    )
    .await?;
    Ok(())
}

impl OrderService {
    /// Applies `event` to the order inside `tx`: the state machine decides, a version check
    /// makes concurrent transitions of one order serialise, and the event's stock and payment
    /// effects happen in the same transaction.
    pub(super) async fn apply_event(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        order: orders::Model,
        event: OrderEvent,
        ship: Option<&ShipInfo>,
    ) -> ServiceResult<orders::Model> {
        let from = OrderStatus::parse(&order.status).map_err(|e| ServiceError::internal(e.0))?;
        let to = from.apply(event).map_err(invalid)?;
        let now = Utc::now();
        let mut update = orders::Entity::update_many()
            .col_expr(orders::Column::Status, Expr::value(to.as_str()))
            .col_expr(orders::Column::Version, Expr::value(order.version + 1))
            .col_expr(orders::Column::UpdatedAt, Expr::value(now))
            .filter(orders::Column::Id.eq(order.id))
            .filter(orders::Column::Version.eq(order.version));
        if let Some(s) = ship {
            update = update
                .col_expr(orders::Column::Carrier, Expr::value(s.carrier.clone()))
                .col_expr(orders::Column::TrackingNumber, Expr::value(s.tracking_number.clone()));
        }
        if update.exec(tx).await?.rows_affected == 0 {
            return Err(ServiceError::conflict("concurrent_update", "the order changed meanwhile; reload and retry"));
        }
        let lines = order_lines::Entity::find().filter(order_lines::Column::OrderId.eq(order.id)).all(tx).await?;
        match (from, event) {
            (OrderStatus::PendingPayment, OrderEvent::Pay) => {
                for l in &lines {
                    move_stock(tx, meta, order.id, l.variant_id, (0, -(l.quantity as i64)), Kind::Sale, self.catalog.low_stock()).await?;
                }
                payments::Entity::update_many()
                    .col_expr(payments::Column::Status, Expr::value("succeeded"))
                    .col_expr(payments::Column::UpdatedAt, Expr::value(now))
                    .filter(payments::Column::OrderId.eq(order.id))
                    .exec(tx)
                    .await?;
            }
            (OrderStatus::PendingPayment, OrderEvent::Cancel | OrderEvent::Expire) => {
                let kind = if event == OrderEvent::Expire { Kind::Expiry } else { Kind::Cancellation };
                for l in &lines {
                    let q = l.quantity as i64;
                    move_stock(tx, meta, order.id, l.variant_id, (q, -q), kind, self.catalog.low_stock()).await?;
                }
                payments::Entity::update_many()
                    .col_expr(payments::Column::Status, Expr::value("cancelled"))
                    .filter(payments::Column::OrderId.eq(order.id))
                    .exec(tx)
                    .await?;
            }
            (OrderStatus::Paid | OrderStatus::Processing, OrderEvent::Cancel) => {
                // Cancelling a paid order refunds what is left and restocks every unit.
                let remaining = order.total - order.refunded_total;
                if remaining > 0 {
                    self.refund_inside(
                        tx,
                        meta,
                        &order,
                        super::refunds::RefundPlan {
                            amount: remaining,
                            restock: super::refunds::Restock::All,
                            reason: Some("order cancelled"),
                            source: super::refunds::RefundSource::Shop,
                        },
                    )
                    .await?;
                } else {
                    // Nothing to pay back (a free order, or already refunded): only restock.
                    super::refunds::restock_units(tx, meta, &order, super::refunds::Restock::All, self.catalog.low_stock()).await?;
                }
            }
            _ => {}
        }
        let label = match event {
            OrderEvent::Pay => "paid",
            OrderEvent::Fulfill => "fulfilled",
            OrderEvent::Ship => "shipped",
            OrderEvent::Deliver => "delivered",
            OrderEvent::Cancel => "cancelled",
            OrderEvent::Expire => "expired",
            OrderEvent::RefundInFull => "refunded",
        };
        metrics::counter!("valuva_orders_total", "event" => label).increment(1);
        let change = Change::new(AuditAction::Order, "order", order.id)
            .old(serde_json::json!({"status": from}))
            .new_values(serde_json::json!({"status": to, "event": event.as_str()}));
        audit::record(tx, meta, change).await?;
        outbox::emit(tx, &format!("order.{}", to.as_str()), order.id, serde_json::json!({"number": order.number, "from": from, "to": to}))
            .await?;
        orders::Entity::find_by_id(order.id).one(tx).await?.ok_or(ServiceError::not_found("order"))
    }

    /// A status change requested over the API (idempotent with a key).
    pub async fn transition(
        &self,
        meta: &RequestMeta,
        id: Uuid,
        event: OrderEvent,
        actor: Actor,
        ship: Option<ShipInfo>,
        key: Option<String>,
    ) -> ServiceResult<Outcome<OrderView>> {
        if event == OrderEvent::Ship {
            let mut errs = Errors::default();
            let s = ship.as_ref();
            if s.is_none_or(|s| s.carrier.trim().is_empty() || s.carrier.len() > 100) {
                errs.push("carrier", "is required (1-100 characters)");
            }
            if s.is_none_or(|s| s.tracking_number.trim().is_empty() || s.tracking_number.len() > 100) {
                errs.push("tracking_number", "is required (1-100 characters)");
            }
            errs.finish()?;
        }
        let key = key.as_deref().map(idempotency::parse_key).transpose()?;
        let access = match actor {
            Actor::Customer(u) => OrderAccess { user: Some(u), ..Default::default() },
            Actor::Staff | Actor::System => OrderAccess { staff: true, ..Default::default() },
        };
        // Keys are the caller's own: a key replayed by someone else is a different request.
        let caller = meta.actor.map(|a| a.id.to_string()).unwrap_or_default();
        let scope = format!("order:{id}:{}:{caller}", event.as_str());
        let request = serde_json::to_value(&ship).map_err(ServiceError::internal)?;
        let result = idempotency::run(&self.db, scope, key, &request, |claim| async move {
            with_retry(|| async {
                let tx = self.db.begin_serializable().await?;
                let order = self.authorized(&tx, id, &access).await?;
                if matches!(actor, Actor::Customer(_))
                    && (event != OrderEvent::Cancel || order.status != OrderStatus::PendingPayment.as_str())
                {
                    return Err(ServiceError::conflict("invalid_transition", "customers can cancel only unpaid orders; contact the shop"));
                }
                // Staff record payments made outside the system. An order paid through a
                // provider is paid by that provider's webhook: marked paid here, its refunds
                // and cancellation would go to a provider that holds no money for it.
                if event == OrderEvent::Pay && order.payment_provider != "manual" {
                    return Err(ServiceError::conflict(
                        "paid_at_provider",
                        format!(
                            "this order is paid through {}; its payment is recorded when the provider confirms it",
                            order.payment_provider
                        ),
                    ));
                }
                let updated = self.apply_event(&tx, meta, order, event, ship.as_ref()).await?;
                let view = self.view(&tx, updated).await?;
                if let Some(c) = &claim {
                    c.complete(&tx, 200, &view).await?;
                }
                tx.commit().await?;
                Ok(view)
            })
            .await
        })
        .await;
        // Cancelling returns units to stock.
        if result.is_ok() && event == OrderEvent::Cancel {
            self.catalog.order_restocked(id).await;
        }
        result
    }

    /// Cancels unpaid orders whose reservation has expired and returns their stock. Safe with
    /// several workers at once: each order's version check lets exactly one of them win.
    pub async fn expire_overdue(&self) -> ServiceResult<u64> {
        let meta = RequestMeta { user_agent: Some("valuva-expiry".into()), ..RequestMeta::default() };
        let due: Vec<Uuid> = orders::Entity::find()
            .select_only()
            .column(orders::Column::Id)
            .filter(orders::Column::Status.eq(OrderStatus::PendingPayment.as_str()))
            .filter(orders::Column::ExpiresAt.lt(Utc::now()))
            .limit(200)
            .into_tuple()
            .all(self.db.primary())
            .await?;
        let mut expired = 0;
        for id in due {
            let result = with_retry(|| async {
                let tx = self.db.begin_serializable().await?;
                let Some(order) = orders::Entity::find_by_id(id).one(&tx).await? else { return Ok(false) };
                if order.status != OrderStatus::PendingPayment.as_str() {
                    return Ok(false);
                }
                self.apply_event(&tx, &meta, order, OrderEvent::Expire, None).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await;
            match result {
                Ok(true) => {
                    expired += 1;
                    self.catalog.order_restocked(id).await;
                }
                Ok(false) => {}
                // Another worker got there first.
                Err(ServiceError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if expired > 0 {
            tracing::info!(expired, "expired unpaid orders and released their stock");
        }
        Ok(expired)
    }
}
