use super::index;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Workers look for expired leases in lease order and stop at their batch size, as they
        // do for queued jobs on `idx_jobs_due`.
        m.create_index(index("jobs", "idx_jobs_lease", &["status", "locked_until"])).await
    }
}
