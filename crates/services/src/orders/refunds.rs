use super::{
    OrderAccess, OrderService,
    transitions::{invalid, move_stock},
};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    catalog::MoneyView,
    contention::with_retry,
    idempotency::{self, Outcome},
    inventory::Kind,
    outbox,
};
use chrono::{DateTime, Utc};
use domain::{AuditAction, Currency, Money, OrderEvent, OrderStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use store::entities::{order_lines, orders, payments, refunds};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units; defaults to everything captured and not yet refunded.
    pub amount: Option<i64>,
    /// Put every unit of the order back in stock.
    pub restock: Option<bool>,
    /// Or put back only these units, line by line.
    pub restock_lines: Option<Vec<RestockLine>>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockLine {
    /// An `items[].id` of the order.
    pub line_id: Uuid,
    pub quantity: i32,
}

/// Where a refund starts: the shop asks the provider to pay back, or the provider reports a
/// refund made on its side (a webhook) that only needs recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RefundSource {
    Shop,
    Provider,
}

/// What one refund does.
pub(super) struct RefundPlan<'a> {
    pub amount: i64,
    pub restock: Restock,
    pub reason: Option<&'a str>,
    pub source: RefundSource,
}

/// Which units a refund returns to stock.
#[derive(Debug, Clone)]
pub(super) enum Restock {
    Nothing,
    All,
    Lines(Vec<RestockLine>),
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundView {
    pub id: Uuid,
    pub order_id: Uuid,
    pub amount: MoneyView,
    pub restock: bool,
    pub status: String,
    pub reason: Option<String>,
    /// The order's refunded total after this refund.
    pub refunded_total: MoneyView,
    pub order_status: String,
    pub created_at: DateTime<Utc>,
}

impl OrderService {
    /// Records a refund of `amount` inside `tx`. The conditional update on the order makes it
    /// impossible for refunds, however concurrent, to exceed what was captured.
    pub(super) async fn refund_inside(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        order: &orders::Model,
        plan: RefundPlan<'_>,
    ) -> ServiceResult<refunds::Model> {
        let RefundPlan { amount, restock, reason, source } = plan;
        let remaining = order.total - order.refunded_total;
        if amount < 1 {
            return Err(ServiceError::field("amount", "must be at least 1"));
        }
        if amount > remaining {
            return Err(ServiceError::conflict(
                "refund_exceeds_captured",
                format!("only {remaining} of the captured amount is left to refund"),
            ));
        }
        let ok = orders::Entity::update_many()
            .col_expr(orders::Column::RefundedTotal, Expr::col(orders::Column::RefundedTotal).add(amount))
            .col_expr(orders::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(orders::Column::Id.eq(order.id))
            .filter(Expr::col(orders::Column::RefundedTotal).add(amount).lte(Expr::col(orders::Column::Total)))
            .exec(tx)
            .await?
            .rows_affected;
        if ok == 0 {
            return Err(ServiceError::conflict("refund_exceeds_captured", "refunds would exceed the captured amount"));
        }
        let restocked = restock_units(tx, meta, order, restock, self.catalog.low_stock()).await?;
        let payment = payments::Entity::find()
            .filter(payments::Column::OrderId.eq(order.id))
            .one(tx)
            .await?
            .ok_or(ServiceError::not_found("payment"))?;
        let refund_id = domain::new_id();
        let status: &'static str = match source {
            RefundSource::Shop => {
                // Paid through a channel whose money this system does not move (an order paid
                // in Shopify, or a provider no longer configured): it is refunded there, and
                // that provider's refund webhook records it here.
                let provider = self.providers.get(&payment.provider).ok_or_else(|| {
                    ServiceError::conflict(
                        "refund_at_provider",
                        format!(
                            "this order was paid through {}: refund it there, and its refund notification records it here",
                            payment.provider
                        ),
                    )
                })?;
                let currency = Currency::parse(&order.currency).map_err(|e| ServiceError::internal(e.0))?;
                let money = Money::price(amount, currency).map_err(|e| ServiceError::internal(e.0))?;
                let key = format!("{}-{}-{amount}", order.id, order.refunded_total);
                provider.refund(payment.reference.as_deref(), money, &key).await.map_err(crate::payments::unavailable)?.status
            }
            RefundSource::Provider => "succeeded",
        };
        payments::Entity::update_many()
            .col_expr(payments::Column::RefundedAmount, Expr::col(payments::Column::RefundedAmount).add(amount))
            .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(payments::Column::Id.eq(payment.id))
            .exec(tx)
            .await?;
        let row = refunds::ActiveModel {
            id: Set(refund_id),
            order_id: Set(order.id),
            payment_id: Set(payment.id),
            amount: Set(amount),
            currency: Set(order.currency.clone()),
            restock: Set(restocked),
            status: Set(status.into()),
            reason: Set(reason.map(str::to_owned)),
            actor_id: Set(meta.actor.map(|a| a.id)),
            created_at: Set(Utc::now()),
        }
        .insert(tx)
        .await?;
        let change = Change::new(AuditAction::Refund, "order", order.id)
            .old(serde_json::json!({"refunded_total": order.refunded_total}))
            .new_values(serde_json::json!({"refunded_total": order.refunded_total + amount, "amount": amount, "restocked": restocked, "reason": reason}));
        audit::record(tx, meta, change).await?;
        outbox::emit(tx, "order.refunded", order.id, serde_json::json!({"amount": amount, "currency": order.currency})).await?;
        Ok(row)
    }

