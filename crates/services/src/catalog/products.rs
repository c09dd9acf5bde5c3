use super::{
    CatalogService, NewProduct, ProductPatch, ProductView,
    variants::{ParsedVariant, insert_variant, parse_variant, refresh_min_price},
};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    error::Errors,
};
use chrono::Utc;
use domain::{AuditAction, ProductStatus, Slug, fold_for_search};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set};
use std::collections::HashSet;
use store::entities::{product_categories as pc, products, variants};
use uuid::Uuid;

const MAX_VARIANTS: usize = 100;

fn parse_title(errs: &mut Errors, raw: &str) -> String {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        errs.push("title", "must be 1-200 printable characters");
    }
    t.to_owned()
}

fn parse_description(errs: &mut Errors, raw: &str) -> String {
    if raw.chars().count() > 20_000 {
        errs.push("description", "must be at most 20000 characters");
    }
    raw.to_owned()
}

fn parse_option_names(errs: &mut Errors, names: &[String]) -> Vec<String> {
    let out: Vec<String> = names.iter().map(|n| n.trim().to_lowercase()).collect();
    if out.len() > 3 {
        errs.push("options", "at most 3 option names");
    }
    if out.iter().any(|n| n.is_empty() || n.chars().count() > 32) {
        errs.push("options", "names must be 1-32 characters");
    }
    if out.iter().collect::<HashSet<_>>().len() != out.len() {
        errs.push("options", "names must be unique");
    }
    out
}

fn parse_images(errs: &mut Errors, images: &[String]) -> Vec<String> {
    if images.len() > 20 || images.iter().any(|i| i.trim().is_empty() || i.len() > 1000) {
        errs.push("images", "at most 20 references of 1-1000 characters");
    }
    images.iter().map(|i| i.trim().to_owned()).collect()
}

impl CatalogService {
    /// A product that exists and is not deleted; `lock` takes a row lock (PostgreSQL).
    pub(super) async fn live_product<C: ConnectionTrait>(&self, conn: &C, id: Uuid, lock: bool) -> ServiceResult<products::Model> {
        let mut q = products::Entity::find_by_id(id).filter(products::Column::DeletedAt.is_null());
        if lock {
            q = q.lock_exclusive();
        }
        q.one(conn).await?.ok_or(ServiceError::not_found("product"))
    }

    pub(super) async fn admin_view<C: ConnectionTrait>(&self, conn: &C, id: Uuid) -> ServiceResult<ProductView> {
        let p = self.live_product(conn, id, false).await?;
        Ok(self.views(conn, vec![p], true).await?.remove(0))
    }

    pub async fn admin_product(&self, id: Uuid) -> ServiceResult<ProductView> {
        self.admin_view(self.db.primary(), id).await
    }

    /// Storefront: an active product (served through the cache, see `product_json`).
    pub(super) async fn product_view<C: ConnectionTrait>(&self, conn: &C, id: Uuid) -> ServiceResult<ProductView> {
        let p = products::Entity::find_by_id(id)
            .filter(products::Column::Status.eq("active"))
            .filter(products::Column::DeletedAt.is_null())
            .one(conn)
            .await?
            .ok_or(ServiceError::not_found("product"))?;
        Ok(self.views(conn, vec![p], false).await?.remove(0))
    }

    /// The slug itself when free, else the first free `slug-N`.
    async fn free_slug<C: ConnectionTrait>(&self, conn: &C, base: &Slug, except: Option<Uuid>) -> ServiceResult<Slug> {
        let mut q =
            products::Entity::find().select_only().column(products::Column::Slug).filter(products::Column::Slug.starts_with(base.as_str()));
        if let Some(id) = except {
            q = q.filter(products::Column::Id.ne(id));
        }
        let taken: HashSet<String> = q.into_tuple::<String>().all(conn).await?.into_iter().collect();
        if !taken.contains(base.as_str()) {
            return Ok(base.clone());
        }
        Ok((2..).map(|n| base.with_suffix(n)).find(|s| !taken.contains(s.as_str())).expect("an unbounded range has a free suffix"))
    }

