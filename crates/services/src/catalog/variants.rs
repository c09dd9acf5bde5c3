use super::{CatalogService, NewVariant, ProductView, VariantPatch, VariantView, rows::money};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    error::Errors,
    inventory,
};
use chrono::Utc;
use domain::{AuditAction, Currency, Money, Sku};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr};
use std::collections::BTreeMap;
use store::entities::{products, variants};
use uuid::Uuid;

pub(super) const MAX_STOCK: i64 = 1_000_000_000;

/// A variant input that passed validation.
pub(super) struct ParsedVariant {
    pub sku: Sku,
    pub price: Money,
    pub compare_at: Option<Money>,
    pub options: BTreeMap<String, String>,
    pub stock: i64,
    pub weight_grams: i32,
}

impl ParsedVariant {
    /// "colour=red|size=m": equal for equal combinations whatever the input order or case.
    pub fn option_key(&self) -> String {
        option_key(&self.options)
    }
}

pub(super) fn option_key(options: &BTreeMap<String, String>) -> String {
    options.iter().map(|(k, v)| format!("{k}={}", v.to_lowercase())).collect::<Vec<_>>().join("|")
}

/// Largest price accepted (minor units): a cart of 100 lines of 100 units stays far inside i64.
pub(crate) const MAX_PRICE: i64 = 1_000_000_000_000;

pub(crate) fn parse_money(errs: &mut Errors, field: &str, m: &super::MoneyView) -> Option<Money> {
    let currency = errs.check(&format!("{field}.currency"), Currency::parse(&m.currency))?;
    if m.amount > MAX_PRICE {
        errs.push(&format!("{field}.amount"), format!("must be at most {MAX_PRICE}"));
        return None;
    }
    errs.check(&format!("{field}.amount"), Money::price(m.amount, currency))
}

/// The product's option names must be exactly the variant's option keys.
pub(super) fn parse_options(
    errs: &mut Errors,
    field: &str,
    names: &[String],
    given: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let given = given.cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (k, v) in &given {
        let key = k.trim().to_lowercase();
        if !names.contains(&key) {
            errs.push(&format!("{field}.{k}"), "is not one of the product's options");
            continue;
        }
        let v = v.trim();
        if v.is_empty() || v.chars().count() > 64 {
            errs.push(&format!("{field}.{k}"), "must be 1-64 characters");
        }
        out.insert(key, v.to_owned());
    }
    for n in names {
        if !out.contains_key(n) {
            errs.push(&format!("{field}.{n}"), "is required by the product's options");
        }
    }
    out
}

pub(super) fn parse_variant(errs: &mut Errors, field: &str, names: &[String], v: &NewVariant) -> Option<ParsedVariant> {
    let sku = errs.check(&format!("{field}.sku"), Sku::parse(&v.sku));
    let price = parse_money(errs, &format!("{field}.price"), &v.price);
    let compare_at = v.compare_at_price.as_ref().and_then(|c| parse_money(errs, &format!("{field}.compare_at_price"), c));
    if let (Some(p), Some(c)) = (price, compare_at)
        && p.currency() != c.currency()
    {
        errs.push(&format!("{field}.compare_at_price.currency"), "must be the price's currency");
    }
    let options = parse_options(errs, &format!("{field}.options"), names, v.options.as_ref());
    let stock = v.stock.unwrap_or(0);
    if !(0..=MAX_STOCK).contains(&stock) {
        errs.push(&format!("{field}.stock"), format!("must be between 0 and {MAX_STOCK}"));
    }
    let weight_grams = v.weight_grams.unwrap_or(0);
    if !(0..=10_000_000).contains(&weight_grams) {
        errs.push(&format!("{field}.weight_grams"), "must be between 0 and 10000000");
    }
    Some(ParsedVariant { sku: sku?, price: price?, compare_at, options, stock, weight_grams })
}

