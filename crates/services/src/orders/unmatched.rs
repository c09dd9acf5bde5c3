//! Stripe events whose intent no payment row names: an intent checkout could not store, or a
//! second payment of an order Shopify had paid meanwhile. Both are found through the order id
//! the intent's metadata carries (ours, set when the intent was created, and signed with the
//! event).

use super::OrderService;
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
};
use domain::{AuditAction, Money, OrderStatus};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};
use store::entities::{audit_logs, orders, payments, webhook_events};

/// The order id checkout put in the intent's metadata.
fn metadata_order(intent: &serde_json::Value) -> Option<uuid::Uuid> {
    intent["metadata"]["order_id"].as_str().and_then(|id| uuid::Uuid::parse_str(id).ok())
}

/// An intent checkout created but could not store (Stripe answered, the write after it failed):
/// the order its metadata names, whose Stripe payment still has no reference, takes it, so
/// the event applies to that payment instead of going unmatched while the order expires. The
/// metadata is ours (set when the intent was created) and signed with the event.
pub(super) async fn adopt_intent(tx: &DatabaseTransaction, intent: &str, object: &serde_json::Value) -> ServiceResult<bool> {
    let Some(order) = metadata_order(object) else {
        return Ok(false);
    };
    let adopted = payments::Entity::update_many()
        .col_expr(payments::Column::Reference, Expr::value(intent))
        .filter(payments::Column::OrderId.eq(order))
        .filter(payments::Column::Provider.eq("stripe"))
        .filter(payments::Column::Reference.is_null())
        .exec(tx)
        .await?;
    if adopted.rows_affected == 1 {
        tracing::warn!(%order, %intent, "a Stripe intent the checkout did not store was matched by its metadata");
    }
    Ok(adopted.rows_affected == 1)
}

impl OrderService {
    /// A Stripe capture whose intent no payment row names any more: the intent's metadata
    /// names one of our orders, which meanwhile was paid through Shopify (its `orders/paid`
    /// re-points the order's payment). The customer paid twice, so a capture of exactly the
    /// order's total goes back in full through Stripe's Refund API; the order, paid in
    /// Shopify, is unchanged. The audit row is the record that it was refunded: another event
    /// for the same capture finds it and refunds nothing more. Anything else (no such order, an
    /// order still unpaid or paid another way, another amount) is left to staff as
    /// `unknown_payment`.
    pub(super) async fn second_payment(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        event_id: &str,
        object: &serde_json::Value,
        intent: &str,
    ) -> ServiceResult<&'static str> {
        let order = match metadata_order(object) {
            Some(id) => orders::Entity::find_by_id(id).one(tx).await?,
            None => None,
        };
        let amount = object["amount_received"].as_i64().or_else(|| object["amount"].as_i64());
        let currency = object["currency"].as_str().map(str::to_uppercase);
        let (Some(order), Some(stripe)) = (order, self.providers.get("stripe")) else {
            return Ok("unknown_payment");
        };
        let paid_in_shopify = order.payment_provider == "shopify" && order.status != OrderStatus::PendingPayment.as_str();
        if !paid_in_shopify || amount != Some(order.total) || currency.as_deref() != Some(order.currency.as_str()) {
            return Ok("unknown_payment");
        }
        webhook_events::Entity::update_many()
            .col_expr(webhook_events::Column::OrderId, Expr::value(order.id))
            .filter(webhook_events::Column::Provider.eq("stripe"))
            .filter(webhook_events::Column::EventId.eq(event_id))
            .exec(tx)
            .await?;
        let settled = audit_logs::Entity::find()
            .filter(audit_logs::Column::EntityType.eq("order"))
            .filter(audit_logs::Column::EntityId.eq(order.id.to_string()))
            .filter(audit_logs::Column::Action.eq(AuditAction::Payment.as_str()))
            .filter(audit_logs::Column::NewValues.contains(format!("\"second_payment\":\"{intent}\"")))
            .one(tx)
            .await?;
        if settled.is_some() {
            return Ok("already_applied");
        }
        let currency = domain::Currency::parse(&order.currency).map_err(|e| ServiceError::internal(e.0))?;
        let money = Money::price(order.total, currency).map_err(|e| ServiceError::internal(e.0))?;
        let (status, refund, outcome) = match stripe.refund(Some(intent), money, &format!("second-payment-{intent}")).await {
            Ok(r) => ("refunded", r.reference, "refunded_second_payment"),
            // Final (already refunded in the Dashboard, say): redelivering would not change
            // it, so it is recorded for staff and acknowledged.
            Err(crate::payments::ProviderError::Rejected(why)) => ("refund_refused", Some(why), "refund_refused"),
            Err(e) => return Err(crate::payments::unavailable(e)),
        };
        let change = Change::new(AuditAction::Payment, "order", order.id).new_values(serde_json::json!({
            "provider": "stripe", "event": event_id, "second_payment": intent, "status": status, "amount": order.total,
            "currency": order.currency, "refund": refund, "paid_through": order.payment_provider,
        }));
        audit::record(tx, meta, change).await?;
        tracing::warn!(order = %order.id, %intent, status, "Stripe captured an order paid in Shopify");
        metrics::counter!("valuva_payments_second_total", "provider" => "stripe", "outcome" => status).increment(1);
        Ok(outcome)
    }
}
