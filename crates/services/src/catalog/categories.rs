use super::{CatalogService, CategoryPatch, CategoryView, NewCategory};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    error::Errors,
};
use chrono::Utc;
use domain::{AuditAction, Slug};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, sea_query::Expr,
};
use std::collections::{HashMap, HashSet};
use store::entities::{categories, product_categories as pc};
use uuid::Uuid;

/// What to do with a deleted category's sub-categories and product links.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteCategory {
    /// Move children up to the deleted category's parent. Without it, children → 409.
    pub reparent_children: bool,
    /// Remove the category from its products. Without it, linked products → 409.
    pub detach_products: bool,
}

fn view(c: categories::Model) -> CategoryView {
    CategoryView {
        id: c.id,
        parent_id: c.parent_id,
        name: c.name,
        slug: c.slug,
        description: c.description,
        position: c.position,
        children: Vec::new(),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

fn build_tree(all: Vec<categories::Model>, root: Option<Uuid>) -> Vec<CategoryView> {
    let mut by_parent: HashMap<Option<Uuid>, Vec<categories::Model>> = HashMap::new();
    for c in all {
        by_parent.entry(c.parent_id).or_default().push(c);
    }
    fn attach(parent: Option<Uuid>, by_parent: &mut HashMap<Option<Uuid>, Vec<categories::Model>>) -> Vec<CategoryView> {
        let mut kids = by_parent.remove(&parent).unwrap_or_default();
        kids.sort_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)));
        kids.into_iter()
            .map(|c| {
                let id = c.id;
                let mut v = view(c);
                v.children = attach(Some(id), by_parent);
                v
            })
            .collect()
    }
    attach(root, &mut by_parent)
}

fn parse_text(errs: &mut Errors, field: &str, raw: &str, max: usize) -> String {
    let v = raw.trim();
    if v.is_empty() || v.chars().count() > max {
        errs.push(field, format!("must be 1-{max} characters"));
    }
    v.to_owned()
}

impl CatalogService {
    async fn all_categories<C: ConnectionTrait>(&self, conn: &C) -> ServiceResult<Vec<categories::Model>> {
        Ok(categories::Entity::find().order_by_asc(categories::Column::Position).all(conn).await?)
    }

    /// The whole tree, roots first, children ordered by position.
    pub async fn category_tree(&self) -> ServiceResult<Vec<CategoryView>> {
        Ok(build_tree(self.all_categories(&self.fill_reader()).await?, None))
    }

    /// One category (by id or slug) with its subtree.
    pub async fn category(&self, id_or_slug: &str) -> ServiceResult<CategoryView> {
        let all = self.all_categories(&self.fill_reader()).await?;
        let found = all
            .iter()
            .find(|c| c.slug == id_or_slug || c.id.to_string() == id_or_slug)
            .cloned()
            .ok_or(ServiceError::not_found("category"))?;
        let mut v = view(found.clone());
        v.children = build_tree(all, Some(found.id));
        Ok(v)
    }

    /// The category and all its descendants' ids (for listing filters).
    pub(super) async fn category_and_descendants(&self, id_or_slug: &str) -> ServiceResult<Option<Vec<Uuid>>> {
        let all = self.all_categories(&self.fill_reader()).await?;
        let Some(root) = all.iter().find(|c| c.slug == id_or_slug || c.id.to_string() == id_or_slug) else {
            return Ok(None);
        };
        let mut ids = vec![root.id];
        let mut seen: HashSet<Uuid> = HashSet::from([root.id]);
        let mut i = 0;
        while i < ids.len() {
            let parent = ids[i];
            // `seen` makes a cycle (which moves prevent, but data can be edited by hand) harmless.
            let children: Vec<Uuid> = all.iter().filter(|c| c.parent_id == Some(parent) && seen.insert(c.id)).map(|c| c.id).collect();
            ids.extend(children);
            i += 1;
        }
        Ok(Some(ids))
    }

