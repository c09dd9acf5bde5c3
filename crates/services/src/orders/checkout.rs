use super::{OrderService, OrderView};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    carts::CartAccess,
    catalog::StockMove,
    error::FieldError,
    idempotency::{self, Outcome},
    inventory::{self, Kind, Movement},
    outbox,
};
use chrono::Utc;
use domain::{AuditAction, Currency, Money, OrderStatus};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use store::entities::{carts, order_lines, orders, payments, products, users, variants};
use utoipa::ToSchema;
use uuid::Uuid;

/// SERIALIZABLE transactions that lose a conflict are re-run this many times at most. Many
/// concurrent checkouts of one hot variant abort each other in turn (each commit can abort every
/// other one in flight), so the budget is generous; the jittered backoff spreads them out.
const MAX_ATTEMPTS: u32 = 50;

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub cart_id: Uuid,
    pub shipping_rate_id: Uuid,
    /// `manual` (default).
    pub payment_provider: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub provider: String,
    #[schema(example = "pending")]
    pub status: String,
    pub client_secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CheckoutResponse {
    pub order: OrderView,
    pub payment: PaymentView,
}

/// Runs `attempt` again (after a short random pause) when it lost a serialization conflict.
pub(super) async fn with_retry<T, F, Fut>(mut attempt: F) -> ServiceResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ServiceResult<T>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Err(ServiceError::Contention(why)) if n + 1 < MAX_ATTEMPTS => {
                n += 1;
                // Full jitter, growing with the attempt: conflicting transactions spread out.
                let cap = 2u64 << std::cmp::min(n, 5);
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % cap + 1)).await;
                metrics::counter!("valuva_checkout_retries_total").increment(1);
                tracing::debug!(attempt = n, %why, "retrying after a transaction conflict");
            }
            other => return other,
        }
    }
}