    /// A full or partial refund of a paid order (idempotent with a key). When refunds reach
    /// the captured total the order becomes `refunded`.
    pub async fn refund(
        &self,
        meta: &RequestMeta,
        id: Uuid,
        req: RefundRequest,
        key: Option<String>,
    ) -> ServiceResult<Outcome<RefundView>> {
        if req.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
            return Err(ServiceError::field("reason", "must be at most 500 characters"));
        }
        let key = key.as_deref().map(idempotency::parse_key).transpose()?;
        let request = serde_json::to_value(&req).map_err(ServiceError::internal)?;
        let caller = meta.actor.map(|a| a.id.to_string()).unwrap_or_default();
        idempotency::run(&self.db, format!("refund:{id}:{caller}"), key, &request, |claim| async move {
            with_retry(|| async {
                let tx = self.db.begin_serializable().await?;
                let order = self.authorized(&tx, id, &OrderAccess { staff: true, ..Default::default() }).await?;
                let status = OrderStatus::parse(&order.status).map_err(|e| ServiceError::internal(e.0))?;
                if !status.is_refundable() {
                    return Err(invalid(status.apply(OrderEvent::RefundInFull).expect_err("not refundable")));
                }
                let amount = req.amount.unwrap_or(order.total - order.refunded_total);
                let restock = match (req.restock.unwrap_or(false), &req.restock_lines) {
                    (true, Some(_)) => return Err(ServiceError::field("restock_lines", "give either restock or restock_lines")),
                    (true, None) => Restock::All,
                    (false, Some(lines)) => Restock::Lines(lines.clone()),
                    (false, None) => Restock::Nothing,
                };
                let refund = self
                    .refund_inside(
                        &tx,
                        meta,
                        &order,
                        RefundPlan { amount, restock, reason: req.reason.as_deref(), source: RefundSource::Shop },
                    )
                    .await?;
                let mut order = orders::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("order"))?;
                if order.refunded_total == order.total {
                    order = self.apply_event(&tx, meta, order, OrderEvent::RefundInFull, None).await?;
                }
                let view = RefundView {
                    id: refund.id,
                    order_id: id,
                    amount: MoneyView { amount: refund.amount, currency: refund.currency.clone() },
                    restock: refund.restock,
                    status: refund.status,
                    reason: refund.reason,
                    refunded_total: MoneyView { amount: order.refunded_total, currency: order.currency.clone() },
                    order_status: order.status,
                    created_at: refund.created_at,
                };
                if let Some(c) = &claim {
                    c.complete(&tx, 201, &view).await?;
                }
                tx.commit().await?;
                if view.restock {
                    self.catalog.order_restocked(id).await;
                }
                Ok(view)
            })
            .await
        })
        .await
    }
}

/// Returns units of the order to stock (never more than were sold), with ledger rows.
/// Returns whether anything was restocked.
pub(super) async fn restock_units(
    tx: &DatabaseTransaction,
    meta: &RequestMeta,
    order: &orders::Model,
    restock: Restock,
    low_stock: i64,
) -> ServiceResult<bool> {
    let lines = order_lines::Entity::find().filter(order_lines::Column::OrderId.eq(order.id)).all(tx).await?;
    let wanted: Vec<(order_lines::Model, i32)> = match &restock {
        Restock::Nothing => Vec::new(),
        Restock::All => lines
            .into_iter()
            .map(|l| {
                let q = l.quantity - l.restocked_quantity;
                (l, q)
            })
            .collect(),
        Restock::Lines(list) => {
            // Quantities for one line add up (a line may be named twice).
            let mut per_line: Vec<(order_lines::Model, i32)> = Vec::new();
            for (i, r) in list.iter().enumerate() {
                let line = lines
                    .iter()
                    .find(|l| l.id == r.line_id)
                    .ok_or_else(|| ServiceError::field(format!("restock_lines[{i}].line_id"), "is not a line of this order"))?;
                if r.quantity < 1 {
                    return Err(ServiceError::field(format!("restock_lines[{i}].quantity"), "must be at least 1"));
                }
                match per_line.iter_mut().find(|(l, _)| l.id == line.id) {
                    Some((_, q)) => *q = q.saturating_add(r.quantity),
                    None => per_line.push((line.clone(), r.quantity)),
                }
            }
            for (l, q) in &per_line {
                let left = l.quantity - l.restocked_quantity;
                if *q > left {
                    return Err(ServiceError::field("restock_lines", format!("line {} has only {left} units left to restock", l.id)));
                }
            }
            per_line
        }
    };
    let wanted: Vec<_> = wanted.into_iter().filter(|(_, q)| *q > 0).collect();
    let restocked = !wanted.is_empty();
    for (l, back) in wanted {
        move_stock(tx, meta, order.id, l.variant_id, (back as i64, 0), Kind::Restock, low_stock).await?;
        let ok = order_lines::Entity::update_many()
            .col_expr(order_lines::Column::RestockedQuantity, Expr::col(order_lines::Column::RestockedQuantity).add(back))
            .filter(order_lines::Column::Id.eq(l.id))
            .filter(Expr::col(order_lines::Column::RestockedQuantity).add(back).lte(Expr::col(order_lines::Column::Quantity)))
            .exec(tx)
            .await?
            .rows_affected;
        if ok == 0 {
            return Err(ServiceError::conflict("concurrent_update", "the order's lines changed meanwhile; retry"));
        }
    }
    Ok(restocked)
}
