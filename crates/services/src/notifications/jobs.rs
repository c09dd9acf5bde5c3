//! The email job kinds and their handlers. Payloads carry ids; handlers read current data.

use super::{Email, Mailer, templates};
use crate::{
    jobs::{
        NewJob,
        worker::{Handler, JobError},
    },
    orders::{OrderAccess, OrderService},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use store::{
    Db,
    entities::{products, stock_subscriptions as subs, users, variants},
};
use uuid::Uuid;

pub const ORDER_CONFIRMATION: &str = "email.order_confirmation";
pub const SHIPPING_NOTICE: &str = "email.shipping_notice";
pub const PASSWORD_RESET: &str = "email.password_reset";
pub const BACK_IN_STOCK: &str = "email.back_in_stock";
pub const LOW_STOCK: &str = "email.low_stock";

fn id(payload: &Value, field: &str) -> Result<Uuid, JobError> {
    payload[field].as_str().and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(|| JobError::permanent(format!("payload has no {field}")))
}

async fn send(mailer: &Mailer, email: &Email) -> Result<(), JobError> {
    mailer.send(email).await.map_err(JobError::from)
}

/// Order confirmation or shipping notice.
pub struct OrderEmail {
    pub orders: OrderService,
    pub mailer: Mailer,
    pub template: fn(&crate::orders::OrderView) -> Email,
}

#[async_trait::async_trait]
impl Handler for OrderEmail {
    async fn run(&self, payload: Value) -> Result<(), JobError> {
        let access = OrderAccess { user: None, cart_token: None, staff: true };
        let order = self.orders.get(id(&payload, "order_id")?, &access).await?;
        send(&self.mailer, &(self.template)(&order)).await
    }
}

pub struct PasswordResetEmail {
    pub mailer: Mailer,
}

#[async_trait::async_trait]
impl Handler for PasswordResetEmail {
    async fn run(&self, payload: Value) -> Result<(), JobError> {
        let (Some(to), Some(token)) = (payload["to"].as_str(), payload["token"].as_str()) else {
            return Err(JobError::permanent("payload needs to and token"));
        };
        let minutes = payload["valid_minutes"].as_i64().unwrap_or(30);
        send(&self.mailer, &templates::password_reset(to, token, minutes)).await
    }
}

async fn variant_and_product(db: &Db, variant: Uuid) -> Result<Option<(variants::Model, products::Model)>, JobError> {
    let found =
        variants::Entity::find_by_id(variant).find_also_related(products::Entity).one(db.current()).await.map_err(JobError::retry)?;
    Ok(found.and_then(|(v, p)| p.map(|p| (v, p))))
}

/// One subscriber, once (the subscription was closed when this job was enqueued).
pub struct BackInStockEmail {
    pub db: Db,
    pub mailer: Mailer,
}

#[async_trait::async_trait]
impl Handler for BackInStockEmail {
    async fn run(&self, payload: Value) -> Result<(), JobError> {
        let sub = subs::Entity::find_by_id(id(&payload, "subscription_id")?).one(self.db.current()).await.map_err(JobError::retry)?;
        let Some(sub) = sub else { return Ok(()) };
        // The variant or product is gone: nothing to announce.
        let Some((v, p)) = variant_and_product(&self.db, sub.variant_id).await? else { return Ok(()) };
        send(&self.mailer, &templates::back_in_stock(&sub.email, &p.title, &v.sku, &p.slug)).await
    }
}

/// To every staff and admin account: the event's job becomes one job per recipient (`to`), so
/// that a failure for one address retries that email alone, neither sending the others again
/// nor, when it is permanent, leaving the accounts after it untold.
pub struct LowStockEmail {
    pub db: Db,
    pub mailer: Mailer,
}

#[async_trait::async_trait]
impl Handler for LowStockEmail {
    async fn run(&self, payload: Value) -> Result<(), JobError> {
        let variant = id(&payload, "variant_id")?;
        if let Some(to) = payload["to"].as_str() {
            let Some((v, p)) = variant_and_product(&self.db, variant).await? else { return Ok(()) };
            return send(&self.mailer, &templates::low_stock(to, &p.title, &v.sku, v.stock)).await;
        }
        let staff = users::Entity::find()
            .filter(users::Column::Role.is_in(["staff", "admin"]))
            .all(self.db.current())
            .await
            .map_err(JobError::retry)?;
        // Keyed by the event and the account: a re-run of this job enqueues nobody twice.
        let event = payload["event"].as_str().unwrap_or_default();
        let jobs = staff
            .iter()
            .map(|u| {
                NewJob::new(LOW_STOCK, serde_json::json!({"variant_id": variant, "to": u.email}))
                    .dedupe(format!("{event}:{variant}:{}", u.id))
            })
            .collect();
        crate::jobs::enqueue_many(self.db.primary(), jobs).await.map_err(JobError::from)?;
        Ok(())
    }
}
