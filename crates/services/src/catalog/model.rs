//! The catalog's wire shapes: inputs are deserialised (unknown fields refused) and then parsed
//! into domain types; views are what clients see.

use chrono::{DateTime, Utc};
use domain::Availability;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Money on the wire: integer minor units and an ISO-4217 code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MoneyView {
    #[schema(example = 1999)]
    pub amount: i64,
    #[schema(example = "EUR")]
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryRef {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryView {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub position: i32,
    /// Sub-categories, ordered by position (tree views only).
    #[schema(no_recursion)]
    pub children: Vec<CategoryView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariantView {
    pub id: Uuid,
    pub sku: String,
    pub price: MoneyView,
    pub compare_at_price: Option<MoneyView>,
    pub options: BTreeMap<String, String>,
    pub weight_grams: i32,
    #[schema(value_type = String, example = "in_stock")]
    pub availability: Availability,
    /// Exact units available: admin views only (or storefront when EXPOSE_STOCK_COUNTS=true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: String,
    #[schema(example = "active")]
    pub status: String,
    pub categories: Vec<CategoryRef>,
    pub options: Vec<String>,
    pub variants: Vec<VariantView>,
    pub images: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    #[schema(example = "T-Shirts")]
    pub name: String,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub parent_id: Option<Uuid>,
    pub position: Option<i32>,
}

/// Absent fields stay; `parent_id: null` moves the category to the top level.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    pub name: Option<String>,
    pub slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
    pub position: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVariant {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    pub price: MoneyView,
    pub compare_at_price: Option<MoneyView>,
    /// One value for each of the product's option names.
    pub options: Option<BTreeMap<String, String>>,
    /// Initial units in stock (recorded in the inventory ledger).
    pub stock: Option<i64>,
    pub weight_grams: Option<i32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(example = "Organic Cotton Tee")]
    pub title: String,
    /// Generated from the title when absent; made unique with a numeric suffix.
    pub slug: Option<String>,
    pub description: Option<String>,
    /// draft (default) | active | archived
    pub status: Option<String>,
    pub category_ids: Option<Vec<Uuid>>,
    /// Option names, e.g. ["size", "colour"].
    pub options: Option<Vec<String>>,
    pub images: Option<Vec<String>>,
    pub variants: Option<Vec<NewVariant>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    pub title: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub category_ids: Option<Vec<Uuid>>,
    pub options: Option<Vec<String>>,
    pub images: Option<Vec<String>>,
}

/// Stock is not patchable here: it changes only through inventory adjustments and orders.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VariantPatch {
    pub sku: Option<String>,
    pub price: Option<MoneyView>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<MoneyView>)]
    pub compare_at_price: Option<Option<MoneyView>>,
    pub options: Option<BTreeMap<String, String>>,
    pub weight_grams: Option<i32>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
