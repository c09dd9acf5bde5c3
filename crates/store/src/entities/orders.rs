use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub number: i64,
    pub user_id: Option<Uuid>,
    pub cart_id: Uuid,
    pub email: String,
    pub status: String,
    pub version: i32,
    pub currency: String,
    pub subtotal: i64,
    pub shipping_total: i64,
    pub total: i64,
    pub refunded_total: i64,
    pub shipping_address: String,
    pub shipping_method: String,
    pub payment_provider: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
