//! Back-in-stock alerts: a shopper subscribes to a sold-out variant; when its stock goes from
//! zero to positive, each open subscription gets one email job and is closed, in the same
//! transaction (so nobody is emailed twice, and nobody is forgotten).

use super::jobs::BACK_IN_STOCK;
use crate::{ServiceError, ServiceResult, jobs};
use chrono::{DateTime, Utc};
use domain::Email;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::{Deserialize, Serialize};
use store::{
    Db,
    entities::{products, stock_subscriptions as subs, users, variants},
};
use utoipa::ToSchema;
use uuid::Uuid;

pub const ACTIVE: &str = "active";
pub const NOTIFIED: &str = "notified";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStockAlert {
    #[schema(example = "ann@example.com")]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StockAlertView {
    pub id: Uuid,
    pub variant_id: Uuid,
    pub email: String,
    #[schema(example = "active")]
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl From<subs::Model> for StockAlertView {
    fn from(s: subs::Model) -> Self {
        Self { id: s.id, variant_id: s.variant_id, email: s.email, status: s.status, created_at: s.created_at }
    }
}

#[derive(Clone)]
pub struct StockAlerts {
    db: Db,
}

impl StockAlerts {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Subscribes `email` (a customer's own address when signed in) to a sold-out variant of an
    /// active product. Subscribing again re-opens the subscription.
    pub async fn subscribe(
        &self,
        product_id: Uuid,
        variant_id: Uuid,
        email: Option<&str>,
        user: Option<Uuid>,
    ) -> ServiceResult<StockAlertView> {
        let email = match (email, user) {
            (Some(e), _) => Email::parse(e).map_err(|e| ServiceError::field("email", e.0))?,
            (None, Some(u)) => {
                let account = users::Entity::find_by_id(u).one(self.db.primary()).await?.ok_or(ServiceError::not_found("user"))?;
                Email::parse(&account.email).map_err(ServiceError::internal)?
            }
            (None, None) => return Err(ServiceError::field("email", "is required unless signed in")),
        };
        let found = variants::Entity::find_by_id(variant_id).find_also_related(products::Entity).one(self.db.primary()).await?;
        let Some((variant, Some(product))) = found else { return Err(ServiceError::not_found("variant")) };
        if product.id != product_id || product.status != "active" || product.deleted_at.is_some() {
            return Err(ServiceError::not_found("variant"));
        }
        if variant.stock > 0 {
            return Err(ServiceError::conflict("in_stock", "this variant is in stock; buy it now"));
        }
        let now = Utc::now();
        let tx = self.db.begin().await?;
        let existing = subs::Entity::find()
            .filter(subs::Column::VariantId.eq(variant_id))
            .filter(subs::Column::Email.eq(email.as_str()))
            .one(&tx)
            .await?;
        let row = match existing {
            Some(s) => {
                let mut am: subs::ActiveModel = s.into();
                am.status = Set(ACTIVE.into());
                am.notified_at = Set(None);
                am.user_id = Set(user);
                am.update(&tx).await?
            }
            None => {
                subs::ActiveModel {
                    id: Set(domain::new_id()),
                    variant_id: Set(variant_id),
                    email: Set(email.as_str().to_owned()),
                    user_id: Set(user),
                    status: Set(ACTIVE.into()),
                    created_at: Set(now),
                    notified_at: Set(None),
                }
                .insert(&tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(row.into())
    }
}

/// Called by the outbox dispatcher, inside its transaction, for `variant.back_in_stock`. In
/// chunks: subscribing is open to anyone, and one statement naming tens of thousands of
/// subscriptions would pass the backends' bind-parameter limits (SQLite's is 32,766), fail the
/// dispatch, and stall the outbox behind it.
pub(crate) async fn fan_out<C: ConnectionTrait>(tx: &C, variant_id: Uuid) -> ServiceResult<usize> {
    const CHUNK: usize = 500;
    let open = subs::Entity::find().filter(subs::Column::VariantId.eq(variant_id)).filter(subs::Column::Status.eq(ACTIVE)).all(tx).await?;
    let now = Utc::now();
    for chunk in open.chunks(CHUNK) {
        let jobs = chunk.iter().map(|s| jobs::NewJob::new(BACK_IN_STOCK, serde_json::json!({"subscription_id": s.id}))).collect();
        jobs::enqueue_many(tx, jobs).await?;
        subs::Entity::update_many()
            .col_expr(subs::Column::Status, Expr::value(NOTIFIED))
            .col_expr(subs::Column::NotifiedAt, Expr::value(now))
            .filter(subs::Column::Id.is_in(chunk.iter().map(|s| s.id)))
            .exec(tx)
            .await?;
    }
    Ok(open.len())
}