    pub async fn create_category(&self, meta: &RequestMeta, input: NewCategory) -> ServiceResult<CategoryView> {
        let mut errs = Errors::default();
        let name = parse_text(&mut errs, "name", &input.name, 200);
        let slug = match &input.slug {
            Some(s) => errs.check("slug", Slug::parse(s)),
            None => Some(Slug::from_title(&name)),
        };
        if input.description.as_ref().is_some_and(|d| d.chars().count() > 5000) {
            errs.push("description", "must be at most 5000 characters");
        }
        errs.finish()?;
        let tx = self.db.begin().await?;
        if let Some(parent) = input.parent_id
            && categories::Entity::find_by_id(parent).one(&tx).await?.is_none()
        {
            return Err(ServiceError::field("parent_id", "no such category"));
        }
        let now = Utc::now();
        let row = categories::ActiveModel {
            id: Set(domain::new_id()),
            parent_id: Set(input.parent_id),
            name: Set(name),
            slug: Set(slug.expect("checked").as_str().to_owned()),
            description: Set(input.description.clone()),
            position: Set(input.position.unwrap_or(0)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&tx)
        .await
        .map_err(slug_conflict)?;
        let v = view(row);
        audit::record(&tx, meta, Change::new(AuditAction::Create, "category", v.id).new_values(&v)).await?;
        tx.commit().await?;
        self.cache.categories_changed().await;
        super::count("category", "create");
        Ok(v)
    }

    /// Rename, re-slug, move (a category cannot move under itself or its descendants) or
    /// reorder.
    pub async fn update_category(&self, meta: &RequestMeta, id: Uuid, patch: CategoryPatch) -> ServiceResult<CategoryView> {
        let mut errs = Errors::default();
        let name = patch.name.as_deref().map(|n| parse_text(&mut errs, "name", n, 200));
        let slug = patch.slug.as_deref().and_then(|s| errs.check("slug", Slug::parse(s)));
        errs.finish()?;
        let tx = self.db.begin().await?;
        // Locking every category row serialises concurrent moves, so two opposite moves cannot
        // both pass the cycle check (the tree is small; writes to it are rare).
        let all = categories::Entity::find().lock_exclusive().all(&tx).await?;
        let current = all.iter().find(|c| c.id == id).cloned().ok_or(ServiceError::not_found("category"))?;
        if let Some(Some(new_parent)) = patch.parent_id {
            if !all.iter().any(|c| c.id == new_parent) {
                return Err(ServiceError::field("parent_id", "no such category"));
            }
            // Walk up from the new parent: meeting `id` means a cycle.
            let mut cursor = Some(new_parent);
            while let Some(c) = cursor {
                if c == id {
                    return Err(ServiceError::conflict(
                        "category_cycle",
                        "a category cannot be moved under itself or one of its descendants",
                    ));
                }
                cursor = all.iter().find(|x| x.id == c).and_then(|x| x.parent_id);
            }
        }
        let old = view(current.clone());
        let mut am: categories::ActiveModel = current.into();
        if let Some(n) = name {
            am.name = Set(n);
        }
        if let Some(s) = slug {
            am.slug = Set(s.as_str().to_owned());
        }
        if let Some(d) = patch.description {
            am.description = Set(d);
        }
        if let Some(p) = patch.parent_id {
            am.parent_id = Set(p);
        }
        if let Some(p) = patch.position {
            am.position = Set(p);
        }
        am.updated_at = Set(Utc::now());
        let new = view(am.update(&tx).await.map_err(slug_conflict)?);
        audit::record(&tx, meta, Change::new(AuditAction::Update, "category", id).old(&old).new_values(&new)).await?;
        // Product pages show their categories' names and slugs.
        let shown = if new.name != old.name || new.slug != old.slug { products_in(&tx, id).await? } else { Vec::new() };
        tx.commit().await?;
        self.cache.categories_changed().await;
        if !shown.is_empty() {
            self.cache.products_changed(&shown, &[]).await;
        }
        super::count("category", "update");
        Ok(new)
    }

    pub async fn delete_category(&self, meta: &RequestMeta, id: Uuid, how: DeleteCategory) -> ServiceResult<()> {
        let tx = self.db.begin().await?;
        let current = categories::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("category"))?;
        let children = categories::Entity::find().filter(categories::Column::ParentId.eq(id)).count(&tx).await?;
        if children > 0 && !how.reparent_children {
            return Err(ServiceError::conflict(
                "category_has_children",
                format!("the category has {children} sub-categories; pass children=reparent to move them up"),
            ));
        }
        let products = pc::Entity::find().filter(pc::Column::CategoryId.eq(id)).count(&tx).await?;
        if products > 0 && !how.detach_products {
            return Err(ServiceError::conflict(
                "category_has_products",
                format!("{products} products are in this category; pass products=detach to remove it from them"),
            ));
        }
        categories::Entity::update_many()
            .col_expr(categories::Column::ParentId, Expr::value(current.parent_id))
            .filter(categories::Column::ParentId.eq(id))
            .exec(&tx)
            .await?;
        let detached = products_in(&tx, id).await?;
        pc::Entity::delete_many().filter(pc::Column::CategoryId.eq(id)).exec(&tx).await?;
        categories::Entity::delete_by_id(id).exec(&tx).await?;
        let change = Change::new(AuditAction::Delete, "category", id)
            .old(view(current))
            .new_values(serde_json::json!({"children_reparented": children, "products_detached": products}));
        audit::record(&tx, meta, change).await?;
        tx.commit().await?;
        self.cache.categories_changed().await;
        if !detached.is_empty() {
            self.cache.products_changed(&detached, &[]).await;
        }
        super::count("category", "delete");
        Ok(())
    }

    /// Checks that every id names a category; returns them de-duplicated.
    pub(super) async fn existing_categories<C: ConnectionTrait>(&self, conn: &C, ids: &[Uuid]) -> ServiceResult<Vec<Uuid>> {
        let unique: Vec<Uuid> = ids.iter().copied().collect::<HashSet<_>>().into_iter().collect();
        if unique.is_empty() {
            return Ok(unique);
        }
        let found = categories::Entity::find().filter(categories::Column::Id.is_in(unique.clone())).count(conn).await?;
        if found as usize != unique.len() {
            return Err(ServiceError::field("category_ids", "contains an unknown category"));
        }
        Ok(unique)
    }
}

fn slug_conflict(e: sea_orm::DbErr) -> ServiceError {
    if store::is_unique_violation(&e) { ServiceError::conflict("slug_taken", "another category has this slug") } else { e.into() }
}

/// The products linked to a category (their cached pages show it).
async fn products_in<C: ConnectionTrait>(conn: &C, category: Uuid) -> ServiceResult<Vec<Uuid>> {
    Ok(pc::Entity::find()
        .select_only()
        .column(pc::Column::ProductId)
        .filter(pc::Column::CategoryId.eq(category))
        .into_tuple()
        .all(conn)
        .await?)
}
