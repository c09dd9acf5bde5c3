use super::{CartAccess, CartService, CartView, LineVariant, PricedLine, versioned};
use crate::{ServiceError, ServiceResult};
use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use store::entities::{cart_items, carts};
use uuid::Uuid;

/// Units of one variant a single cart line may hold.
pub const MAX_LINE_QUANTITY: i32 = 100;
/// Distinct lines a cart may hold.
pub(super) const MAX_LINES: usize = 100;

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
        None => insert_line(conn, cart, variant, quantity.min(MAX_LINE_QUANTITY), domain::new_id()).await,
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

async fn insert_line<C: ConnectionTrait>(conn: &C, cart: Uuid, variant: Uuid, quantity: i32, id: Uuid) -> ServiceResult<()> {
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
    Ok(())
}

/// What adding units of a variant does to a cart: raise the quantity of line `index`, or add a
/// new line. The rules, checked against the lines and variant as read.
enum Change {
    Raise { index: usize, to: i32 },
    Add { variant: LineVariant, quantity: i32 },
}

impl Change {
    /// A purchasable variant: it exists, its product is active, it is priced in the cart's
    /// currency, and the line stays within its limit and the stock on hand.
    fn plan(cart: &carts::Model, lines: &[PricedLine], variant: Option<LineVariant>, quantity: i32) -> ServiceResult<Self> {
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
        let existing = lines.iter().position(|l| l.variant.variant_id == variant.variant_id);
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
        Ok(match existing {
            Some(index) => Self::Raise { index, to: wanted },
            None => Self::Add { variant, quantity: wanted },
        })
    }

    /// The lines once the change is written (`new_item`: the id a new line gets).
    fn apply(self, lines: &mut Vec<PricedLine>, new_item: Uuid) {
        match self {
            Self::Raise { index, to } => lines[index].quantity = to,
            Self::Add { variant, quantity } => lines.push(PricedLine { item_id: new_item, quantity, variant }),
        }
    }

    /// The line this change writes: (item id, variant, quantity).
    fn line(&self, lines: &[PricedLine], new_item: Uuid) -> (Uuid, Uuid, i32) {
        match self {
            Self::Raise { index, to } => (lines[*index].item_id, lines[*index].variant.variant_id, *to),
            Self::Add { variant, quantity } => (new_item, variant.variant_id, *quantity),
        }
    }
}

impl CartService {
    /// The cart's row lock is taken first, so the lines read here (with the variant, by the
    /// same query as the unlocked way) stay current until commit.
    async fn add_item_locked(&self, id: Uuid, access: &CartAccess, variant_id: Uuid, quantity: i32) -> ServiceResult<CartView> {
        let tx = self.db.begin().await?;
        self.lock_active(&tx, id, access, "active").await?;
        let (cart, mut lines, variant) = versioned::read(&tx, id, access, self.open_since(), variant_id).await?;
        let change = Change::plan(&cart, &lines, variant, quantity)?;
        let new_item = domain::new_id();
        let (item, variant, quantity_after) = change.line(&lines, new_item);
        match change {
            Change::Raise { .. } => set_line_quantity(&tx, item, quantity_after).await?,
            Change::Add { .. } => insert_line(&tx, id, variant, quantity_after, item).await?,
        }
        tx.commit().await?;
        change.apply(&mut lines, new_item);
        Ok(self.render(cart, lines))
    }

    /// Adds `quantity` units of a purchasable variant (see [`Change::plan`]): read, check, and
    /// write only if the cart is still as read (see [`super::versioned`]). A cart that changed
    /// in between is rare (one shopper, one request at a time), but many writers crossing on
    /// one cart would keep invalidating each other's reads: the one that lost queues for the
    /// cart's row lock instead, which always makes progress.
    pub async fn add_item(&self, id: Uuid, access: &CartAccess, variant_id: Uuid, quantity: i64) -> ServiceResult<CartView> {
        let quantity = check_quantity(quantity)?;
        let (mut cart, mut lines, variant) = versioned::read(self.db.current(), id, access, self.open_since(), variant_id).await?;
        let change = Change::plan(&cart, &lines, variant, quantity)?;
        let new_item = domain::new_id();
        let (item, variant, quantity_after) = change.line(&lines, new_item);
        match versioned::write(&self.db, id, cart.version, item, variant, quantity_after).await? {
            Some(stamp) => {
                cart.updated_at = stamp;
                cart.version += 1;
                change.apply(&mut lines, new_item);
                Ok(self.render(cart, lines))
            }
            None => {
                metrics::counter!("valuva_cart_write_conflicts_total").increment(1);
                self.add_item_locked(id, access, variant_id, quantity).await
            }
        }
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
