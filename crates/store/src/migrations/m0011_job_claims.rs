use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // How often a job was claimed, never reset: the fencing token of a claim. `attempts`
        // served until staff could retry a dead job, which starts its attempts again at 0; a
        // worker still holding a claim from before the retry could then match the new claim's
        // attempt number and record the new run's outcome.
        m.alter_table(Table::alter().table("jobs").add_column(ColumnDef::new("claims").big_integer().not_null().default(0)).to_owned())
            .await
    }
}
