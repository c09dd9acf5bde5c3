use super::{CartAccess, CartService, CartView};
use crate::{ServiceError, ServiceResult};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use store::entities::{cart_items, carts, products, variants};
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
        Some(line) => {
            let q = (line.quantity + quantity).min(MAX_LINE_QUANTITY);
            cart_items::Entity::update_many()
                .col_expr(cart_items::Column::Quantity, Expr::value(q))
                .filter(cart_items::Column::Id.eq(line.id))
                .exec(conn)
                .await?;
        }
        None => {
            let row = cart_items::ActiveModel {
                id: Set(domain::new_id()),
                cart_id: Set(cart),
                variant_id: Set(variant),
                quantity: Set(quantity.min(MAX_LINE_QUANTITY)),
                created_at: Set(Utc::now()),
            };
            cart_items::Entity::insert(row).exec_without_returning(conn).await.map_err(|e| {
                // The same variant added twice at the same moment: the first one won.
                if store::is_unique_violation(&e) {
                    ServiceError::conflict("concurrent_update", "the cart changed meanwhile; reload it")
                } else {
                    e.into()
                }
            })?;
        }
    }
    Ok(())
}

async fn touch<C: ConnectionTrait>(conn: &C, cart: carts::Model) -> ServiceResult<carts::Model> {
    let mut am: carts::ActiveModel = cart.into();
    am.updated_at = Set(Utc::now());
    Ok(am.update(conn).await?)
}

impl CartService {
    /// Adds a purchasable variant: it exists, its product is active, it is priced in the
    /// cart's currency, and the line stays within its limit and the stock on hand.
    pub async fn add_item(&self, id: Uuid, access: &CartAccess, variant_id: Uuid, quantity: i64) -> ServiceResult<CartView> {
        let quantity = check_quantity(quantity)?;
        let tx = self.db.begin().await?;
        let cart = self.authorized(&tx, id, access).await?;
        let found = variants::Entity::find_by_id(variant_id).find_also_related(products::Entity).one(&tx).await?;
        let (variant, product) = match found {
            Some((v, Some(p))) if p.status == "active" && p.deleted_at.is_none() => (v, p),
            _ => return Err(ServiceError::field("variant_id", "no such purchasable variant")),
        };
        let _ = product;
        if variant.currency != cart.currency {
            return Err(ServiceError::conflict(
                "currency_mismatch",
                format!("the cart is in {}, the variant is priced in {}", cart.currency, variant.currency),
            ));
        }
        let lines = cart_items::Entity::find().filter(cart_items::Column::CartId.eq(id)).all(&tx).await?;
        let current = lines.iter().find(|l| l.variant_id == variant_id).map_or(0, |l| l.quantity);
        if current == 0 && lines.len() >= MAX_LINES {
            return Err(ServiceError::conflict("cart_full", format!("a cart holds at most {MAX_LINES} lines")));
        }
        let wanted = current + quantity;
        if wanted > MAX_LINE_QUANTITY {
            return Err(ServiceError::field("quantity", format!("a line holds at most {MAX_LINE_QUANTITY} units")));
        }
        if wanted as i64 > variant.stock {
            return Err(ServiceError::conflict("insufficient_stock", format!("not enough stock of {} for {wanted} units", variant.sku)));
        }
        add_quantity(&tx, id, variant_id, quantity).await?;
        let cart = touch(&tx, cart).await?;
        let view = self.view_of(&tx, cart).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn set_quantity(&self, id: Uuid, access: &CartAccess, item: Uuid, quantity: i64) -> ServiceResult<CartView> {
        let quantity = check_quantity(quantity)?;
        let tx = self.db.begin().await?;
        let cart = self.authorized(&tx, id, access).await?;
        let line = cart_items::Entity::find_by_id(item)
            .filter(cart_items::Column::CartId.eq(id))
            .one(&tx)
            .await?
            .ok_or(ServiceError::not_found("cart item"))?;
        let stock = variants::Entity::find_by_id(line.variant_id).one(&tx).await?.map_or(0, |v| v.stock);
        if quantity as i64 > stock {
            return Err(ServiceError::conflict("insufficient_stock", format!("not enough stock for {quantity} units")));
        }
        cart_items::Entity::update_many()
            .col_expr(cart_items::Column::Quantity, Expr::value(quantity))
            .filter(cart_items::Column::Id.eq(item))
            .exec(&tx)
            .await?;
        let cart = touch(&tx, cart).await?;
        let view = self.view_of(&tx, cart).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn remove_item(&self, id: Uuid, access: &CartAccess, item: Uuid) -> ServiceResult<CartView> {
        let tx = self.db.begin().await?;
        let cart = self.authorized(&tx, id, access).await?;
        let removed = cart_items::Entity::delete_many()
            .filter(cart_items::Column::Id.eq(item))
            .filter(cart_items::Column::CartId.eq(id))
            .exec(&tx)
            .await?
            .rows_affected;
        if removed == 0 {
            return Err(ServiceError::not_found("cart item"));
        }
        let cart = touch(&tx, cart).await?;
        let view = self.view_of(&tx, cart).await?;
        tx.commit().await?;
        Ok(view)
    }
}
