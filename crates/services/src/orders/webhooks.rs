//! Signed provider callbacks. Each event is applied at most once: its id is recorded in the
//! transaction that applies it (a replay, or the same event reaching two instances at once,
//! finds it there and changes nothing). An event that fails to apply answers 5xx so the
//! provider redelivers it (Stripe retries for up to three days); one that never could (ids a
//! column cannot hold) is a 400.

use super::{
    OrderService,
    refunds::{RefundPlan, RefundSource, Restock},
    unmatched,
};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    contention::with_retry,
    payments::signatures::{self, SignatureError},
};
use chrono::Utc;
use domain::{AuditAction, OrderEvent, OrderStatus};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::{Deserialize, Serialize};
use store::entities::{orders, payments, webhook_events};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// applied | already_applied | refunded (paid after the order was cancelled) |
    /// refunded_second_payment (Stripe captured an order Shopify had paid) | refund_refused (that
    /// refund refused by Stripe; for staff) | duplicate | ignored | unknown_payment |
    /// unknown_order | amount_mismatch
    pub outcome: &'static str,
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: StripeData,
}

#[derive(Deserialize)]
struct StripeData {
    object: serde_json::Value,
}

fn signature_error(e: SignatureError) -> ServiceError {
    match e {
        SignatureError::Stale => ServiceError::bad_request("stale_webhook", "the webhook's signed timestamp is too old"),
        _ => ServiceError::bad_request("invalid_signature", "the webhook signature does not verify"),
    }
}

/// Provider ids and references go into `varchar(255)` columns, and PostgreSQL text holds no
/// U+0000: a signed event breaking either is malformed (400), not a failure to redeliver.
fn storable(text: &str) -> ServiceResult<&str> {
    if text.is_empty() || text.len() > 255 || text.contains('\0') {
        return Err(ServiceError::bad_request("malformed_event", "an id in the event is empty, over 255 bytes or contains NUL"));
    }
    Ok(text)
}

/// A provider id as a JSON string or a non-negative integer (Shopify sends both).
fn provider_id(v: &serde_json::Value) -> ServiceResult<String> {
    let id = v.as_u64().map(|i| i.to_string()).or_else(|| v.as_str().map(str::to_owned)).unwrap_or_default();
    storable(&id)?;
    Ok(id)
}

/// What a Shopify event is recorded as, for replays to be found by. The HMAC covers only the
/// body, so `X-Shopify-Event-Id` (and the topic) could be rewritten by anyone re-sending a
/// captured event: a refund re-sent under a fresh event id must still be the same refund. So
/// the events that change an order are known by the signed ids in their body — the Shopify
/// order's id for `orders/paid` (it is paid once), the refund's id for `refunds/create`.
fn shopify_event_key(topic: &str, payload: &serde_json::Value, event_id: &str) -> ServiceResult<String> {
    let key = match topic {
        "orders/paid" | "refunds/create" => format!("{topic}:{}", provider_id(&payload["id"])?),
        _ => return Ok(event_id.to_owned()),
    };
    storable(&key)?;
    Ok(key)
}

fn ack(outcome: &'static str) -> WebhookAck {
    WebhookAck { received: true, outcome }
}

