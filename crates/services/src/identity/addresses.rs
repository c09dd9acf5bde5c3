use super::IdentityService;
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
};
use chrono::{DateTime, Utc};
use domain::{Address, AddressInput, AuditAction};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;
use store::entities::addresses;
use uuid::Uuid;

/// A customer keeps a bounded address book.
const MAX_ADDRESSES: u64 = 50;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AddressView {
    pub id: Uuid,
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<addresses::Model> for AddressView {
    fn from(a: addresses::Model) -> Self {
        Self {
            id: a.id,
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
            phone: a.phone,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

impl AddressView {
    fn input(&self) -> AddressInput {
        AddressInput {
            name: self.name.clone(),
            line1: self.line1.clone(),
            line2: self.line2.clone(),
            city: self.city.clone(),
            postal_code: self.postal_code.clone(),
            country: self.country.clone(),
            phone: self.phone.clone(),
        }
    }
}

/// `PATCH /me/addresses/{id}`: absent fields stay; `line2`/`phone` may be cleared with null.
#[derive(Debug, Default)]
pub struct AddressPatch {
    pub name: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<Option<String>>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub phone: Option<Option<String>>,
}

fn parse(input: &AddressInput) -> ServiceResult<Address> {
    Address::parse(input).map_err(|errs| ServiceError::Validation(errs.into_iter().map(|(f, e)| crate::FieldError::new(f, e.0)).collect()))
}

impl IdentityService {
    pub async fn list_addresses(&self, user: Uuid) -> ServiceResult<Vec<AddressView>> {
        let rows = addresses::Entity::find()
            .filter(addresses::Column::UserId.eq(user))
            .order_by_asc(addresses::Column::Id)
            .all(self.db.primary())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// 404 also when the address belongs to someone else: its existence is not revealed.
    pub async fn get_address(&self, user: Uuid, id: Uuid) -> ServiceResult<AddressView> {
        addresses::Entity::find_by_id(id)
            .filter(addresses::Column::UserId.eq(user))
            .one(self.db.primary())
            .await?
            .map(Into::into)
            .ok_or(ServiceError::not_found("address"))
    }

    pub async fn add_address(&self, meta: &RequestMeta, user: Uuid, input: &AddressInput) -> ServiceResult<AddressView> {
        let a = parse(input)?;
        let tx = self.db.begin().await?;
        if addresses::Entity::find().filter(addresses::Column::UserId.eq(user)).count(&tx).await? >= MAX_ADDRESSES {
            return Err(ServiceError::conflict("too_many_addresses", format!("an account can keep at most {MAX_ADDRESSES} addresses")));
        }
        let now = Utc::now();
        let row = addresses::ActiveModel {
            id: Set(domain::new_id()),
            user_id: Set(user),
            name: Set(a.name),
            line1: Set(a.line1),
            line2: Set(a.line2),
            city: Set(a.city),
            postal_code: Set(a.postal_code),
            country: Set(a.country.as_str().to_owned()),
            phone: Set(a.phone),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&tx)
        .await?;
        let view = AddressView::from(row);
        audit::record(&tx, meta, Change::new(AuditAction::Create, "address", view.id).new_values(&view)).await?;
        tx.commit().await?;
        Ok(view)
    }

    pub async fn update_address(&self, meta: &RequestMeta, user: Uuid, id: Uuid, patch: AddressPatch) -> ServiceResult<AddressView> {
        let old = self.get_address(user, id).await?;
        let mut input = old.input();
        let AddressPatch { name, line1, line2, city, postal_code, country, phone } = patch;
        input.name = name.unwrap_or(input.name);
        input.line1 = line1.unwrap_or(input.line1);
        input.line2 = line2.unwrap_or(input.line2);
        input.city = city.unwrap_or(input.city);
        input.postal_code = postal_code.unwrap_or(input.postal_code);
        input.country = country.unwrap_or(input.country);
        input.phone = phone.unwrap_or(input.phone);
        let a = parse(&input)?;
        let tx = self.db.begin().await?;
        let row = addresses::ActiveModel {
            id: Set(id),
            name: Set(a.name),
            line1: Set(a.line1),
            line2: Set(a.line2),
            city: Set(a.city),
            postal_code: Set(a.postal_code),
            country: Set(a.country.as_str().to_owned()),
            phone: Set(a.phone),
            updated_at: Set(Utc::now()),
            ..Default::default()
        };
        // Ownership was checked above and an address never changes owner.
        let updated = row
            .update(&tx)
            .await
            .map_err(|e| if matches!(e, sea_orm::DbErr::RecordNotUpdated) { ServiceError::not_found("address") } else { e.into() })?;
        let new = AddressView::from(updated);
        audit::record(&tx, meta, Change::new(AuditAction::Update, "address", id).old(&old).new_values(&new)).await?;
        tx.commit().await?;
        Ok(new)
    }

    pub async fn delete_address(&self, meta: &RequestMeta, user: Uuid, id: Uuid) -> ServiceResult<()> {
        let old = self.get_address(user, id).await?;
        let tx = self.db.begin().await?;
        let n = addresses::Entity::delete_many()
            .filter(addresses::Column::Id.eq(id))
            .filter(addresses::Column::UserId.eq(user))
            .exec(&tx)
            .await?
            .rows_affected;
        if n == 0 {
            return Err(ServiceError::not_found("address"));
        }
        audit::record(&tx, meta, Change::new(AuditAction::Delete, "address", id).old(&old)).await?;
        tx.commit().await?;
        Ok(())
    }
}
