//! Demo catalog for a fresh embedded database, and a bulk loader of synthetic products for
//! benchmarks (`valuva seed --products N`).

use crate::{
    RequestMeta, ServiceResult,
    audit::{self, Change},
    catalog::{CatalogService, MoneyView, NewCategory, NewProduct, NewVariant},
};
use chrono::Utc;
use domain::{AuditAction, Slug, fold_for_search};
use sea_orm::{EntityTrait, PaginatorTrait, Set};
use std::collections::BTreeMap;
use store::{
    Db,
    entities::{categories, inventory_movements as mv, product_categories as pc, products, variants},
};
use uuid::Uuid;

const DEMO: &[(&str, &[&str])] =
    &[("Apparel", &["T-Shirts", "Hoodies", "Socks"]), ("Home", &["Mugs", "Posters", "Candles"]), ("Accessories", &["Bags", "Caps"])];

const ADJECTIVES: &[&str] =
    &["Classic", "Organic", "Vintage", "Everyday", "Heavyweight", "Minimal", "Nordic", "Coastal", "Alpine", "Urban", "Sunset", "Midnight"];

/// Creates the demo catalog through the normal service paths (so it is audited like any other
/// change). Does nothing when products already exist.
pub async fn demo(db: &Db, catalog: &CatalogService) -> ServiceResult<usize> {
    if products::Entity::find().count(db.primary()).await? > 0 {
        return Ok(0);
    }
    let meta = RequestMeta::system();
    let mut leaves = Vec::new();
    for (position, (root, children)) in DEMO.iter().enumerate() {
        let parent = catalog
            .create_category(
                &meta,
                NewCategory { name: (*root).into(), slug: None, description: None, parent_id: None, position: Some(position as i32) },
            )
            .await?;
        for (i, child) in children.iter().enumerate() {
            let c = catalog
                .create_category(
                    &meta,
                    NewCategory {
                        name: (*child).into(),
                        slug: None,
                        description: None,
                        parent_id: Some(parent.id),
                        position: Some(i as i32),
                    },
                )
                .await?;
            leaves.push((c.id, *child));
        }
    }
    let mut created = 0;
    for (n, adjective) in ADJECTIVES.iter().enumerate() {
        for (k, (category, kind)) in leaves.iter().enumerate().filter(|(k, _)| (k + n) % 2 == 0) {
            let (options, variants) = demo_variants(kind, n * 10 + k);
            let noun = kind.trim_end_matches('s');
            let title = format!("{adjective} {noun}");
            let product = NewProduct {
                description: Some(format!(
                    "A {} {} from the Valuva demo shop. Durable, comfortable and made to last.",
                    adjective.to_lowercase(),
                    noun.to_lowercase()
                )),
                title,
                slug: None,
                status: Some("active".into()),
                category_ids: Some(vec![*category]),
                options: Some(options.into_iter().map(String::from).collect()),
                images: Some(vec![]),
                variants: Some(variants),
            };
            catalog.create_product(&meta, product).await?;
            created += 1;
        }
    }
    Ok(created)
}

fn demo_variants(kind: &str, seed: usize) -> (Vec<&'static str>, Vec<NewVariant>) {
    let base = 900 + (seed as i64 * 137) % 4000;
    let variant = |sku: String, options: BTreeMap<String, String>, price: i64, stock: i64| NewVariant {
        sku,
        price: MoneyView { amount: price, currency: "EUR".into() },
        compare_at_price: None,
        options: Some(options),
        stock: Some(stock),
        weight_grams: Some(250),
    };
    let prefix = format!("DEMO-{seed:03}");
    match kind {
        "T-Shirts" | "Hoodies" => {
            let vs = ["S", "M", "L"]
                .iter()
                .enumerate()
                .map(|(i, size)| {
                    variant(
                        format!("{prefix}-{size}"),
                        BTreeMap::from([("size".into(), (*size).into())]),
                        base + 1500,
                        [12, 3, 0][(i + seed) % 3],
                    )
                })
                .collect();
            (vec!["size"], vs)
        }
        "Mugs" | "Caps" | "Bags" => {
            let vs = ["Black", "White"]
                .iter()
                .map(|c| variant(format!("{prefix}-{}", c.to_uppercase()), BTreeMap::from([("colour".into(), (*c).into())]), base, 20))
                .collect();
            (vec!["colour"], vs)
        }
        _ => (vec![], vec![variant(prefix, BTreeMap::new(), base, 15)]),
    }
}

