use super::{OrderService, OrderView};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    carts::CartAccess,
    catalog::StockMove,
    contention::with_retry,
    error::FieldError,
    idempotency::{self, Outcome},
    inventory::{self, Kind, Movement},
    outbox,
    shipping::RateTable,
};
use domain::{AuditAction, Currency, Money, OrderStatus};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, NotSet, QueryFilter, Set, sea_query::Expr};
use serde::{Deserialize, Serialize};
use store::{
    Inserts,
    entities::{order_lines, orders, payments, users},
};
use utoipa::ToSchema;
use uuid::Uuid;

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

impl OrderService {
    /// Cart → order, in one transaction: the cart is closed, stock for every line is reserved
    /// in one conditional update (lines in variant-id order; a deadlock between crossing
    /// checkouts is retried), the order is inserted, and its lines, ledger rows, payment, audit
    /// row, `order.created` event and idempotency key go in one batch ([`Inserts`]). Not
    /// enough stock → 409 naming the variants, nothing written.
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
        let key_record = idempotency::Recorded::new(scope, key.clone(), &request)?;
        // Read before the transaction, which then holds its locks (on SQLite: the one writer)
        // for fewer statements.
        let rates = self.shipping.table().await?;
        // The order, its reservation and the key with its response (payment still pending)
        // commit together: from here on a replay returns this order, whatever happens next. A
        // replay, or a duplicate sent while the first was running, fails in here (the cart is
        // converted), and the key then answers it.
        let (this, meta, access, key_record) = (self.clone(), meta.clone(), access.clone(), key_record);
        let payment = PaymentView { provider: provider.name().into(), status: "pending".into(), client_secret: None };
        let placing = self.db.writing(async move {
            let placed = with_retry(|| async {
                let tx = this.db.begin().await?;
                let (order, moves, mut writes) = this.place_order(&tx, &meta, &access, &req, &provider_name, &rates).await?;
                let response = CheckoutResponse { order, payment: payment.clone() };
                key_record.stage(&mut writes, 201, &response)?;
                writes.run(&tx).await.map_err(|e| {
                    // Every other row of the batch has a fresh id: the key is taken.
                    if store::is_unique_violation(&e) { idempotency::in_progress() } else { e.into() }
                })?;
                tx.commit().await?;
                Ok((response, moves))
            })
            .await;
            (placed, key_record)
        });
        let (placed, key_record) = placing.await?;
        let (response, moves) = match placed {
            Ok(placed) => placed,
            Err(e) => return key_record.replay(&self.db).await?.ok_or(e),
        };
        self.catalog.stock_moved(&moves).await;
        metrics::counter!("valuva_orders_total", "event" => "created").increment(1);
        // The provider is called with no transaction open. If it is down the answer is a
        // 503, the stored response keeps the order (payment pending), and the unpaid order
        // expires like any other.
        let currency = Currency::parse(&response.order.currency).map_err(|e| ServiceError::internal(e.0))?;
        let amount = Money::price(response.order.total.amount, currency).map_err(|e| ServiceError::internal(e.0))?;
        let order_id = response.order.id;
        let started = provider.start(order_id, amount).await.map_err(crate::payments::unavailable)?;
        if started.status == response.payment.status && started.reference.is_none() && started.client_secret.is_none() {
            // Nothing to add (the manual provider): the stored response already says it all.
            return Ok(Outcome::Fresh(response));
        }
        let stored = response.clone();
        let response = CheckoutResponse {
            payment: PaymentView { status: started.status.into(), client_secret: started.client_secret.clone(), ..response.payment },
            ..response
        };
        let tx = self.db.begin().await?;
        let updated = payments::Entity::update_many()
            .col_expr(payments::Column::Reference, Expr::value(started.reference.clone()))
            .col_expr(payments::Column::Status, Expr::value(started.status))
            .filter(payments::Column::OrderId.eq(order_id))
            .filter(payments::Column::Status.eq("pending"))
            .exec(&tx)
            .await?;
        if updated.rows_affected == 0 {
            // Cancelled (or paid) while the provider answered: the stored response stands, and
            // no client secret invites paying an order that is closed.
            return Ok(Outcome::Fresh(stored));
        }
        key_record.claim().complete(&tx, 201, &response).await?;
        tx.commit().await?;
        Ok(Outcome::Fresh(response))
    }

    async fn place_order(
        &self,
        tx: &DatabaseTransaction,
        meta: &RequestMeta,
        access: &CartAccess,
        req: &CheckoutRequest,
        provider: &str,
        rates: &RateTable,
    ) -> ServiceResult<(OrderView, Vec<StockMove>, Inserts)> {
        // The cart is closed first, in the statement that takes its row lock: a second
        // checkout of the same cart waits here, then finds it converted. Anything below that
        // fails rolls this back. Stock needs no more than READ COMMITTED: each reservation is a
        // conditional update that PostgreSQL re-checks against the latest row version.
        let cart = self.carts.lock_active(tx, req.cart_id, access, "converted").await?;
        let mut lines = self.carts.priced_lines(tx, cart.id).await?;
        if lines.is_empty() {
            return Err(ServiceError::conflict("cart_empty", "the cart has no items"));
        }
        // A signed-in customer checking out a guest cart owns the order.
        let owner = cart.user_id.or(access.user);
        // Lines whose product was archived, unpublished or deleted since they were added are
        // not for sale any more.
        let gone: Vec<String> =
            lines.iter().filter(|l| !l.variant.for_sale()).map(|l| format!("{} is no longer for sale", l.variant.sku)).collect();
        if !gone.is_empty() {
            return Err(ServiceError::Conflict { code: "item_unavailable", detail: format!("{}: remove these lines", gone.join("; ")) });
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
        for l in &lines {
            let line = Money::price(l.variant.price, currency).ok().and_then(|p| p.checked_mul(l.quantity as i64));
            subtotal = line
                .and_then(|line| subtotal.checked_add(line))
                .ok_or_else(|| ServiceError::conflict("currency_mismatch", "a cart line is priced in another currency"))?;
            weight += l.variant.weight_grams as i64 * l.quantity as i64;
        }
        let quote = rates.quotes(&country, weight, subtotal).into_iter().find(|q| q.id == req.shipping_rate_id);
        let quote = quote.ok_or_else(|| ServiceError::field("shipping_rate_id", "is not offered for this cart's address and contents"))?;
        let shipping = Money::price(quote.price.amount, currency).map_err(|e| ServiceError::internal(e.0))?;
        let total = subtotal.checked_add(shipping).ok_or_else(|| ServiceError::internal("total overflows"))?;

        // Reserve every line in one conditional update; the stock left comes back from it.
        lines.sort_by_key(|l| l.variant.variant_id);
        let wanted: Vec<(Uuid, i64)> = lines.iter().map(|l| (l.variant.variant_id, l.quantity as i64)).collect();
        let left = inventory::reserve(tx, &wanted).await?;
        let short: Vec<FieldError> = lines
            .iter()
            .filter(|l| !left.contains_key(&l.variant.variant_id))
            .map(|l| {
                let v = &l.variant;
                FieldError::new(format!("items.{}", v.variant_id), format!("not enough stock of {} for {} units", v.sku, l.quantity))
            })
            .collect();
        if !short.is_empty() {
            // Dropping the transaction rolls back the reservations already made.
            let detail = format!(
                "not enough stock for: {}",
                short.iter().map(|f| f.field.trim_start_matches("items.")).collect::<Vec<_>>().join(", ")
            );
            return Err(ServiceError::InsufficientStock { detail, variants: short });
        }
        let stock_after: Vec<i64> = lines.iter().map(|l| left[&l.variant.variant_id]).collect();

        // Stored precision is microseconds on both backends: the response equals a re-read.
        let now = cart.updated_at;
        let preset_number = self.db.preset_order_number(tx).await?;
        let mut order = orders::Model {
            id: domain::new_id(),
            number: preset_number.unwrap_or_default(),
            user_id: owner,
            cart_id: cart.id,
            email,
            status: OrderStatus::PendingPayment.as_str().into(),
            version: 0,
            currency: cart.currency.clone(),
            subtotal: subtotal.amount(),
            shipping_total: shipping.amount(),
            total: total.amount(),
            refunded_total: 0,
            shipping_address: address,
            shipping_method: quote.name.clone(),
            payment_provider: provider.to_owned(),
            carrier: None,
            tracking_number: None,
            expires_at: now + self.reservation_ttl,
            created_at: now,
            updated_at: now,
        };
        // The rest of the order's rows go in one batch (one statement on PostgreSQL), which the
        // caller completes with the idempotency key and runs. A preset number (SQLite) lets the
        // order row lead the batch: one hand-off to the writer less.
        let mut writes = Inserts::new();
        match preset_number {
            Some(_) => {
                writes.add(orders::Entity::insert(orders::ActiveModel::from(order.clone())));
            }
            None => {
                let row = orders::ActiveModel { number: NotSet, ..order.clone().into() };
                order.number = orders::Entity::insert(row).exec_with_returning(tx).await?.number;
            }
        }
        let order_lines: Vec<order_lines::Model> = lines
            .iter()
            .map(|l| order_lines::Model {
                id: domain::new_id(),
                order_id: order.id,
                variant_id: l.variant.variant_id,
                sku: l.variant.sku.clone(),
                title: l.variant.title.clone(),
                quantity: l.quantity,
                unit_price: l.variant.price,
                line_total: l.variant.price * l.quantity as i64,
                restocked_quantity: 0,
            })
            .collect();
        writes.add(order_lines::Entity::insert_many(order_lines.iter().cloned().map(order_lines::ActiveModel::from)));
        let movements = lines.iter().zip(&stock_after).map(|(l, after)| Movement {
            variant_id: l.variant.variant_id,
            delta: -(l.quantity as i64),
            reserved_delta: l.quantity as i64,
            kind: Kind::Reservation,
            reason: "checkout",
            stock_after: *after,
            order_id: Some(order.id),
            low_stock: self.catalog.low_stock(),
        });
        inventory::stage_movements(&mut writes, meta, movements.collect());
        writes.add(payments::Entity::insert(payments::ActiveModel {
            id: Set(domain::new_id()),
            order_id: Set(order.id),
            provider: Set(provider.to_owned()),
            reference: Set(None),
            amount: Set(total.amount()),
            currency: Set(cart.currency.clone()),
            status: Set("pending".into()),
            refunded_amount: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }));
        let summary = serde_json::json!({"number": order.number, "status": "pending_payment", "total": total.amount(), "currency": cart.currency, "lines": lines.len()});
        audit::stage(&mut writes, meta, Change::new(AuditAction::Order, "order", order.id).new_values(&summary));
        outbox::stage(&mut writes, "order.created", order.id, summary);
        let moves = lines.iter().zip(&stock_after).map(|(l, after)| StockMove {
            product_id: l.variant.product_id,
            before: after + l.quantity as i64,
            after: *after,
        });
        let moves = moves.collect();
        let mut order_lines = order_lines;
        order_lines.sort_by_key(|l| l.id);
        Ok((super::render(order, order_lines), moves, writes))
    }
}
