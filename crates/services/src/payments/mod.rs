//! Payment providers. Checkout and refunds talk to a provider only through [`PaymentProvider`];
//! this issue ships `manual` (bank transfer, cash on delivery: staff mark the order paid).
//! Card providers (Stripe, Shopify) implement the same trait: `start` creates an intent for the
//! order (forwarding the idempotency key) and may return a client secret; `refund` goes through
//! the provider's refund API; their webhooks arrive as [`PaymentEvent`]s.

pub mod signatures;
pub mod stripe;

use domain::Money;
use std::{collections::HashMap, sync::Arc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentStart {
    /// `pending` until captured; `succeeded` when captured at once.
    pub status: &'static str,
    pub reference: Option<String>,
    pub client_secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResult {
    pub status: &'static str,
    pub reference: Option<String>,
}

/// What a verified provider webhook says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    Succeeded { reference: String, amount: Money },
    Failed { reference: String, reason: String },
    Refunded { reference: String, amount: Money },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying (timeouts, 5xx, 429).
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    #[error("payment provider refused: {0}")]
    Rejected(String),
}

/// A provider failure as the API reports it: 503 `dependency_unavailable`.
pub fn unavailable(e: ProviderError) -> crate::ServiceError {
    crate::ServiceError::Unavailable { code: "dependency_unavailable", detail: format!("payments: {e}") }
}

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Starts the payment of one order. Retries for the same order are one payment: a
    /// provider's own idempotency key derives from `order_id`, which is unique and stable (a
    /// client's key is scoped to its cart and caller, and may be longer than the provider takes).
    async fn start(&self, order_id: Uuid, amount: Money) -> Result<PaymentStart, ProviderError>;
    async fn refund(&self, reference: Option<&str>, amount: Money, idempotency_key: &str) -> Result<RefundResult, ProviderError>;
}

/// Money moves outside the system; staff record it.
pub struct Manual;

#[async_trait::async_trait]
impl PaymentProvider for Manual {
    fn name(&self) -> &'static str {
        "manual"
    }
    async fn start(&self, _: Uuid, _: Money) -> Result<PaymentStart, ProviderError> {
        Ok(PaymentStart { status: "pending", reference: None, client_secret: None })
    }
    async fn refund(&self, _: Option<&str>, _: Money, _: &str) -> Result<RefundResult, ProviderError> {
        Ok(RefundResult { status: "succeeded", reference: None })
    }
}

/// The configured providers, by name.
#[derive(Clone)]
pub struct Providers(HashMap<&'static str, Arc<dyn PaymentProvider>>);

impl Providers {
    pub fn new(list: Vec<Arc<dyn PaymentProvider>>) -> Self {
        Self(list.into_iter().map(|p| (p.name(), p)).collect())
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn PaymentProvider>> {
        self.0.get(name).cloned()
    }
}

impl Default for Providers {
    fn default() -> Self {
        Self::new(vec![Arc::new(Manual)])
    }
}