/// Bulk-loads `n` synthetic active products (two variants each, with stock and ledger rows)
/// in batches of `batch` with multi-row inserts, one transaction per batch. Not audited row by
/// row: one ADMIN_ACTION row records the load. `progress` gets the number of products done.
pub async fn bulk(db: &Db, n: u64, batch: u64, mut progress: impl FnMut(u64)) -> ServiceResult<u64> {
    let leaves = ensure_bulk_categories(db).await?;
    let mut done = 0u64;
    while done < n {
        let size = batch.min(n - done);
        let tx = db.begin().await?;
        let now = Utc::now();
        let mut ps = Vec::with_capacity(size as usize);
        let mut links = Vec::with_capacity(size as usize);
        let mut vs = Vec::with_capacity(2 * size as usize);
        let mut ms = Vec::with_capacity(2 * size as usize);
        for i in 0..size {
            let id = domain::new_id();
            let serial = done + i;
            let tag = id.simple().to_string()[20..].to_uppercase();
            let title = format!(
                "{} {} {}",
                ADJECTIVES[(serial % 12) as usize],
                MATERIALS[(serial / 12 % 8) as usize],
                NOUNS[(serial / 96 % 10) as usize]
            );
            let description = format!("Synthetic product {serial} for load tests: {title}.");
            let price = 500 + (serial * 7919 % 20_000) as i64;
            ps.push(products::ActiveModel {
                id: Set(id),
                slug: Set(format!("{}-{}", Slug::from_title(&title).as_str(), tag.to_lowercase())),
                search_title: Set(fold_for_search(&title)),
                search_body: Set(fold_for_search(&description)),
                title: Set(title),
                description: Set(description),
                status: Set("active".into()),
                options: Set("[\"size\"]".into()),
                images: Set("[]".into()),
                min_price: Set(Some(price)),
                currency: Set(Some("EUR".into())),
                published_at: Set(Some(now)),
                deleted_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            });
            links.push(pc::ActiveModel { product_id: Set(id), category_id: Set(leaves[(serial % leaves.len() as u64) as usize]) });
            for (pos, size) in ["M", "L"].iter().enumerate() {
                let vid = domain::new_id();
                let stock = 1_000;
                vs.push(variants::ActiveModel {
                    id: Set(vid),
                    product_id: Set(id),
                    sku: Set(format!("SYN-{tag}-{size}")),
                    price: Set(price + pos as i64 * 200),
                    currency: Set("EUR".into()),
                    compare_at_price: Set(None),
                    options: Set(format!("{{\"size\":\"{size}\"}}")),
                    option_key: Set(format!("size={}", size.to_lowercase())),
                    weight_grams: Set(300),
                    stock: Set(stock),
                    reserved: Set(0),
                    position: Set(pos as i32),
                    created_at: Set(now),
                    updated_at: Set(now),
                });
                ms.push(mv::ActiveModel {
                    id: Set(domain::new_id()),
                    variant_id: Set(vid),
                    delta: Set(stock),
                    reserved_delta: Set(0),
                    kind: Set("initial".into()),
                    reason: Set("bulk seed".into()),
                    stock_after: Set(stock),
                    actor_id: Set(None),
                    order_id: Set(None),
                    created_at: Set(now),
                });
            }
        }
        products::Entity::insert_many(ps).exec_without_returning(&tx).await?;
        pc::Entity::insert_many(links).exec_without_returning(&tx).await?;
        variants::Entity::insert_many(vs).exec_without_returning(&tx).await?;
        mv::Entity::insert_many(ms).exec_without_returning(&tx).await?;
        tx.commit().await?;
        done += size;
        progress(done);
    }
    // Fresh planner statistics: without them PostgreSQL plans a million-row listing as if the
    // table were empty (a full bitmap scan and sort instead of an index walk). Only the tables
    // filled here: an empty table analyzed now is planned as empty until the next ANALYZE, and
    // sessions cache such plans, e.g. foreign-key checks on `orders` that scan it whole.
    for table in ["categories", "products", "product_categories", "variants", "inventory_movements"] {
        db.execute_raw(&format!("ANALYZE {table}")).await?;
    }
    let tx = db.begin().await?;
    let change = Change { action: AuditAction::AdminAction, entity_type: "catalog", entity_id: None, old: None, new: None }
        .new_values(serde_json::json!({"bulk_seeded_products": n}));
    audit::record(&tx, &RequestMeta::system(), change).await?;
    tx.commit().await?;
    Ok(done)
}

const MATERIALS: &[&str] = &["Cotton", "Linen", "Wool", "Leather", "Canvas", "Ceramic", "Bamboo", "Denim"];
const NOUNS: &[&str] = &["Shirt", "Jacket", "Scarf", "Bag", "Mug", "Cap", "Blanket", "Apron", "Wallet", "Sweater"];

/// Categories for synthetic products: reuses `bulk-*` ones from an earlier run.
async fn ensure_bulk_categories(db: &Db) -> ServiceResult<Vec<Uuid>> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let existing: Vec<Uuid> = categories::Entity::find()
        .filter(categories::Column::Slug.starts_with("bulk-"))
        .all(db.primary())
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    if !existing.is_empty() {
        return Ok(existing);
    }
    let tx = db.begin().await?;
    let now = Utc::now();
    let mut ids = Vec::new();
    for (i, name) in NOUNS.iter().enumerate() {
        let id = domain::new_id();
        categories::Entity::insert(categories::ActiveModel {
            id: Set(id),
            parent_id: Set(None),
            name: Set(format!("Bulk {name}")),
            slug: Set(format!("bulk-{}", name.to_lowercase())),
            description: Set(None),
            position: Set(100 + i as i32),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&tx)
        .await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}
