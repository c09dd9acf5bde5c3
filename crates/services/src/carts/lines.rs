use super::{CartAccess, CartService, CartView, PricedLine};
use crate::{ServiceError, ServiceResult};
use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use store::entities::cart_items;
use uuid::Uuid;

/// Units of one variant a single cart line may hold.
pub const MAX_LINE_QUANTITY: i32 = 100;
/// Distinct lines a cart may hold.
const MAX_LINES: usize = 100;

fn check_quantity(q: i64) -> ServiceResult<i32> {
    if (1..=MAX_LINE_QUANTITY as i64).contains(&q) {
        Ok(q as i32)
    } else {
        Err(ServiceError::field("quantity", format!("must be between 1 and {MAX_LINE_QUANTITY}")))
    }
}

/// Adds `quantity` to the cart's line for `variant`, creating it if needed; capped at the
/// line maximum.
pub(super) async fn add_quantity<C: ConnectionTrait>(conn: &C, cart: Uuid, variant: Uuid, quantity: i32) -> ServiceResult<()> {
    let existing = cart_items::Entity::find()
        .filter(cart_items::Column::CartId.eq(cart))
        .filter(cart_items::Column::VariantId.eq(variant))
        .one(conn)
        .await?;
    match existing {
        Some(line) => set_line_quantity(conn, line.id, (line.quantity + quantity).min(MAX_LINE_QUANTITY)).await,
        None => insert_line(conn, cart, variant, quantity.min(MAX_LINE_QUANTITY)).await.map(drop),
    }
}

async fn set_line_quantity<C: ConnectionTrait>(conn: &C, item: Uuid, quantity: i32) -> ServiceResult<()> {
    cart_items::Entity::update_many()
        .col_expr(cart_items::Column::Quantity, Expr::value(quantity))
        .filter(cart_items::Column::Id.eq(item))
        .exec(conn)
        .await?;
    Ok(())
}

async fn insert_line<C: ConnectionTrait>(conn: &C, cart: Uuid, variant: Uuid, quantity: i32) -> ServiceResult<Uuid> {
    let id = domain::new_id();
    let row = cart_items::ActiveModel {
        id: Set(id),
        cart_id: Set(cart),
        variant_id: Set(variant),
        quantity: Set(quantity),
        created_at: Set(Utc::now()),
    };
    cart_items::Entity::insert(row).exec_without_returning(conn).await.map_err(|e| {
        // The same variant added twice at the same moment (writers that do not hold the
        // cart's row lock, such as a login merge): the first one won.
        if store::is_unique_violation(&e) {
            ServiceError::conflict("concurrent_update", "the cart changed meanwhile; reload it")
        } else {
            e.into()
        }
    })?;
    Ok(id)
}

impl CartService {
    /// Adds a purchasable variant: it exists, its product is active, it is priced in the
    /// cart's currency, and the line stays within its limit and the stock on hand. The cart's
    /// row lock is taken first, so the lines read here stay current until commit.
    pub async fn add_item(&self, id: Uuid, access: &CartAccess, variant_id: Uuid, quantity: i64) -> ServiceResult<CartView> {
        let quantity = check_quantity(quantity)?;
        let tx = self.db.begin().await?;
        let cart = self.lock_active(&tx, id, access, "active").await?;
        // The variant comes with the lines: one statement, where a separate variant read
        // made adding a line cost a statement (and on PostgreSQL a round trip) more.
        let (mut lines, variant) = self.lines_with_variant(&tx, id, variant_id).await?;
        let variant = match variant {
            Some(v) if v.for_sale() => v,
            _ => return Err(ServiceError::field("variant_id", "no such purchasable variant")),
        };
        if variant.currency != cart.currency {
            return Err(ServiceError::conflict(
                "currency_mismatch",
                format!("the cart is in {}, the variant is priced in {}", cart.currency, variant.currency),
            ));
        }
        let existing = lines.iter().position(|l| l.variant.variant_id == variant_id);
        let current = existing.map_or(0, |i| lines[i].quantity);
        if existing.is_none() && lines.len() >= MAX_LINES {
            return Err(ServiceError::conflict("cart_full", format!("a cart holds at most {MAX_LINES} lines")));
        }
        let wanted = current + quantity;
        if wanted > MAX_LINE_QUANTITY {
            return Err(ServiceError::field("quantity", format!("a line holds at most {MAX_LINE_QUANTITY} units")));
        }
        if wanted as i64 > variant.stock {
            return Err(ServiceError::conflict("insufficient_stock", format!("not enough stock of {} for {wanted} units", variant.sku)));
        }
        match existing {
            Some(i) => {
                set_line_quantity(&tx, lines[i].item_id, wanted).await?;
                lines[i].quantity = wanted;
            }
            None => {
                let item_id = insert_line(&tx, id, variant_id, wanted).await?;
                lines.push(PricedLine { item_id, quantity: wanted, variant });
            }
        }
        tx.commit().await?;
        Ok(self.render(cart, lines))
    }

    pub async fn set_quantity(&self, id: Uuid, access: &CartAccess, item: Uuid, quantity: i64) -> ServiceResult<CartView> {
        let quantity = check_quantity(quantity)?;
        let tx = self.db.begin().await?;
        let cart = self.lock_active(&tx, id, access, "active").await?;
        let mut lines = self.priced_lines(&tx, id).await?;
        let line = lines.iter_mut().find(|l| l.item_id == item).ok_or(ServiceError::not_found("cart item"))?;
        if quantity as i64 > line.variant.stock {
            return Err(ServiceError::conflict("insufficient_stock", format!("not enough stock for {quantity} units")));
        }
        set_line_quantity(&tx, item, quantity).await?;
        line.quantity = quantity;
        tx.commit().await?;
        Ok(self.render(cart, lines))
    }

    pub async fn remove_item(&self, id: Uuid, access: &CartAccess, item: Uuid) -> ServiceResult<CartView> {
        let tx = self.db.begin().await?;
        let cart = self.lock_active(&tx, id, access, "active").await?;
        let removed = cart_items::Entity::delete_many()
            .filter(cart_items::Column::Id.eq(item))
            .filter(cart_items::Column::CartId.eq(id))
            .exec(&tx)
            .await?
            .rows_affected;
        if removed == 0 {
            return Err(ServiceError::not_found("cart item"));
        }
        let view = self.view_of(&tx, cart).await?;
        tx.commit().await?;
        Ok(view)
    }
}
