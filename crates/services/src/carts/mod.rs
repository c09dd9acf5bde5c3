//! Carts: guest carts reached with a secret token, customer carts reached with the customer's
//! bearer token. Prices and availability are re-read on every view; a cart stores only lines.

mod lines;
mod versioned;

use crate::{
    ServiceError, ServiceResult,
    catalog::MoneyView,
    error::Errors,
    identity::{hash_token, new_secret_token},
};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::{Address, AddressInput, Availability, Currency, Email};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, FromQueryResult, JoinType, PaginatorTrait, QueryFilter, QueryOrder, QueryResult,
    QuerySelect, QueryTrait, RelationTrait, Select, Statement, UpdateMany,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use store::{
    Db, Write, Written,
    entities::{cart_items, carts, products, variants},
};
use utoipa::ToSchema;
use uuid::Uuid;

pub use lines::MAX_LINE_QUANTITY;

/// Who is asking for a cart: the holder of its secret token and/or a signed-in customer.
#[derive(Debug, Clone, Default)]
pub struct CartAccess {
    pub token: Option<String>,
    pub user: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartLineView {
    pub id: Uuid,
    pub variant_id: Uuid,
    pub sku: String,
    pub title: String,
    pub quantity: i32,
    pub unit_price: MoneyView,
    pub line_total: MoneyView,
    #[schema(value_type = String)]
    pub availability: Availability,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CartView {
    pub id: Uuid,
    /// The secret that reaches a guest cart (`X-Cart-Token`); returned only when the cart is
    /// created, since only its hash is stored.
    pub token: Option<String>,
    pub currency: String,
    pub items: Vec<CartLineView>,
    pub subtotal: MoneyView,
    pub email: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<serde_json::Value>,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
}

/// `PATCH /carts/{id}`: absent fields stay.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CartPatch {
    pub email: Option<String>,
    /// {name, line1, line2?, city, postal_code, country (ISO-3166 alpha-2), phone?}
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<AddressInput>,
}

/// A variant as a cart line shows it: current price and stock, its product's title and
/// whether that product is still for sale. Read with [`line_variants`].
#[derive(Debug, Clone, FromQueryResult)]
pub struct LineVariant {
    pub variant_id: Uuid,
    pub product_id: Uuid,
    pub sku: String,
    pub price: i64,
    pub currency: String,
    pub options: String,
    pub stock: i64,
    pub weight_grams: i32,
    pub title: String,
    pub product_status: String,
    pub product_deleted_at: Option<chrono::DateTime<Utc>>,
}

impl LineVariant {
    pub fn for_sale(&self) -> bool {
        self.product_status == "active" && self.product_deleted_at.is_none()
    }
}

/// A cart line with its variant, as of the transaction that read it.
#[derive(Debug, Clone, FromQueryResult)]
pub struct PricedLine {
    pub item_id: Uuid,
    pub quantity: i32,
    #[sea_orm(nested)]
    pub variant: LineVariant,
}

/// The carts the caller may reach: by the cart's secret token, or as its signed-in owner.
/// `None` when the caller has neither.
fn reachable_by(access: &CartAccess) -> Option<Condition> {
    let mut reach = Condition::any();
    if let Some(token) = access.token.as_deref() {
        reach = reach.add(carts::Column::TokenHash.eq(hash_token(token)));
    }
    if let Some(user) = access.user {
        reach = reach.add(carts::Column::UserId.eq(user));
    }
    (!reach.is_empty()).then_some(reach)
}

/// Variants joined to their products, selecting exactly the columns of [`LineVariant`]: one
/// query where a variant lookup and a product lookup would be two.
fn line_variants() -> Select<variants::Entity> {
    variants::Entity::find()
        .select_only()
        .column_as(variants::Column::Id, "variant_id")
        .columns([
            variants::Column::ProductId,
            variants::Column::Sku,
            variants::Column::Price,
            variants::Column::Currency,
            variants::Column::Options,
            variants::Column::Stock,
            variants::Column::WeightGrams,
        ])
        .column_as(products::Column::Title, "title")
        .column_as(products::Column::Status, "product_status")
        .column_as(products::Column::DeletedAt, "product_deleted_at")
        .join(JoinType::InnerJoin, variants::Relation::Product.def())
}

#[derive(Clone)]
pub struct CartService {
    db: Db,
    ttl: TimeDelta,
    low_stock: i64,
}

/// Now, at the precision both backends store (microseconds), so a view equals a re-read.
fn now_micros() -> DateTime<Utc> {
    Utc::now().duration_trunc(TimeDelta::microseconds(1)).unwrap_or_else(|_| Utc::now())
}

/// The cart row an update returned; 404 when it matched none.
fn updated_cart(rows: Vec<QueryResult>) -> ServiceResult<carts::Model> {
    let row = rows.first().ok_or(ServiceError::not_found("cart"))?;
    Ok(carts::Model::from_query_result(row, "")?)
}

fn address_json(a: &Address) -> serde_json::Value {
    serde_json::json!({
        "name": a.name, "line1": a.line1, "line2": a.line2, "city": a.city,
        "postal_code": a.postal_code, "country": a.country.as_str(), "phone": a.phone,
    })
}

impl CartService {
    pub fn new(db: Db, ttl_days: u64, low_stock: i64) -> Self {
        Self { db, ttl: TimeDelta::days(ttl_days as i64), low_stock }
    }