    pub async fn create_product(&self, meta: &RequestMeta, input: NewProduct) -> ServiceResult<ProductView> {
        let mut errs = Errors::default();
        let title = parse_title(&mut errs, &input.title);
        let explicit_slug = input.slug.as_deref().and_then(|s| errs.check("slug", Slug::parse(s)));
        let description = parse_description(&mut errs, input.description.as_deref().unwrap_or_default());
        let status = errs.check("status", ProductStatus::parse(input.status.as_deref().unwrap_or("draft")));
        let options = parse_option_names(&mut errs, input.options.as_deref().unwrap_or_default());
        let images = parse_images(&mut errs, input.images.as_deref().unwrap_or_default());
        let inputs = input.variants.as_deref().unwrap_or_default();
        if inputs.len() > MAX_VARIANTS {
            errs.push("variants", format!("at most {MAX_VARIANTS} variants"));
        }
        let parsed: Vec<ParsedVariant> =
            inputs.iter().enumerate().filter_map(|(i, v)| parse_variant(&mut errs, &format!("variants[{i}]"), &options, v)).collect();
        let currencies: HashSet<_> = parsed.iter().map(|v| v.price.currency()).collect();
        if currencies.len() > 1 {
            errs.push("variants", "all variants must be priced in one currency");
        }
        if parsed.iter().map(|v| v.sku.clone()).collect::<HashSet<_>>().len() != parsed.len() {
            errs.push("variants", "SKUs must be unique");
        }
        if parsed.iter().map(ParsedVariant::option_key).collect::<HashSet<_>>().len() != parsed.len() {
            errs.push("variants", "each variant needs a distinct combination of option values");
        }
        if status == Some(ProductStatus::Active) && inputs.is_empty() {
            errs.push("status", "an active product needs at least one variant");
        }
        errs.finish()?;
        let status = status.expect("checked");

        let tx = self.db.begin().await?;
        let categories = self.existing_categories(&tx, input.category_ids.as_deref().unwrap_or_default()).await?;
        let slug = match explicit_slug {
            Some(s) => s,
            None => self.free_slug(&tx, &Slug::from_title(&title), None).await?,
        };
        let now = Utc::now();
        let id = domain::new_id();
        products::ActiveModel {
            id: Set(id),
            slug: Set(slug.as_str().to_owned()),
            search_title: Set(fold_for_search(&title)),
            search_body: Set(fold_for_search(&description)),
            title: Set(title),
            description: Set(description),
            status: Set(status.as_str().to_owned()),
            options: Set(serde_json::to_string(&options).unwrap_or_default()),
            images: Set(serde_json::to_string(&images).unwrap_or_default()),
            min_price: Set(None),
            currency: Set(None),
            published_at: Set((status == ProductStatus::Active).then_some(now)),
            deleted_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&tx)
        .await
        .map_err(|e| {
            if store::is_unique_violation(&e) { ServiceError::conflict("slug_taken", "another product has this slug") } else { e.into() }
        })?;
        link_categories(&tx, id, &categories).await?;
        for (i, v) in parsed.iter().enumerate() {
            insert_variant(&tx, meta, id, i as i32, v).await?;
        }
        refresh_min_price(&tx, id).await?;
        let view = self.admin_view(&tx, id).await?;
        audit::record(&tx, meta, Change::new(AuditAction::Create, "product", id).new_values(&view)).await?;
        tx.commit().await?;
        self.cache.products_changed(&[id], &[&view.slug]).await;
        super::count("product", "create");
        Ok(view)
    }

