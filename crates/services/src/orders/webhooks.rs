//! Signed provider callbacks. Each event is applied at most once: its id is recorded in the
//! transaction that applies it (a replay, or the same event reaching two instances at once,
//! finds it there and changes nothing). An event that fails to apply answers 5xx so the
//! provider redelivers it (Stripe retries for up to three days).

use super::{OrderService, checkout::with_retry};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    payments::signatures::{self, SignatureError},
};
use chrono::Utc;
use domain::{AuditAction, OrderEvent, OrderStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::{Deserialize, Serialize};
use store::entities::{orders, payments, webhook_events};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// applied | duplicate | ignored | unknown_payment | amount_mismatch
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

fn ack(outcome: &'static str) -> WebhookAck {
    WebhookAck { received: true, outcome }
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
        let meta = RequestMeta { user_agent: Some("stripe-webhook".into()), ..meta.clone() };
        with_retry(|| async {
            let tx = self.db.begin_serializable().await?;
            let record = webhook_events::ActiveModel {
                provider: Set("stripe".into()),
                event_id: Set(event.id.clone()),
                event_type: Set(event.kind.clone()),
                order_id: Set(None),
                received_at: Set(Utc::now()),
            };
            if let Err(e) = webhook_events::Entity::insert(record).exec_without_returning(&tx).await {
                return if store::is_unique_violation(&e) { Ok(ack("duplicate")) } else { Err(e.into()) };
            }
            let object = &event.data.object;
            let intent = object["id"].as_str().unwrap_or_default();
            let outcome = match event.kind.as_str() {
                "payment_intent.succeeded" | "payment_intent.payment_failed" => {
                    let payment = payments::Entity::find()
                        .filter(payments::Column::Provider.eq("stripe"))
                        .filter(payments::Column::Reference.eq(intent))
                        .one(&tx)
                        .await?;
                    let Some(payment) = payment else {
                        tx.commit().await?;
                        return Ok(ack("unknown_payment"));
                    };
                    let order = orders::Entity::find_by_id(payment.order_id).one(&tx).await?.ok_or(ServiceError::not_found("order"))?;
                    webhook_events::Entity::update_many()
                        .col_expr(webhook_events::Column::OrderId, Expr::value(order.id))
                        .filter(webhook_events::Column::Provider.eq("stripe"))
                        .filter(webhook_events::Column::EventId.eq(&event.id))
                        .exec(&tx)
                        .await?;
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
                        } else {
                            "already_applied"
                        }
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