    /// Carts last used before this have expired.
    fn open_since(&self) -> DateTime<Utc> {
        Utc::now() - self.ttl
    }

    pub async fn create(&self, user: Option<Uuid>, currency: Option<&str>) -> ServiceResult<CartView> {
        let currency = Currency::parse(currency.unwrap_or("EUR")).map_err(|e| ServiceError::field("currency", e.0))?;
        let (token, token_hash) = new_secret_token();
        let now = now_micros();
        let cart = carts::Model {
            id: domain::new_id(),
            token_hash,
            user_id: user,
            currency: currency.code().to_owned(),
            email: None,
            shipping_address: None,
            status: "active".into(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        let insert = carts::Entity::insert(carts::ActiveModel::from(cart.clone())).build(self.db.primary().get_database_backend());
        self.db.write(Write::Count(insert)).await.map_err(|e| {
            // The token is signed and unexpired, but its account has been deleted since.
            if user.is_some() && store::is_foreign_key_violation(&e) {
                ServiceError::unauthorized("invalid_token", "the account this token was issued to no longer exists")
            } else {
                e.into()
            }
        })?;
        let mut view = self.render(cart, Vec::new());
        view.token = Some(token);
        Ok(view)
    }

    /// The cart if the caller may reach it and it is still open; 404 otherwise (also for
    /// someone else's cart, so its existence is not revealed).
    pub(crate) async fn authorized<C: ConnectionTrait>(&self, conn: &C, id: Uuid, access: &CartAccess) -> ServiceResult<carts::Model> {
        let cart = carts::Entity::find_by_id(id).filter(self.open_and_reachable(access, Utc::now())?).one(conn).await?;
        cart.ok_or(ServiceError::not_found("cart"))
    }

    /// The condition on a cart row for a caller: open (active, used within the TTL) and
    /// reachable by them. 404 when the caller brings no token and is not signed in.
    fn open_and_reachable(&self, access: &CartAccess, now: DateTime<Utc>) -> ServiceResult<Condition> {
        let reach = reachable_by(access).ok_or(ServiceError::not_found("cart"))?;
        Ok(Condition::all().add(carts::Column::Status.eq("active")).add(carts::Column::UpdatedAt.gte(now - self.ttl)).add(reach))
    }

    /// Like [`Self::authorized`], in one statement that also takes the cart's row lock for the
    /// rest of the transaction (cart writes serialize on it), stamps `updated_at` and sets the
    /// status (`active`, or `converted` by checkout).
    pub(crate) async fn lock_active<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: Uuid,
        access: &CartAccess,
        status: &str,
    ) -> ServiceResult<carts::Model> {
        self.update_open(conn, carts::Entity::update_many(), id, access, status).await
    }

    /// Runs `update` (plus a stamp of `updated_at` and the new `status`) on the cart if it is
    /// open and the caller may reach it, and returns the row as updated; 404 otherwise. On
    /// PostgreSQL the statement also takes the cart's row lock.
    async fn update_open<C: ConnectionTrait>(
        &self,
        conn: &C,
        update: UpdateMany<carts::Entity>,
        id: Uuid,
        access: &CartAccess,
        status: &str,
    ) -> ServiceResult<carts::Model> {
        let rows = conn.query_all_raw(self.open_update(update, id, access, status)?).await?;
        updated_cart(rows)
    }

    /// The statement of [`Self::update_open`].
    fn open_update(&self, update: UpdateMany<carts::Entity>, id: Uuid, access: &CartAccess, status: &str) -> ServiceResult<Statement> {
        let now = now_micros();
        let mut update = update
            .col_expr(carts::Column::UpdatedAt, Expr::value(now))
            .col_expr(carts::Column::Status, Expr::value(status))
            .col_expr(carts::Column::Version, Expr::col(carts::Column::Version).add(1))
            .filter(carts::Column::Id.eq(id))
            .filter(self.open_and_reachable(access, now)?)
            .into_query();
        Ok(self.db.primary().get_database_backend().build(update.returning_all()))
    }

    pub async fn get(&self, id: Uuid, access: &CartAccess) -> ServiceResult<CartView> {
        let cart = self.authorized(self.db.current(), id, access).await?;
        self.view_of(self.db.current(), cart).await
    }

    pub async fn update(&self, id: Uuid, access: &CartAccess, patch: CartPatch) -> ServiceResult<CartView> {
        let mut errs = Errors::default();
        let email = patch.email.as_deref().and_then(|e| errs.check("email", Email::parse(e)));
        let address = patch.shipping_address.as_ref().and_then(|a| match Address::parse(a) {
            Ok(a) => Some(a),
            Err(list) => {
                for (f, e) in list {
                    errs.push(&format!("shipping_address.{f}"), e.0);
                }
                None
            }
        });
        errs.finish()?;
        // One statement: the access check and the open-cart check are part of its condition.
        let mut update = carts::Entity::update_many();
        if let Some(e) = email {
            update = update.col_expr(carts::Column::Email, Expr::value(e.as_str()));
        }
        if let Some(a) = address {
            update = update.col_expr(carts::Column::ShippingAddress, Expr::value(address_json(&a).to_string()));
        }
        // A write on its own: on SQLite it commits in a group with others (`store::group`).
        let written = self.db.write(Write::Rows(self.open_update(update, id, access, "active")?)).await?;
        let Written::Rows(rows) = written else { return Err(ServiceError::internal("a cart update returned no rows")) };
        let cart = updated_cart(rows)?;
        self.view_of(self.db.current(), cart).await
    }

    /// Lines with current prices, SKUs and titles, in the order they were added: one query.
    pub async fn priced_lines<C: ConnectionTrait>(&self, conn: &C, cart: Uuid) -> ServiceResult<Vec<PricedLine>> {
        Ok(line_variants()
            .column_as(cart_items::Column::Id, "item_id")
            .column(cart_items::Column::Quantity)
            .join(JoinType::InnerJoin, cart_items::Relation::Variant.def().rev())
            .filter(cart_items::Column::CartId.eq(cart))
            .order_by_asc(cart_items::Column::Id)
            .into_model::<PricedLine>()
            .all(conn)
            .await?)
    }

    pub(crate) async fn view_of<C: ConnectionTrait>(&self, conn: &C, cart: carts::Model) -> ServiceResult<CartView> {
        let lines = self.priced_lines(conn, cart.id).await?;
        Ok(self.render(cart, lines))
    }

    /// The view of a cart whose lines the caller already read.
    pub(crate) fn render(&self, cart: carts::Model, lines: Vec<PricedLine>) -> CartView {
        let mut subtotal = 0i64;
        let items = lines
            .into_iter()
            .map(|line| {
                let v = line.variant;
                let total = v.price.saturating_mul(line.quantity as i64);
                subtotal = subtotal.saturating_add(total);
                let option_values: Vec<String> = serde_json::from_str::<std::collections::BTreeMap<String, String>>(&v.options)
                    .unwrap_or_default()
                    .into_values()
                    .collect();
                let title = if option_values.is_empty() { v.title } else { format!("{} ({})", v.title, option_values.join(" / ")) };
                CartLineView {
                    id: line.item_id,
                    variant_id: v.variant_id,
                    sku: v.sku,
                    title,
                    quantity: line.quantity,
                    unit_price: MoneyView { amount: v.price, currency: v.currency.clone() },
                    line_total: MoneyView { amount: total, currency: v.currency },
                    availability: Availability::of(v.stock, self.low_stock),
                }
            })
            .collect();
        CartView {
            id: cart.id,
            token: None,
            subtotal: MoneyView { amount: subtotal, currency: cart.currency.clone() },
            currency: cart.currency,
            items,
            email: cart.email,
            shipping_address: cart.shipping_address.and_then(|a| serde_json::from_str(&a).ok()),
            created_at: cart.created_at,
            updated_at: cart.updated_at,
        }
    }

    /// On login: moves the lines of the guest cart into the customer's open cart (quantities
    /// add up, capped), or hands the guest cart to the customer when they have none.
    pub async fn merge_into_customer(&self, guest: Uuid, token: &str, user: Uuid) -> ServiceResult<Uuid> {
        let tx = self.db.begin().await?;
        let access = CartAccess { token: Some(token.to_owned()), user: None };
        let guest_cart = self.authorized(&tx, guest, &access).await?;
        let own = carts::Entity::find()
            .filter(carts::Column::UserId.eq(user))
            .filter(carts::Column::Status.eq("active"))
            .filter(carts::Column::Id.ne(guest))
            .order_by_desc(carts::Column::UpdatedAt)
            .one(&tx)
            .await?;
        // The guest cart is claimed first, by one conditional update that takes its row lock:
        // if a checkout converted it, or any write moved its version, since it was read, the
        // update matches nothing and the merge stops, rather than copying lines just ordered or
        // turning a converted cart back into an open one.
        let target = own.filter(|c| c.currency == guest_cart.currency);
        let mut claim = carts::Entity::update_many()
            .col_expr(carts::Column::Version, Expr::value(guest_cart.version + 1))
            .col_expr(carts::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(carts::Column::Id.eq(guest))
            .filter(carts::Column::Status.eq("active"))
            .filter(carts::Column::Version.eq(guest_cart.version));
        claim = match &target {
            // The guest token stops opening it: on a shared device, whoever finds the token
            // later must not reach the customer's cart (its address, its order). The customer
            // reaches it with their bearer token; nobody knows the new one.
            None => claim
                .col_expr(carts::Column::UserId, Expr::value(Some(user)))
                .col_expr(carts::Column::TokenHash, Expr::value(new_secret_token().1)),
            Some(_) => claim.col_expr(carts::Column::Status, Expr::value("merged")),
        };
        if claim.exec(&tx).await?.rows_affected == 0 {
            return Err(ServiceError::conflict("cart_changed", "the cart changed meanwhile"));
        }
        let target = match target {
            None => guest,
            Some(own) => {
                // The customer's cart gets lines without its row lock: its version moves, so a
                // line write that read it before this merge does not apply.
                carts::Entity::update_many()
                    .col_expr(carts::Column::Version, Expr::col(carts::Column::Version).add(1))
                    .filter(carts::Column::Id.eq(own.id))
                    .exec(&tx)
                    .await?;
                let items = cart_items::Entity::find().filter(cart_items::Column::CartId.eq(guest)).all(&tx).await?;
                for item in items {
                    lines::add_quantity(&tx, own.id, item.variant_id, item.quantity).await?;
                }
                let count = cart_items::Entity::find().filter(cart_items::Column::CartId.eq(own.id)).count(&tx).await?;
                if count as usize > lines::MAX_LINES {
                    // Rolled back: both carts stay as they were.
                    return Err(ServiceError::conflict(
                        "cart_full",
                        format!("together the carts hold more than {} lines", lines::MAX_LINES),
                    ));
                }
                own.id
            }
        };
        tx.commit().await?;
        Ok(target)
    }

    /// Removes carts idle longer than the TTL (housekeeping).
    pub async fn purge_expired(&self) -> ServiceResult<u64> {
        let res = carts::Entity::delete_many()
            .filter(carts::Column::UpdatedAt.lt(Utc::now() - self.ttl))
            .filter(carts::Column::Status.ne("converted"))
            .exec(self.db.primary())
            .await?;
        Ok(res.rows_affected)
    }
}
