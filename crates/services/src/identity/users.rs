use super::{IdentityService, password};
use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    error::Errors,
    pagination::{CursorCodec, Page, PageRequest},
};
use chrono::{DateTime, Utc};
use domain::{AuditAction, Email, Password, Role};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Serialize;
use store::entities::users;
use uuid::Uuid;

/// A user as shown to clients: never the password hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    #[schema(value_type = String, example = "customer")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<users::Model> for UserView {
    fn from(u: users::Model) -> Self {
        Self { id: u.id, email: u.email, name: u.name, role: Role::parse(&u.role).unwrap_or(Role::Customer), created_at: u.created_at }
    }
}

/// `PATCH /me`: absent fields stay as they are; `name: null` clears the name. A new email
/// needs the current password.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    pub email: Option<String>,
    pub name: Option<Option<String>>,
    pub current_password: Option<String>,
}

pub(crate) fn parse_name(name: Option<&str>, errs: &mut Errors) -> Option<String> {
    let name = name.map(str::trim).filter(|n| !n.is_empty())?;
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        errs.push("name", "must be at most 200 printable characters");
    }
    Some(name.to_owned())
}

impl IdentityService {
    /// The email is how an account is recovered (password reset), so changing it takes the
    /// password too: otherwise a stolen access token, valid for minutes, would become the
    /// account for good (new email, then a reset). Checked before the row is locked, since
    /// argon2 takes a while.
    async fn confirm_email_change(&self, id: Uuid, email: &Email, password: Option<&str>) -> ServiceResult<()> {
        let user = users::Entity::find_by_id(id).one(self.db.primary()).await?.ok_or(ServiceError::not_found("user"))?;
        if user.email == email.as_str() {
            return Ok(());
        }
        let password = password.ok_or_else(|| ServiceError::field("current_password", "is required to change the email"))?;
        if !password::verify(password, &user.password_hash).await {
            return Err(ServiceError::forbidden("wrong_password", "the current password is not right"));
        }
        Ok(())
    }

    pub async fn me(&self, id: Uuid) -> ServiceResult<UserView> {
        users::Entity::find_by_id(id).one(self.db.primary()).await?.map(UserView::from).ok_or(ServiceError::not_found("user"))
    }

    pub async fn update_me(&self, meta: &RequestMeta, id: Uuid, patch: ProfilePatch) -> ServiceResult<UserView> {
        let mut errs = Errors::default();
        let email = patch.email.as_deref().and_then(|e| errs.check("email", Email::parse(e)));
        let name = patch.name.as_ref().map(|n| parse_name(n.as_deref(), &mut errs));
        errs.finish()?;
        if let Some(e) = &email {
            self.confirm_email_change(id, e, patch.current_password.as_deref()).await?;
        }
        let tx = self.db.begin().await?;
        let current = users::Entity::find_by_id(id).lock_exclusive().one(&tx).await?.ok_or(ServiceError::not_found("user"))?;
        let old = UserView::from(current.clone());
        let mut am: users::ActiveModel = current.into();
        if let Some(e) = email {
            am.email = Set(e.as_str().to_owned());
        }
        if let Some(n) = name {
            am.name = Set(n);
        }
        am.updated_at = Set(Utc::now());
        let updated = am.update(&tx).await.map_err(|e| {
            if store::is_unique_violation(&e) {
                ServiceError::conflict("email_taken", "an account with this email already exists")
            } else {
                e.into()
            }
        })?;
        let new = UserView::from(updated);
        audit::record(&tx, meta, Change::new(AuditAction::Update, "user", id).old(&old).new_values(&new)).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Newest accounts first.
    pub async fn list_users(&self, codec: &CursorCodec, role: Option<Role>, page: PageRequest) -> ServiceResult<Page<UserView>> {
        let mut q = users::Entity::find();
        if let Some(c) = &page.cursor {
            let before: Uuid = codec.decode(c)?;
            q = q.filter(users::Column::Id.lt(before));
        }
        if let Some(r) = role {
            q = q.filter(users::Column::Role.eq(r.as_str()));
        }
        let rows = q.order_by_desc(users::Column::Id).limit(page.limit + 1).all(&self.db.reader()).await?;
        Ok(Page::from_rows(rows, page.limit, codec, |u| u.id).map(UserView::from))
    }

    /// Admin-only role change. An admin cannot demote themselves, so the shop always keeps one.
    /// Existing access tokens keep their old role until they expire (ACCESS_TOKEN_TTL_SECONDS).
    pub async fn set_role(&self, meta: &RequestMeta, id: Uuid, role: Role) -> ServiceResult<UserView> {
        if meta.actor.is_some_and(|a| a.id == id) && role != Role::Admin {
            return Err(ServiceError::conflict("cannot_demote_self", "an admin cannot remove their own admin role"));
        }
        let tx = self.db.begin().await?;
        let current = users::Entity::find_by_id(id).lock_exclusive().one(&tx).await?.ok_or(ServiceError::not_found("user"))?;
        let old = UserView::from(current.clone());
        let mut am: users::ActiveModel = current.into();
        am.role = Set(role.as_str().to_owned());
        am.updated_at = Set(Utc::now());
        let new = UserView::from(am.update(&tx).await?);
        let change = Change::new(AuditAction::AdminAction, "user", id)
            .old(serde_json::json!({"role": old.role}))
            .new_values(serde_json::json!({"role": new.role}));
        audit::record(&tx, meta, change).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Bootstraps an admin from the CLI: creates the account, or promotes an existing one and
    /// sets its password.
    pub async fn create_admin(&self, meta: &RequestMeta, email: &str, password: &str) -> ServiceResult<UserView> {
        let mut errs = Errors::default();
        let email = errs.check("email", Email::parse(email));
        let password = errs.check("password", Password::parse(password));
        errs.finish()?;
        let (email, password) = (email.expect("checked"), password.expect("checked"));
        let password_hash = password::hash(&password).await?;
        let now = Utc::now();
        let tx = self.db.begin().await?;
        let existing = users::Entity::find().filter(users::Column::Email.eq(email.as_str())).one(&tx).await?;
        let (old, am) = match existing {
            Some(u) => {
                let old = serde_json::json!({"role": u.role});
                let mut am: users::ActiveModel = u.into();
                am.role = Set(Role::Admin.as_str().into());
                am.password_hash = Set(password_hash);
                am.updated_at = Set(now);
                (Some(old), am.update(&tx).await?)
            }
            None => {
                let am = users::ActiveModel {
                    id: Set(domain::new_id()),
                    email: Set(email.as_str().into()),
                    password_hash: Set(password_hash),
                    name: Set(None),
                    role: Set(Role::Admin.as_str().into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                };
                (None, am.insert(&tx).await?)
            }
        };
        let view = UserView::from(am);
        let mut change =
            Change::new(AuditAction::AdminAction, "user", view.id).new_values(serde_json::json!({"role": "admin", "email": view.email}));
        change.old = old;
        audit::record(&tx, meta, change).await?;
        tx.commit().await?;
        Ok(view)
    }
}