/// Records a provider event in the caller's transaction; `false` when it was recorded before
/// (a replay, or the same event on another instance at the same moment).
async fn record_event(tx: &DatabaseTransaction, provider: &str, event_id: &str, kind: &str) -> ServiceResult<bool> {
    let record = webhook_events::ActiveModel {
        provider: Set(provider.to_owned()),
        event_id: Set(event_id.to_owned()),
        event_type: Set(kind.chars().take(100).collect()),
        order_id: Set(None),
        received_at: Set(Utc::now()),
    };
    match webhook_events::Entity::insert(record).exec_without_returning(tx).await {
        Ok(_) => Ok(true),
        Err(e) if store::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The payment a provider's reference points at, with its order; the event row is linked to
/// the order.
async fn payment_of(
    tx: &DatabaseTransaction,
    provider: &str,
    reference: &str,
    event_id: &str,
) -> ServiceResult<Option<(payments::Model, orders::Model)>> {
    let Some(payment) = payments::Entity::find()
        .filter(payments::Column::Provider.eq(provider))
        .filter(payments::Column::Reference.eq(reference))
        .one(tx)
        .await?
    else {
        return Ok(None);
    };
    let order = orders::Entity::find_by_id(payment.order_id).one(tx).await?.ok_or(ServiceError::not_found("order"))?;
    webhook_events::Entity::update_many()
        .col_expr(webhook_events::Column::OrderId, Expr::value(order.id))
        .filter(webhook_events::Column::Provider.eq(provider))
        .filter(webhook_events::Column::EventId.eq(event_id))
        .exec(tx)
        .await?;
    Ok(Some((payment, order)))
}

impl OrderService {
    /// `POST /webhooks/stripe`: verifies `Stripe-Signature`, then applies
    /// `payment_intent.succeeded` (order → paid, amount and currency checked) and
    /// `payment_intent.payment_failed`; other event types are acknowledged and ignored.
    pub async fn stripe_webhook(&self, meta: &RequestMeta, signature: Option<&str>, body: &[u8]) -> ServiceResult<WebhookAck> {
        let secret = self.webhooks.stripe.as_ref().ok_or(ServiceError::not_found("webhook endpoint"))?;
        let header = signature.ok_or_else(|| signature_error(SignatureError::Malformed))?;
        signatures::verify_stripe(secret.expose(), header, body, Utc::now().timestamp()).map_err(signature_error)?;
        let event: StripeEvent =
            serde_json::from_slice(body).map_err(|_| ServiceError::bad_request("malformed_event", "the event is not a Stripe event"))?;
        storable(&event.id)?;
        if event.kind.contains('\0') {
            return Err(ServiceError::bad_request("malformed_event", "the event type contains NUL"));
        }
        let intent = match event.data.object["id"].as_str() {
            Some(intent) => storable(intent)?,
            None => "",
        };
        let meta = RequestMeta { user_agent: Some("stripe-webhook".into()), ..meta.clone() };
        with_retry(|| async {
            let tx = self.db.begin_serializable().await?;
            if !record_event(&tx, "stripe", &event.id, &event.kind).await? {
                return Ok(ack("duplicate"));
            }
            let object = &event.data.object;
            let outcome = match event.kind.as_str() {
                "payment_intent.succeeded" | "payment_intent.payment_failed" => {
                    let found = match payment_of(&tx, "stripe", intent, &event.id).await? {
                        None if unmatched::adopt_intent(&tx, intent, object).await? => payment_of(&tx, "stripe", intent, &event.id).await?,
                        found => found,
                    };
                    let Some((payment, order)) = found else {
                        let outcome = match event.kind.as_str() {
                            "payment_intent.succeeded" => self.second_payment(&tx, &meta, &event.id, object, intent).await?,
                            _ => "unknown_payment",
                        };
                        tx.commit().await?;
                        return Ok(ack(outcome));
                    };
                    if event.kind == "payment_intent.succeeded" {
                        let amount = object["amount_received"].as_i64().or_else(|| object["amount"].as_i64());
                        let currency = object["currency"].as_str().map(str::to_uppercase);
                        if amount != Some(order.total) || currency.as_deref() != Some(order.currency.as_str()) {
                            // Nothing is recorded: a wrong amount never marks an order paid.
                            tracing::warn!(order = %order.id, ?amount, ?currency, "Stripe payment does not match the order; ignored");
                            return Ok(ack("amount_mismatch"));
                        }
                        let change = Change::new(AuditAction::Payment, "order", order.id)
                            .new_values(serde_json::json!({"provider": "stripe", "event": event.id, "intent": intent, "status": "succeeded", "amount": order.total}));
                        audit::record(&tx, &meta, change).await?;
                        if order.status == OrderStatus::PendingPayment.as_str() {
                            self.apply_event(&tx, &meta, order, OrderEvent::Pay, None).await?;
                            "applied"
                        } else if order.status == OrderStatus::Cancelled.as_str() && order.refunded_total == 0 {
                            // Captured after the unpaid order was cancelled or expired (the
                            // customer was still confirming the payment): its stock went back
                            // on sale, so the money goes back too, through Stripe's Refund API
                            // (keyed, so a redelivery never refunds twice).
                            let plan = RefundPlan {
                                amount: order.total,
                                restock: Restock::Nothing,
                                reason: Some("paid after the order was cancelled"),
                                source: RefundSource::Shop,
                            };
                            self.refund_inside(&tx, &meta, &order, plan).await?;
                            "refunded"
                        } else {
                            "already_applied"
                        }
                    } else if order.status != OrderStatus::PendingPayment.as_str() {
                        // A failed attempt reported after the order was paid (or closed): Stripe
                        // does not promise delivery in order, and it must not undo the payment.
                        tracing::info!(order = %order.id, status = %order.status, "stale Stripe payment failure; ignored");
                        "ignored"
                    } else {
                        let reason = object["last_payment_error"]["message"].as_str().unwrap_or("payment failed");
                        payments::Entity::update_many()
                            .col_expr(payments::Column::Status, Expr::value("failed"))
                            .col_expr(payments::Column::UpdatedAt, Expr::value(Utc::now()))
                            .filter(payments::Column::Id.eq(payment.id))
                            .exec(&tx)
                            .await?;
                        let change = Change::new(AuditAction::Payment, "order", order.id)
                            .new_values(serde_json::json!({"provider": "stripe", "event": event.id, "intent": intent, "status": "failed", "reason": reason}));
                        audit::record(&tx, &meta, change).await?;
                        "applied"
                    }
                }
                _ => "ignored",
            };
            tx.commit().await?;
            Ok(ack(outcome))
        })
        .await
    }
}

/// "49.98" → 4998 for a currency with two minor units; `None` for anything else.
fn minor_units(amount: &str, digits: u8) -> Option<i64> {
    let (whole, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > digits as usize
    {
        return None;
    }
    let scale = 10i64.checked_pow(digits as u32)?;
    let frac_value: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<width$}", width = digits as usize).parse().ok()? };
    whole.parse::<i64>().ok()?.checked_mul(scale)?.checked_add(frac_value)
}

impl OrderService {
    /// `POST /webhooks/shopify`: verifies `X-Shopify-Hmac-Sha256`, de-duplicates by the signed
    /// ids in the body ([`shopify_event_key`]), and applies `orders/paid` (the Shopify order carries our order id
    /// in its `note_attributes` as `valuva_order_id`) and `refunds/create`.
    pub async fn shopify_webhook(
        &self,
        meta: &RequestMeta,
        hmac: Option<&str>,
        event_id: Option<&str>,
        topic: Option<&str>,
        body: &[u8],
    ) -> ServiceResult<WebhookAck> {
        let secret = self.webhooks.shopify.as_ref().ok_or(ServiceError::not_found("webhook endpoint"))?;
        let header = hmac.ok_or_else(|| signature_error(SignatureError::Malformed))?;
        signatures::verify_shopify(secret.expose(), header, body).map_err(signature_error)?;
        let event_id = event_id
            .filter(|e| !e.is_empty() && e.len() <= 255)
            .ok_or_else(|| ServiceError::bad_request("missing_event_id", "X-Shopify-Event-Id is required"))?;
        let topic = topic.unwrap_or_default().to_owned();
        let payload: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| ServiceError::bad_request("malformed_event", "the event is not JSON"))?;
        let meta = RequestMeta { user_agent: Some("shopify-webhook".into()), ..meta.clone() };
        let key = shopify_event_key(&topic, &payload, event_id)?;
        with_retry(|| async {
            let tx = self.db.begin_serializable().await?;
            if !record_event(&tx, "shopify", &key, &topic).await? {
                return Ok(ack("duplicate"));
            }
            let outcome = match topic.as_str() {
                "orders/paid" => {
                    let shopify_id = provider_id(&payload["id"])?;
                    let ours = payload["note_attributes"]
                        .as_array()
                        .and_then(|a| a.iter().find(|n| n["name"] == "valuva_order_id"))
                        .and_then(|n| n["value"].as_str())
                        .and_then(|v| uuid::Uuid::parse_str(v).ok());
                    let order = match ours {
                        Some(id) => orders::Entity::find_by_id(id).one(&tx).await?,
                        None => None,
                    };
                    let Some(order) = order else {
                        tx.commit().await?;
                        return Ok(ack("unknown_order"));
                    };
                    let digits = domain::Currency::parse(&order.currency).map(|c| c.minor_units()).unwrap_or(2);
                    let amount = payload["total_price"].as_str().and_then(|p| minor_units(p, digits));
                    let currency = payload["currency"].as_str().map(str::to_uppercase);
                    if amount != Some(order.total) || currency.as_deref() != Some(order.currency.as_str()) {
                        tracing::warn!(order = %order.id, ?amount, ?currency, "Shopify payment does not match the order; ignored");
                        return Ok(ack("amount_mismatch"));
                    }
                    let change = Change::new(AuditAction::Payment, "order", order.id)
                        .new_values(serde_json::json!({"provider": "shopify", "event": event_id, "shopify_order": shopify_id, "status": "succeeded", "amount": order.total}));
                    audit::record(&tx, &meta, change).await?;
                    if order.status == OrderStatus::PendingPayment.as_str() {
                        // The order and its payment now name Shopify, which holds the money: a
                        // paid order already names whoever took it.
                        payments::Entity::update_many()
                            .col_expr(payments::Column::Provider, Expr::value("shopify"))
                            .col_expr(payments::Column::Reference, Expr::value(shopify_id.clone()))
                            .filter(payments::Column::OrderId.eq(order.id))
                            .exec(&tx)
                            .await?;
                        orders::Entity::update_many()
                            .col_expr(orders::Column::PaymentProvider, Expr::value("shopify"))
                            .filter(orders::Column::Id.eq(order.id))
                            .exec(&tx)
                            .await?;
                        let order = orders::Model { payment_provider: "shopify".into(), ..order };
                        self.apply_event(&tx, &meta, order, OrderEvent::Pay, None).await?;
                        "applied"
                    } else if order.status == OrderStatus::Cancelled.as_str() {
                        // Shopify holds money for an order whose stock went back on sale, and
                        // no refund API is called from here (Shopify is refunded in Shopify):
                        // staff must see it. The audit row above records it.
                        tracing::warn!(order = %order.id, shopify_order = %shopify_id, "Shopify took payment for a cancelled order; refund it in Shopify");
                        metrics::counter!("valuva_payments_after_close_total", "provider" => "shopify").increment(1);
                        "paid_after_close"
                    } else {
                        "already_applied"
                    }
                }
                "refunds/create" => {
                    let shopify_order = provider_id(&payload["order_id"])?;
                    let Some((_, order)) = payment_of(&tx, "shopify", &shopify_order, event_id).await? else {
                        tx.commit().await?;
                        return Ok(ack("unknown_payment"));
                    };
                    let digits = domain::Currency::parse(&order.currency).map(|c| c.minor_units()).unwrap_or(2);
                    let mut refunded = payload["transactions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|t| t["kind"] == "refund" && t["status"] == "success")
                        .filter_map(|t| t["amount"].as_str().and_then(|a| minor_units(a, digits)));
                    // Summed without wrapping: amounts near i64::MAX must not add up to a small refund.
                    let Some(amount) = refunded.try_fold(0i64, i64::checked_add) else {
                        tracing::warn!(order = %order.id, "Shopify refund amounts overflow; ignored");
                        return Ok(ack("amount_mismatch"));
                    };
                    if amount == 0 {
                        tx.commit().await?;
                        return Ok(ack("ignored"));
                    }
                    let status = OrderStatus::parse(&order.status).map_err(|e| ServiceError::internal(e.0))?;
                    if !status.is_refundable() || amount > order.total - order.refunded_total {
                        tracing::warn!(order = %order.id, amount, "Shopify refund cannot apply to this order; ignored");
                        return Ok(ack("amount_mismatch"));
                    }
                    let plan = RefundPlan { amount, restock: Restock::Nothing, reason: Some("refunded in Shopify"), source: RefundSource::Provider };
                    self.refund_inside(&tx, &meta, &order, plan).await?;
                    let order = orders::Entity::find_by_id(order.id).one(&tx).await?.ok_or(ServiceError::not_found("order"))?;
                    if order.refunded_total == order.total {
                        self.apply_event(&tx, &meta, order, OrderEvent::RefundInFull, None).await?;
                    }
                    "applied"
                }
                _ => "ignored",
            };
            tx.commit().await?;
            Ok(ack(outcome))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_amounts() {
        assert_eq!(super::minor_units("49.98", 2), Some(4998));
        assert_eq!(super::minor_units("49.9", 2), Some(4990));
        assert_eq!(super::minor_units("49", 2), Some(4900));
        assert_eq!(super::minor_units("1000", 0), Some(1000));
        for bad in ["", "4.999", "-1.00", "1e3", "abc", ".5"] {
            assert_eq!(super::minor_units(bad, 2), None, "{bad}");
        }
    }
}