pub(super) fn sku_conflict(e: sea_orm::DbErr) -> ServiceError {
    match e.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(msg)) if msg.contains("option_key") => {
            ServiceError::conflict("duplicate_options", "another variant of this product has the same option values")
        }
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ServiceError::conflict("sku_taken", "another variant already has this SKU"),
        _ => e.into(),
    }
}

/// Inserts a variant and records its initial stock in the ledger.
pub(super) async fn insert_variant<C: ConnectionTrait>(
    conn: &C,
    meta: &RequestMeta,
    product: Uuid,
    position: i32,
    v: &ParsedVariant,
) -> ServiceResult<variants::Model> {
    let now = Utc::now();
    let row = variants::ActiveModel {
        id: Set(domain::new_id()),
        product_id: Set(product),
        sku: Set(v.sku.as_str().to_owned()),
        price: Set(v.price.amount()),
        currency: Set(v.price.currency().code().to_owned()),
        compare_at_price: Set(v.compare_at.map(Money::amount)),
        options: Set(serde_json::to_string(&v.options).unwrap_or_default()),
        option_key: Set(v.option_key()),
        weight_grams: Set(v.weight_grams),
        stock: Set(v.stock),
        reserved: Set(0),
        position: Set(position),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .map_err(sku_conflict)?;
    if v.stock > 0 {
        let m = inventory::Movement {
            variant_id: row.id,
            delta: v.stock,
            reserved_delta: 0,
            kind: inventory::Kind::Initial,
            reason: "initial stock",
            stock_after: v.stock,
            order_id: None,
            // A new variant's stock alerts nobody.
            low_stock: 0,
        };
        inventory::record_movement(conn, meta, m).await?;
    }
    Ok(row)
}

/// Keeps the product's cheapest price and currency (used by listing filters) current.
pub(super) async fn refresh_min_price<C: ConnectionTrait>(conn: &C, product: Uuid) -> ServiceResult<()> {
    let cheapest: Option<(i64, String)> = variants::Entity::find()
        .select_only()
        .column(variants::Column::Price)
        .column(variants::Column::Currency)
        .filter(variants::Column::ProductId.eq(product))
        .order_by(variants::Column::Price, sea_orm::Order::Asc)
        .into_tuple()
        .one(conn)
        .await?;
    products::Entity::update_many()
        .col_expr(products::Column::MinPrice, Expr::value(cheapest.as_ref().map(|c| c.0)))
        .col_expr(products::Column::Currency, Expr::value(cheapest.map(|c| c.1)))
        .col_expr(products::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(products::Column::Id.eq(product))
        .exec(conn)
        .await?;
    Ok(())
}

impl CatalogService {
    pub async fn add_variant(&self, meta: &RequestMeta, product_id: Uuid, input: NewVariant) -> ServiceResult<ProductView> {
        let tx = self.db.begin().await?;
        let product = self.live_product(&tx, product_id, true).await?;
        let names: Vec<String> = serde_json::from_str(&product.options).unwrap_or_default();
        let mut errs = Errors::default();
        let parsed = parse_variant(&mut errs, "variant", &names, &input);
        errs.finish()?;
        let parsed = parsed.expect("validated");
        let existing = variants::Entity::find().filter(variants::Column::ProductId.eq(product_id)).all(&tx).await?;
        if existing.iter().any(|v| v.currency != parsed.price.currency().code()) {
            return Err(ServiceError::field("price.currency", "must match the currency of the product's other variants"));
        }
        let row = insert_variant(&tx, meta, product_id, existing.len() as i32, &parsed).await?;
        refresh_min_price(&tx, product_id).await?;
        let view = self.variant_view(row, true);
        audit::record(&tx, meta, Change::new(AuditAction::Create, "variant", view.id).new_values(&view)).await?;
        let product = self.admin_view(&tx, product_id).await?;
        tx.commit().await?;
        self.cache.products_changed(&[product_id], &[]).await;
        super::count("variant", "create");
        Ok(product)
    }

    pub async fn update_variant(
        &self,
        meta: &RequestMeta,
        product_id: Uuid,
        variant_id: Uuid,
        patch: VariantPatch,
    ) -> ServiceResult<VariantView> {
        let tx = self.db.begin().await?;
        let product = self.live_product(&tx, product_id, true).await?;
        let current = variants::Entity::find_by_id(variant_id)
            .filter(variants::Column::ProductId.eq(product_id))
            .lock_exclusive()
            .one(&tx)
            .await?
            .ok_or(ServiceError::not_found("variant"))?;
        let names: Vec<String> = serde_json::from_str(&product.options).unwrap_or_default();
        let mut errs = Errors::default();
        let sku = patch.sku.as_deref().and_then(|s| errs.check("sku", Sku::parse(s)));
        let price = patch.price.as_ref().and_then(|p| parse_money(&mut errs, "price", p));
        let compare = patch.compare_at_price.as_ref().map(|c| c.as_ref().and_then(|m| parse_money(&mut errs, "compare_at_price", m)));
        let options = patch.options.as_ref().map(|o| parse_options(&mut errs, "options", &names, Some(o)));
        if patch.weight_grams.is_some_and(|w| !(0..=10_000_000).contains(&w)) {
            errs.push("weight_grams", "must be between 0 and 10000000");
        }
        let currency = price.map(|p| p.currency().code().to_owned()).unwrap_or_else(|| current.currency.clone());
        if let Some(Some(c)) = compare
            && c.currency().code() != currency
        {
            errs.push("compare_at_price.currency", "must be the price's currency");
        }
        if price.is_some() && currency != current.currency {
            errs.push("price.currency", "must stay the product's currency");
        }
        errs.finish()?;
        let old = self.variant_view(current.clone(), true);
        let mut am: variants::ActiveModel = current.into();
        if let Some(s) = sku {
            am.sku = Set(s.as_str().to_owned());
        }
        if let Some(p) = price {
            am.price = Set(p.amount());
        }
        if let Some(c) = compare {
            am.compare_at_price = Set(c.map(Money::amount));
        }
        if let Some(o) = options {
            am.option_key = Set(option_key(&o));
            am.options = Set(serde_json::to_string(&o).unwrap_or_default());
        }
        if let Some(w) = patch.weight_grams {
            am.weight_grams = Set(w);
        }
        am.updated_at = Set(Utc::now());
        let new = self.variant_view(am.update(&tx).await.map_err(sku_conflict)?, true);
        refresh_min_price(&tx, product_id).await?;
        audit::record(&tx, meta, Change::new(AuditAction::Update, "variant", variant_id).old(&old).new_values(&new)).await?;
        tx.commit().await?;
        self.cache.products_changed(&[product_id], &[]).await;
        super::count("variant", "update");
        Ok(new)
    }

    /// An active product keeps at least one variant: archive it first.
    pub async fn delete_variant(&self, meta: &RequestMeta, product_id: Uuid, variant_id: Uuid) -> ServiceResult<()> {
        let tx = self.db.begin().await?;
        let product = self.live_product(&tx, product_id, true).await?;
        let all = variants::Entity::find().filter(variants::Column::ProductId.eq(product_id)).all(&tx).await?;
        let current = all.iter().find(|v| v.id == variant_id).cloned().ok_or(ServiceError::not_found("variant"))?;
        if product.status == "active" && all.len() == 1 {
            return Err(ServiceError::conflict("last_variant", "an active product needs at least one variant; archive the product first"));
        }
        variants::Entity::delete_by_id(variant_id).exec(&tx).await?;
        refresh_min_price(&tx, product_id).await?;
        let old = serde_json::json!({"sku": current.sku, "price": money(current.price, &current.currency), "stock": current.stock});
        audit::record(&tx, meta, Change::new(AuditAction::Delete, "variant", variant_id).old(old)).await?;
        tx.commit().await?;
        self.cache.products_changed(&[product_id], &[]).await;
        super::count("variant", "delete");
        Ok(())
    }
}