    /// The slug follows the title until the product is first published; after that it is
    /// stable (an explicit change is refused), so links and search results keep working.
    pub async fn update_product(&self, meta: &RequestMeta, id: Uuid, patch: ProductPatch) -> ServiceResult<ProductView> {
        let mut errs = Errors::default();
        let title = patch.title.as_deref().map(|t| parse_title(&mut errs, t));
        let slug = patch.slug.as_deref().and_then(|s| errs.check("slug", Slug::parse(s)));
        let description = patch.description.as_deref().map(|d| parse_description(&mut errs, d));
        let status = patch.status.as_deref().and_then(|s| errs.check("status", ProductStatus::parse(s)));
        let options = patch.options.as_deref().map(|o| parse_option_names(&mut errs, o));
        let images = patch.images.as_deref().map(|i| parse_images(&mut errs, i));
        errs.finish()?;

        let tx = self.db.begin().await?;
        let current = self.live_product(&tx, id, true).await?;
        let old = self.admin_view(&tx, id).await?;
        let variant_count = variants::Entity::find().filter(variants::Column::ProductId.eq(id)).count(&tx).await?;
        let published = current.published_at.is_some();
        if let Some(s) = &slug
            && published
            && s.as_str() != current.slug
        {
            return Err(ServiceError::conflict("slug_locked", "the slug of a published product cannot change"));
        }
        if let Some(o) = &options
            && variant_count > 0
            && *o != old.options
        {
            return Err(ServiceError::conflict("options_in_use", "option names cannot change while the product has variants"));
        }
        if status == Some(ProductStatus::Active) && variant_count == 0 {
            return Err(ServiceError::field("status", "an active product needs at least one variant"));
        }
        let mut am: products::ActiveModel = current.clone().into();
        if let Some(t) = &title {
            am.search_title = Set(fold_for_search(t));
            am.title = Set(t.clone());
            if !published && slug.is_none() {
                am.slug = Set(self.free_slug(&tx, &Slug::from_title(t), Some(id)).await?.as_str().to_owned());
            }
        }
        if let Some(s) = slug {
            am.slug = Set(s.as_str().to_owned());
        }
        if let Some(d) = description {
            am.search_body = Set(fold_for_search(&d));
            am.description = Set(d);
        }
        if let Some(s) = status {
            am.status = Set(s.as_str().to_owned());
            if s == ProductStatus::Active && !published {
                am.published_at = Set(Some(Utc::now()));
            }
        }
        if let Some(o) = options {
            am.options = Set(serde_json::to_string(&o).unwrap_or_default());
        }
        if let Some(i) = images {
            am.images = Set(serde_json::to_string(&i).unwrap_or_default());
        }
        am.updated_at = Set(Utc::now());
        am.update(&tx).await.map_err(|e| {
            if store::is_unique_violation(&e) { ServiceError::conflict("slug_taken", "another product has this slug") } else { e.into() }
        })?;
        if let Some(ids) = &patch.category_ids {
            let categories = self.existing_categories(&tx, ids).await?;
            pc::Entity::delete_many().filter(pc::Column::ProductId.eq(id)).exec(&tx).await?;
            link_categories(&tx, id, &categories).await?;
        }
        let new = self.admin_view(&tx, id).await?;
        audit::record(&tx, meta, Change::new(AuditAction::Update, "product", id).old(&old).new_values(&new)).await?;
        tx.commit().await?;
        self.cache.products_changed(&[id], &[&old.slug, &new.slug]).await;
        super::count("product", "update");
        Ok(new)
    }

    /// Soft delete: the product disappears from every view; its SKUs stay reserved, and orders
    /// that reference its variants keep their history.
    pub async fn delete_product(&self, meta: &RequestMeta, id: Uuid) -> ServiceResult<()> {
        let tx = self.db.begin().await?;
        let current = self.live_product(&tx, id, true).await?;
        let old = self.admin_view(&tx, id).await?;
        let mut am: products::ActiveModel = current.into();
        am.deleted_at = Set(Some(Utc::now()));
        am.status = Set(ProductStatus::Archived.as_str().to_owned());
        am.updated_at = Set(Utc::now());
        am.update(&tx).await?;
        audit::record(&tx, meta, Change::new(AuditAction::Delete, "product", id).old(&old)).await?;
        tx.commit().await?;
        self.cache.products_changed(&[id], &[&old.slug]).await;
        super::count("product", "delete");
        Ok(())
    }
}

async fn link_categories<C: ConnectionTrait>(conn: &C, product: Uuid, categories: &[Uuid]) -> ServiceResult<()> {
    if categories.is_empty() {
        return Ok(());
    }
    let rows = categories.iter().map(|c| pc::ActiveModel { product_id: Set(product), category_id: Set(*c) });
    pc::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}
