//! Turning rows into views, in batches: a page of N products costs three queries, not 2N+1.

use super::{CatalogService, CategoryRef, MoneyView, ProductView, VariantView};
use crate::ServiceResult;
use domain::Availability;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect, RelationTrait, sea_query::Expr};
use std::collections::HashMap;
use store::entities::{categories, product_categories as pc, products, variants};
use uuid::Uuid;

pub(super) fn money(amount: i64, currency: &str) -> MoneyView {
    MoneyView { amount, currency: currency.to_owned() }
}

impl CatalogService {
    pub(super) fn variant_view(&self, v: variants::Model, admin: bool) -> VariantView {
        VariantView {
            id: v.id,
            sku: v.sku,
            price: money(v.price, &v.currency),
            compare_at_price: v.compare_at_price.map(|c| money(c, &v.currency)),
            options: serde_json::from_str(&v.options).unwrap_or_default(),
            weight_grams: v.weight_grams,
            availability: Availability::of(v.stock, self.low_stock_threshold),
            stock: (admin || self.expose_stock).then_some(v.stock),
        }
    }

    /// Full views of `rows`, in the given order.
    pub(super) async fn views<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: Vec<products::Model>,
        admin: bool,
    ) -> ServiceResult<Vec<ProductView>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = rows.iter().map(|p| p.id).collect();
        let mut vars: HashMap<Uuid, Vec<VariantView>> = HashMap::new();
        for v in variants::Entity::find()
            .filter(variants::Column::ProductId.is_in(ids.clone()))
            .order_by_asc(variants::Column::Position)
            .order_by_asc(variants::Column::Id)
            .all(conn)
            .await?
        {
            vars.entry(v.product_id).or_default().push(self.variant_view(v, admin));
        }
        let mut cats: HashMap<Uuid, Vec<CategoryRef>> = HashMap::new();
        let links: Vec<(Uuid, Uuid, String, String)> = pc::Entity::find()
            .select_only()
            .column(pc::Column::ProductId)
            .column(categories::Column::Id)
            .column(categories::Column::Slug)
            .column(categories::Column::Name)
            .join(JoinType::InnerJoin, pc::Relation::Category.def())
            .filter(pc::Column::ProductId.is_in(ids))
            .order_by_asc(Expr::col((categories::Entity, categories::Column::Position)))
            .into_tuple()
            .all(conn)
            .await?;
        for (product, id, slug, name) in links {
            cats.entry(product).or_default().push(CategoryRef { id, slug, name });
        }
        Ok(rows
            .into_iter()
            .map(|p| ProductView {
                variants: vars.remove(&p.id).unwrap_or_default(),
                categories: cats.remove(&p.id).unwrap_or_default(),
                options: serde_json::from_str(&p.options).unwrap_or_default(),
                images: serde_json::from_str(&p.images).unwrap_or_default(),
                id: p.id,
                slug: p.slug,
                title: p.title,
                description: p.description,
                status: p.status,
                created_at: p.created_at,
                updated_at: p.updated_at,
            })
            .collect())
    }
}