impl OrderService {
    /// Cart → order, in one transaction: stock for every line is reserved with one conditional
    /// update each (in variant-id order, so crossing multi-line checkouts cannot deadlock), the
    /// order, its lines, ledger rows, audit row and `order.created` event are written, and the
    /// cart is closed. Not enough stock → 409 naming the variants, nothing written.
    pub async fn checkout(
        &self,
        meta: &RequestMeta,
        access: &CartAccess,
        req: CheckoutRequest,
        key: Option<String>,
    ) -> ServiceResult<Outcome<CheckoutResponse>> {
        let key =
            key.ok_or_else(|| ServiceError::bad_request("idempotency_key_required", "checkout requires an Idempotency-Key header"))?;
        let key = idempotency::parse_key(&key)?;
        let provider_name = req.payment_provider.clone().unwrap_or_else(|| "manual".into());
        let provider =
            self.providers.get(&provider_name).ok_or_else(|| ServiceError::field("payment_provider", "unknown or not configured"))?;
        // Keys are the caller's own: a key replayed by someone else is a different request.
        let caller =
            access.user.map(|u| u.to_string()).or_else(|| access.token.as_deref().map(crate::identity::hash_token)).unwrap_or_default();
        let scope = format!("checkout:{}:{caller}", req.cart_id);
        let request = serde_json::to_value(&req).map_err(ServiceError::internal)?;
        idempotency::run(&self.db, scope, Some(key.clone()), &request, |claim| async move {
            // The order, its reservation and the stored response (payment still pending) commit
            // together: from here on a replay returns this order, whatever happens next.
            let response = with_retry(|| async {
                let tx = self.db.begin().await?;
                let (id, moves) = self.place_order(&tx, meta, access, &req, &provider_name).await?;
                let order = orders::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("order"))?;
                let response = CheckoutResponse {
                    order: self.view(&tx, order).await?,
                    payment: PaymentView { provider: provider.name().into(), status: "pending".into(), client_secret: None },
                };
                if let Some(c) = &claim {
                    c.complete(&tx, 201, &response).await?;
                }
                tx.commit().await?;
                Ok((response, moves))
            })
            .await?;
            let (response, moves) = response;
            self.catalog.stock_moved(&moves).await;
            metrics::counter!("valuva_orders_total", "event" => "created").increment(1);
            // The provider is called with no transaction open. If it is down the answer is a
            // 503, the stored response keeps the order (payment pending), and the unpaid order
            // expires like any other.
            let currency = Currency::parse(&response.order.currency).map_err(|e| ServiceError::internal(e.0))?;
            let amount = Money::price(response.order.total.amount, currency).map_err(|e| ServiceError::internal(e.0))?;
            let order_id = response.order.id;
            let started = provider.start(order_id, amount, &key).await.map_err(crate::payments::unavailable)?;
            let response = CheckoutResponse {
                payment: PaymentView { status: started.status.into(), client_secret: started.client_secret.clone(), ..response.payment },
                ..response
            };
            let tx = self.db.begin().await?;
            payments::Entity::update_many()
                .col_expr(payments::Column::Reference, Expr::value(started.reference.clone()))
                .col_expr(payments::Column::Status, Expr::value(started.status))
                .filter(payments::Column::OrderId.eq(order_id))
                .exec(&tx)
                .await?;
            if let Some(c) = &claim {
                c.complete(&tx, 201, &response).await?;
            }
            tx.commit().await?;
            Ok(response)
        })
        .await
    }

    async fn place_order(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        access: &CartAccess,
        req: &CheckoutRequest,
        provider: &str,
    ) -> ServiceResult<(Uuid, Vec<StockMove>)> {
        // The cart row is locked first: a second checkout of the same cart waits here, then
        // finds it converted. Stock needs no more than READ COMMITTED: each reservation is a
        // conditional update that PostgreSQL re-checks against the latest row version.
        let cart = self.carts.authorized_for_update(tx, req.cart_id, access).await?;
        let mut lines = self.carts.priced_lines(tx, cart.id).await?;
        if lines.is_empty() {
            return Err(ServiceError::conflict("cart_empty", "the cart has no items"));
        }
        // A signed-in customer checking out a guest cart owns the order.
        let owner = cart.user_id.or(access.user);
        // Lines whose product was archived, unpublished or deleted since they were added are
        // not for sale any more.
        let product_ids: Vec<Uuid> = lines.iter().map(|(_, v, _)| v.product_id).collect();
        let live: std::collections::HashSet<Uuid> = products::Entity::find()
            .select_only()
            .column(products::Column::Id)
            .filter(products::Column::Id.is_in(product_ids))
            .filter(products::Column::Status.eq("active"))
            .filter(products::Column::DeletedAt.is_null())
            .into_tuple::<Uuid>()
            .all(tx)
            .await?
            .into_iter()
            .collect();
        let gone: Vec<FieldError> = lines
            .iter()
            .filter(|(_, v, _)| !live.contains(&v.product_id))
            .map(|(_, v, _)| FieldError::new(format!("items.{}", v.id), format!("{} is no longer for sale", v.sku)))
            .collect();
        if !gone.is_empty() {
            let detail = gone.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("; ");
            return Err(ServiceError::Conflict { code: "item_unavailable", detail: format!("{detail}: remove these lines") });
        }
        let email = match (&cart.email, owner) {
            (Some(e), _) => e.clone(),
            (None, Some(u)) => users::Entity::find_by_id(u).one(tx).await?.map(|u| u.email).ok_or(ServiceError::not_found("user"))?,
            (None, None) => return Err(ServiceError::field("email", "the cart needs an email address (PATCH /carts/{id})")),
        };
        let address = cart
            .shipping_address
            .clone()
            .ok_or_else(|| ServiceError::field("shipping_address", "the cart needs a shipping address (PATCH /carts/{id})"))?;
        let country = serde_json::from_str::<serde_json::Value>(&address)
            .ok()
            .and_then(|a| a["country"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let currency = Currency::parse(&cart.currency).map_err(|e| ServiceError::internal(e.0))?;

        // Prices and totals are frozen here, from the rows this transaction reads.
        let mut subtotal = Money::zero(currency);
        let mut weight = 0i64;
        for (item, v, _) in &lines {
            let line = Money::price(v.price, currency).ok().and_then(|p| p.checked_mul(item.quantity as i64));
            subtotal = line
                .and_then(|l| subtotal.checked_add(l))
                .ok_or_else(|| ServiceError::conflict("currency_mismatch", "a cart line is priced in another currency"))?;
            weight += v.weight_grams as i64 * item.quantity as i64;
        }
        let quote = self.shipping.quotes(tx, &country, weight, subtotal).await?.into_iter().find(|q| q.id == req.shipping_rate_id);
        let quote = quote.ok_or_else(|| ServiceError::field("shipping_rate_id", "is not offered for this cart's address and contents"))?;
        let shipping = Money::price(quote.price.amount, currency).map_err(|e| ServiceError::internal(e.0))?;
        let total = subtotal.checked_add(shipping).ok_or_else(|| ServiceError::internal("total overflows"))?;

        // Reserve: one conditional update per line, in a fixed order (no deadlocks between
        // crossing carts); the stock left comes back from the update itself.
        lines.sort_by_key(|(_, v, _)| v.id);
        let mut short = Vec::new();
        let mut stock_after = Vec::with_capacity(lines.len());
        for (item, v, _) in &lines {
            let q = item.quantity as i64;
            let updated = variants::Entity::update_many()
                .col_expr(variants::Column::Stock, Expr::col(variants::Column::Stock).sub(q))
                .col_expr(variants::Column::Reserved, Expr::col(variants::Column::Reserved).add(q))
                .filter(variants::Column::Id.eq(v.id))
                .filter(variants::Column::Stock.gte(q))
                .exec_with_returning(tx)
                .await?;
            match updated.first() {
                Some(row) => stock_after.push(row.stock),
                None => short.push(FieldError::new(format!("items.{}", v.id), format!("not enough stock of {} for {} units", v.sku, q))),
            }
        }
        if !short.is_empty() {
            // Dropping the transaction rolls back the reservations already made.
            let detail = format!(
                "not enough stock for: {}",
                short.iter().map(|f| f.field.trim_start_matches("items.")).collect::<Vec<_>>().join(", ")
            );
            return Err(ServiceError::InsufficientStock { detail, variants: short });
        }

        let now = Utc::now();
        let order_id = domain::new_id();
        let number = self.db.next_order_number(tx).await?;
        orders::ActiveModel {
            id: Set(order_id),
            number: Set(number),
            user_id: Set(owner),
            cart_id: Set(cart.id),
            email: Set(email),
            status: Set(OrderStatus::PendingPayment.as_str().into()),
            version: Set(0),
            currency: Set(cart.currency.clone()),
            subtotal: Set(subtotal.amount()),
            shipping_total: Set(shipping.amount()),
            total: Set(total.amount()),
            refunded_total: Set(0),
            shipping_address: Set(address),
            shipping_method: Set(quote.name.clone()),
            payment_provider: Set(provider.to_owned()),
            carrier: Set(None),
            tracking_number: Set(None),
            expires_at: Set(now + self.reservation_ttl),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(tx)
        .await?;
        for ((item, v, title), after) in lines.iter().zip(&stock_after) {
            let q = item.quantity as i64;
            order_lines::ActiveModel {
                id: Set(domain::new_id()),
                order_id: Set(order_id),
                variant_id: Set(v.id),
                sku: Set(v.sku.clone()),
                title: Set(title.clone()),
                quantity: Set(item.quantity),
                unit_price: Set(v.price),
                line_total: Set(v.price * q),
                restocked_quantity: Set(0),
            }
            .insert(tx)
            .await?;
            let m = Movement {
                variant_id: v.id,
                delta: -q,
                reserved_delta: q,
                kind: Kind::Reservation,
                reason: "checkout",
                stock_after: *after,
                order_id: Some(order_id),
                low_stock: self.catalog.low_stock(),
            };
            inventory::record_movement(tx, meta, m).await?;
        }
        payments::ActiveModel {
            id: Set(domain::new_id()),
            order_id: Set(order_id),
            provider: Set(provider.to_owned()),
            reference: Set(None),
            amount: Set(total.amount()),
            currency: Set(cart.currency.clone()),
            status: Set("pending".into()),
            refunded_amount: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(tx)
        .await?;
        let converted = carts::Entity::update_many()
            .col_expr(carts::Column::Status, Expr::value("converted"))
            .col_expr(carts::Column::UpdatedAt, Expr::value(now))
            .filter(carts::Column::Id.eq(cart.id))
            .filter(carts::Column::Status.eq("active"))
            .exec(tx)
            .await?;
        if converted.rows_affected != 1 {
            return Err(ServiceError::not_found("cart"));
        }
        let summary = serde_json::json!({"number": number, "status": "pending_payment", "total": total.amount(), "currency": cart.currency, "lines": lines.len()});
        audit::record(tx, meta, Change::new(AuditAction::Order, "order", order_id).new_values(&summary)).await?;
        outbox::emit(tx, "order.created", order_id, summary).await?;
        let moves = lines.iter().zip(&stock_after).map(|((item, v, _), after)| StockMove {
            product_id: v.product_id,
            before: after + item.quantity as i64,
            after: *after,
        });
        Ok((order_id, moves.collect()))
    }
}
