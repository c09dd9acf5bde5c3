//! Image uploads: checked and re-encoded in memory (see [`image`]), then the original and its
//! WebP renditions are stored through object_store — a local directory by default, any
//! S3-compatible bucket by `STORAGE_URL` — behind the storage circuit breaker and retry policy.
//! Nothing is stored unless every part of an upload is valid; a partial store is removed.
//! Staff list, read and delete uploads ([`library`]).

mod library;

pub mod image;

use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    pagination::CursorCodec,
};
use chrono::{DateTime, Utc};
use domain::AuditAction;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path as StorePath};
use platform::resilience::{CallError, Resilience, Retryable};
use sea_orm::{ActiveModelTrait, Set};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use store::{Db, entities::media};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RenditionView {
    pub width: u32,
    pub height: u32,
    #[schema(example = "image/webp")]
    pub content_type: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MediaView {
    pub id: Uuid,
    #[schema(example = "image/jpeg")]
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub size_bytes: i64,
    /// The original, metadata stripped; put this or a rendition in a product's `images`.
    pub url: String,
    /// WebP, 200/800/1600 px wide (never wider than the original).
    pub renditions: Vec<RenditionView>,
    pub created_at: DateTime<Utc>,
}

/// Where files go and how clients reach them.
pub enum StorageTarget {
    /// A local directory; the API serves it under `/media/`.
    Local(std::path::PathBuf),
    /// `s3://bucket[/prefix]`, configured from the `AWS_*` environment and then `options`
    /// (object_store's S3 keys: `endpoint`, `region`, `access_key_id`, `allow_http`, …).
    S3 { bucket: String, prefix: String, options: Vec<(String, String)> },
}

struct StoreFailure(object_store::Error);

impl Retryable for StoreFailure {
    fn retryable(&self) -> bool {
        !matches!(
            self.0,
            object_store::Error::NotFound { .. } | object_store::Error::InvalidPath { .. } | object_store::Error::NotSupported { .. }
        )
    }
}

#[derive(Clone)]
pub struct MediaService {
    db: Db,
    cursors: CursorCodec,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    public_base: String,
    resilience: Arc<Resilience>,
}

impl MediaService {
    /// `public_base`: the URL prefix clients fetch files from (`/media` when served by the API).
    pub fn new(
        db: Db,
        cursors: CursorCodec,
        target: StorageTarget,
        public_base: String,
        resilience: Arc<Resilience>,
    ) -> Result<Self, String> {
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match target {
            StorageTarget::Local(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| format!("STORAGE_URL {}: {e}", dir.display()))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| format!("STORAGE_URL: {e}"))?;
                (Arc::new(fs), String::new())
            }
            StorageTarget::S3 { bucket, prefix, options } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (k, v) in options {
                    let key = k.parse().map_err(|_| format!("STORAGE_URL: unknown S3 option {k}"))?;
                    builder = builder.with_config(key, v);
                }
                let s3 = builder.build().map_err(|e| format!("STORAGE_URL: {e}"))?;
                (Arc::new(s3), prefix.trim_matches('/').to_owned())
            }
        };
        Ok(Self { db, cursors, store, prefix, public_base: public_base.trim_end_matches('/').to_owned(), resilience })
    }

    fn key(&self, name: &str) -> StorePath {
        if self.prefix.is_empty() { StorePath::from(name) } else { StorePath::from(format!("{}/{name}", self.prefix)) }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.public_base)
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> ServiceResult<()> {
        let (key, payload) = (self.key(name), PutPayload::from(bytes));
        let r = self.resilience.call(|| async { self.store.put(&key, payload.clone()).await.map_err(StoreFailure) }).await;
        r.map(|_| ()).map_err(|e| {
            let why = match e {
                CallError::Failed(StoreFailure(e)) => e.to_string(),
                CallError::Timeout(_) => "timed out".into(),
                CallError::Open(_) => "circuit breaker open".into(),
            };
            tracing::error!(error = %why, "storing an upload failed");
            ServiceError::Unavailable { code: "dependency_unavailable", detail: "storage is unavailable; try again shortly".into() }
        })
    }

    /// Validates, re-encodes and stores one image; 4xx (and nothing stored) for anything that
    /// is not a sound JPEG/PNG/WebP/GIF within the limits.
    pub async fn upload(&self, meta: &RequestMeta, bytes: Vec<u8>) -> ServiceResult<MediaView> {
        let size = bytes.len() as i64;
        let processed = tokio::task::spawn_blocking(move || image::process(&bytes)).await.map_err(ServiceError::internal)?;
        let processed = processed.map_err(|e| match e {
            image::ImageError::Unsupported => ServiceError::Unsupported { detail: e.to_string() },
            _ => ServiceError::field("file", e.to_string()),
        })?;
        let id = domain::new_id();
        let original_name = format!("{id}/original.{}", processed.original.extension);
        let mut names = vec![original_name.clone()];
        let mut renditions = Vec::new();
        for r in &processed.renditions {
            let name = format!("{id}/w{}.webp", r.width);
            renditions.push(RenditionView { width: r.width, height: r.height, content_type: r.content_type.into(), url: self.url(&name) });
            names.push(name);
        }
        let mut original = processed.original;
        let blobs: Vec<Vec<u8>> =
            std::iter::once(std::mem::take(&mut original.bytes)).chain(processed.renditions.into_iter().map(|r| r.bytes)).collect();
        let row = media::ActiveModel {
            id: Set(id),
            content_type: Set(original.content_type.into()),
            width: Set(original.width as i32),
            height: Set(original.height as i32),
            size_bytes: Set(size),
            original_key: Set(original_name.clone()),
            renditions: Set(serde_json::to_string(&renditions).map_err(ServiceError::internal)?),
            created_by: Set(meta.actor.map(|a| a.id)),
            created_at: Set(Utc::now()),
        };
        // Files and row are written on a task of their own: a request that times out or whose
        // client hangs up mid-way would otherwise leave files stored with no row (an orphan no
        // one can list or delete). The task finishes either way, as a whole or cleaned up.
        let (this, meta) = (self.clone(), meta.clone());
        let stored = tokio::spawn(async move { this.store_and_record(&meta, names, blobs, row).await });
        let row = stored.await.map_err(ServiceError::internal)??;
        metrics::counter!("valuva_uploads_total", "content_type" => original.content_type).increment(1);
        Ok(self.view(row))
    }

    /// Stores every file, then records the row; on a failure removes what was stored.
    async fn store_and_record(
        &self,
        meta: &RequestMeta,
        names: Vec<String>,
        blobs: Vec<Vec<u8>>,
        row: media::ActiveModel,
    ) -> ServiceResult<media::Model> {
        for (name, blob) in names.iter().zip(blobs) {
            if let Err(e) = self.put(name, blob).await {
                self.remove(&names).await;
                return Err(e);
            }
        }
        match self.record(meta, row).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.remove(&names).await;
                Err(e)
            }
        }
    }

    /// The upload's row and its audit row, together.
    async fn record(&self, meta: &RequestMeta, row: media::ActiveModel) -> ServiceResult<media::Model> {
        let tx = self.db.begin().await?;
        let row = row.insert(&tx).await?;
        let summary =
            serde_json::json!({"content_type": row.content_type, "width": row.width, "height": row.height, "size_bytes": row.size_bytes});
        audit::record(&tx, meta, Change::new(AuditAction::Create, "media", row.id).new_values(summary)).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn remove(&self, names: &[String]) {
        for n in names {
            let _ = self.store.delete(&self.key(n)).await;
        }
    }

    fn view(&self, m: media::Model) -> MediaView {
        MediaView {
            id: m.id,
            url: self.url(&m.original_key),
            content_type: m.content_type,
            width: m.width as u32,
            height: m.height as u32,
            size_bytes: m.size_bytes,
            renditions: serde_json::from_str(&m.renditions).unwrap_or_default(),
            created_at: m.created_at,
        }
    }

    /// A stored file's bytes (for serving the local directory); `None` when absent.
    pub async fn read(&self, name: &str) -> ServiceResult<Option<bytes::Bytes>> {
        // Names are `<uuid>/<file>`: nothing else may be asked for.
        let valid = name.split_once('/').is_some_and(|(id, file)| {
            Uuid::parse_str(id).is_ok()
                && !file.is_empty()
                // The names given here are short (`original.jpeg`, `w1600.webp`); a longer one
                // cannot exist, and a local file system refuses names over 255 bytes with an
                // error of its own rather than "not found".
                && file.len() <= 32
                && file.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
                && !file.starts_with('.')
        });
        if !valid {
            return Ok(None);
        }
        match self.store.get(&self.key(name)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(ServiceError::internal)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ServiceError::internal(e)),
        }
    }
}
