//! Orders: checkout (cart → order with stock reserved), the state machine's effects (stock,
//! payments, refunds), and reservation expiry. Status changes are decided by
//! `domain::OrderStatus::apply`; this module carries them out.

mod checkout;
mod refunds;
mod transitions;
mod unmatched;
mod webhooks;

pub use checkout::{CheckoutRequest, CheckoutResponse, PaymentView};
pub use refunds::{RefundRequest, RefundView, RestockLine};
pub use transitions::{Actor as TransitionActor, ShipInfo};
pub use webhooks::WebhookAck;

/// Secrets that sign provider callbacks; a provider without one has no webhook endpoint.
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    pub stripe: Option<platform::Secret>,
    pub shopify: Option<platform::Secret>,
}

use crate::{
    ServiceError, ServiceResult,
    carts::CartService,
    catalog::MoneyView,
    error::Errors,
    identity::hash_token,
    pagination::{CursorCodec, Page, PageRequest},
    payments::Providers,
    shipping::ShippingService,
};
use chrono::{DateTime, TimeDelta, Utc};
use domain::OrderStatus;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use store::{
    Db,
    entities::{carts, order_lines, orders},
};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderLineView {
    pub id: Uuid,
    pub variant_id: Uuid,
    pub sku: String,
    pub title: String,
    pub quantity: i32,
    pub unit_price: MoneyView,
    pub line_total: MoneyView,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    pub number: i64,
    #[schema(example = "pending_payment")]
    pub status: String,
    pub currency: String,
    pub email: String,
    pub items: Vec<OrderLineView>,
    pub subtotal: MoneyView,
    pub shipping_total: MoneyView,
    pub total: MoneyView,
    pub refunded_total: MoneyView,
    #[schema(value_type = Object)]
    pub shipping_address: serde_json::Value,
    pub shipping_method: String,
    pub payment_provider: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// Unpaid orders are cancelled and their stock released after this time.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who may see an order: its customer, the holder of the guest cart token it came from, or
/// staff.
#[derive(Debug, Clone, Default)]
pub struct OrderAccess {
    pub user: Option<Uuid>,
    pub cart_token: Option<String>,
    pub staff: bool,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct OrderService {
    db: Db,
    carts: CartService,
    shipping: ShippingService,
    providers: Providers,
    cursors: CursorCodec,
    reservation_ttl: TimeDelta,
    webhooks: WebhookSecrets,
    catalog: crate::catalog::CatalogCache,
}

fn money(amount: i64, currency: &str) -> MoneyView {
    MoneyView { amount, currency: currency.to_owned() }
}

/// The view of an order whose lines the caller already has.
fn render(o: orders::Model, lines: Vec<order_lines::Model>) -> OrderView {
    let c = o.currency.clone();
    OrderView {
        id: o.id,
        number: o.number,
        items: lines
            .into_iter()
            .map(|l| OrderLineView {
                id: l.id,
                variant_id: l.variant_id,
                sku: l.sku,
                title: l.title,
                quantity: l.quantity,
                unit_price: money(l.unit_price, &c),
                line_total: money(l.line_total, &c),
            })
            .collect(),
        subtotal: money(o.subtotal, &c),
        shipping_total: money(o.shipping_total, &c),
        total: money(o.total, &c),
        refunded_total: money(o.refunded_total, &c),
        shipping_address: serde_json::from_str(&o.shipping_address).unwrap_or_default(),
        expires_at: (o.status == OrderStatus::PendingPayment.as_str()).then_some(o.expires_at),
        status: o.status,
        currency: o.currency,
        email: o.email,
        shipping_method: o.shipping_method,
        payment_provider: o.payment_provider,
        carrier: o.carrier,
        tracking_number: o.tracking_number,
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

impl OrderService {
    pub fn new(
        db: Db,
        carts: CartService,
        shipping: ShippingService,
        providers: Providers,
        cursors: CursorCodec,
        reservation_ttl_minutes: u64,
        webhooks: WebhookSecrets,
    ) -> Self {
        let catalog = crate::catalog::CatalogCache::new(None, db.clone(), 0, false);
        let reservation_ttl = TimeDelta::minutes(reservation_ttl_minutes as i64);
        Self { db, carts, shipping, providers, cursors, reservation_ttl, webhooks, catalog }
    }

    /// Stock moved by orders drops the cached catalog entries it makes stale.
    pub fn with_catalog_cache(self, catalog: crate::catalog::CatalogCache) -> Self {
        Self { catalog, ..self }
    }

    pub(crate) async fn view<C: ConnectionTrait>(&self, conn: &C, o: orders::Model) -> ServiceResult<OrderView> {
        Ok(self.views(conn, vec![o]).await?.remove(0))
    }

    /// Views of several orders with one query for all their lines.
    async fn views<C: ConnectionTrait>(&self, conn: &C, list: Vec<orders::Model>) -> ServiceResult<Vec<OrderView>> {
        let ids: Vec<Uuid> = list.iter().map(|o| o.id).collect();
        let mut lines: std::collections::HashMap<Uuid, Vec<order_lines::Model>> = std::collections::HashMap::new();
        for l in order_lines::Entity::find()
            .filter(order_lines::Column::OrderId.is_in(ids))
            .order_by_asc(order_lines::Column::Id)
            .all(conn)
            .await?
        {
            lines.entry(l.order_id).or_default().push(l);
        }
        Ok(list
            .into_iter()
            .map(|o| {
                let items = lines.remove(&o.id).unwrap_or_default();
                render(o, items)
            })
            .collect())
    }

    /// The order if `access` may see it; 404 otherwise (also for another customer's order).
    pub(crate) async fn authorized<C: ConnectionTrait>(&self, conn: &C, id: Uuid, access: &OrderAccess) -> ServiceResult<orders::Model> {
        let order = orders::Entity::find_by_id(id).one(conn).await?.ok_or(ServiceError::not_found("order"))?;
        if access.staff || (access.user.is_some() && order.user_id == access.user) {
            return Ok(order);
        }
        // A cart token reaches guest orders only: a customer's order is theirs to see, with
        // their bearer token, whoever kept the cart token of the cart it came from.
        if let Some(token) = access.cart_token.as_ref().filter(|_| order.user_id.is_none()) {
            let cart = carts::Entity::find_by_id(order.cart_id).one(conn).await?;
            if cart.is_some_and(|c| c.token_hash == hash_token(token)) {
                return Ok(order);
            }
        }
        Err(ServiceError::not_found("order"))
    }

    pub async fn get(&self, id: Uuid, access: &OrderAccess) -> ServiceResult<OrderView> {
        let o = self.authorized(self.db.current(), id, access).await?;
        self.view(self.db.current(), o).await
    }

    /// Newest first. `user` limits to one customer's orders; staff pass `None`.
    pub async fn list(&self, user: Option<Uuid>, filter: OrderFilter, page: PageRequest) -> ServiceResult<Page<OrderView>> {
        let mut errs = Errors::default();
        let status = filter.status.as_deref().and_then(|s| errs.check("status", OrderStatus::parse(s)));
        errs.finish()?;
        let mut q = orders::Entity::find();
        if let Some(u) = user {
            q = q.filter(orders::Column::UserId.eq(u));
        }
        if let Some(s) = status {
            q = q.filter(orders::Column::Status.eq(s.as_str()));
        }
        if let Some(f) = filter.from {
            q = q.filter(orders::Column::CreatedAt.gte(f));
        }
        if let Some(t) = filter.to {
            q = q.filter(orders::Column::CreatedAt.lt(t));
        }
        if let Some(c) = &page.cursor {
            let before: Uuid = self.cursors.decode(c)?;
            q = q.filter(orders::Column::Id.lt(before));
        }
        let rows = q.order_by_desc(orders::Column::Id).limit(page.limit + 1).all(self.db.primary()).await?;
        let page = Page::from_rows(rows, page.limit, &self.cursors, |o| o.id);
        let items = self.views(self.db.primary(), page.items).await?;
        Ok(Page { items, next_cursor: page.next_cursor })
    }
}

impl OrderService {
    /// Shipping options for a cart: its address's country, its weight and subtotal.
    pub async fn shipping_quotes(&self, cart_id: Uuid, access: &crate::carts::CartAccess) -> ServiceResult<Vec<crate::shipping::Quote>> {
        let conn = self.db.primary();
        let cart = self.carts.authorized(conn, cart_id, access).await?;
        let address = cart.shipping_address.as_deref().and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok());
        let country = address
            .and_then(|a| a["country"].as_str().map(str::to_owned))
            .ok_or_else(|| ServiceError::field("shipping_address", "set the cart's shipping address first"))?;
        let currency = domain::Currency::parse(&cart.currency).map_err(|e| ServiceError::internal(e.0))?;
        let (mut subtotal, mut weight) = (0i64, 0i64);
        for line in self.carts.priced_lines(conn, cart.id).await? {
            subtotal = subtotal.saturating_add(line.variant.price.saturating_mul(line.quantity as i64));
            weight += line.variant.weight_grams as i64 * line.quantity as i64;
        }
        let subtotal = domain::Money::price(subtotal, currency).map_err(|e| ServiceError::internal(e.0))?;
        self.shipping.quotes(&country, weight, subtotal).await
    }
}
