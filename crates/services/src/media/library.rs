//! Staff's media library: the uploads, newest first, and deleting one that no product shows.

use super::{MediaService, MediaView};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    pagination::{Page, PageRequest},
};
use domain::AuditAction;
use object_store::ObjectStoreExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use store::entities::{media, products};
use uuid::Uuid;

/// Products named in a refusal, at most.
const IN_USE_SHOWN: u64 = 5;

impl MediaService {
    /// Newest first, keyset-paginated by id (UUIDv7, so creation order).
    pub async fn list(&self, page: PageRequest) -> ServiceResult<Page<MediaView>> {
        let mut q = media::Entity::find();
        if let Some(c) = &page.cursor {
            let after: Uuid = self.cursors.decode(c)?;
            q = q.filter(media::Column::Id.lt(after));
        }
        let rows = q.order_by_desc(media::Column::Id).limit(page.limit + 1).all(&self.db.reader()).await?;
        let views = rows.into_iter().map(|m| self.view(m)).collect();
        Ok(Page::from_rows(views, page.limit, &self.cursors, |m: &MediaView| m.id))
    }

    pub async fn get(&self, id: Uuid) -> ServiceResult<MediaView> {
        let row = media::Entity::find_by_id(id).one(self.db.primary()).await?;
        row.map(|m| self.view(m)).ok_or(ServiceError::not_found("upload"))
    }

    /// Deletes an upload's row (audited) and then its files. Refused with 409 `media_in_use`
    /// while a product that is not deleted lists one of its URLs: the storefront would show a
    /// broken image. The check scans the products' `images` text, so it runs before the write
    /// transaction (on SQLite, on a read-only connection, not holding the one writer), and it
    /// is not a lock: a product edit committing between it and the delete can still name the
    /// upload. Files that cannot be removed (storage down) are logged and left: nothing refers
    /// to them.
    pub async fn delete(&self, meta: &RequestMeta, id: Uuid) -> ServiceResult<()> {
        // Every URL of an upload has `/<id>/` in it, and ids are unique.
        let users: Vec<Uuid> = products::Entity::find()
            .select_only()
            .column(products::Column::Id)
            .filter(products::Column::Images.contains(format!("/{id}/")))
            .filter(products::Column::DeletedAt.is_null())
            .limit(IN_USE_SHOWN)
            .into_tuple()
            .all(self.db.current())
            .await?;
        if !users.is_empty() {
            let ids: Vec<String> = users.iter().map(Uuid::to_string).collect();
            let detail = format!("products show this upload ({}); remove it from their images first", ids.join(", "));
            return Err(ServiceError::conflict("media_in_use", detail));
        }
        let tx = self.db.begin().await?;
        let row = media::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("upload"))?;
        // A concurrent delete of the same upload (PostgreSQL, READ COMMITTED) waited for this
        // row and finds it gone: 404 for it, one audit row in all.
        if media::Entity::delete_by_id(id).exec(&tx).await?.rows_affected == 0 {
            return Err(ServiceError::not_found("upload"));
        }
        let view = self.view(row.clone());
        audit::record(&tx, meta, Change::new(AuditAction::Delete, "media", id).old(&view)).await?;
        tx.commit().await?;
        let mut names = vec![row.original_key];
        names.extend(view.renditions.iter().map(|r| format!("{id}/w{}.webp", r.width)));
        for name in &names {
            if let Err(e) = self.store.delete(&self.key(name)).await
                && !matches!(e, object_store::Error::NotFound { .. })
            {
                tracing::warn!(upload = %id, file = %name, error = %e, "a deleted upload's file could not be removed");
            }
        }
        Ok(())
    }
}
