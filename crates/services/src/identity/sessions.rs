use super::{IdentityService, UserView, hash_token, new_secret_token, password};
use crate::{
    Actor, RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    error::Errors,
};
use chrono::{DateTime, Utc};
use domain::{AuditAction, Email, Password, Role};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use store::entities::{password_reset_tokens as resets, refresh_tokens as rt, users};
use uuid::Uuid;

/// The least time between two reset emails to one account.
const RESET_EMAIL_INTERVAL: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What a successful register/login/refresh hands back.
#[derive(Debug, Clone)]
pub struct AuthSession {
    pub user: UserView,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    /// Seconds until the refresh token expires (its lifetime, or less near the session's end).
    pub refresh_expires_in: u64,
}

fn invalid_credentials() -> ServiceError {
    ServiceError::unauthorized("invalid_credentials", "email or password is incorrect")
}

fn session_expired() -> ServiceError {
    ServiceError::unauthorized("session_expired", "the session is older than its maximum age; sign in again")
}

/// When the session a refresh-token family belongs to began. The family id is a UUIDv7 minted
/// at sign-in (register or login), so it carries that moment: no column, no extra read.
fn family_started(family: Uuid) -> Option<DateTime<Utc>> {
    let (secs, nanos) = family.get_timestamp()?.to_unix();
    DateTime::from_timestamp(secs as i64, nanos)
}

fn invalid_refresh() -> ServiceError {
    ServiceError::unauthorized("invalid_refresh_token", "the refresh token is invalid, expired or revoked")
}

impl IdentityService {
    pub async fn register(&self, meta: &RequestMeta, email: &str, password: &str, name: Option<&str>) -> ServiceResult<AuthSession> {
        let mut errs = Errors::default();
        let email = errs.check("email", Email::parse(email));
        let password = errs.check("password", Password::parse(password));
        let name = super::users::parse_name(name, &mut errs);
        errs.finish()?;
        let (email, password) = (email.expect("checked"), password.expect("checked"));
        let password_hash = password::hash(&password).await?;
        let now = Utc::now();
        let user = users::Model {
            id: domain::new_id(),
            email: email.as_str().to_owned(),
            password_hash,
            name,
            role: Role::Customer.as_str().into(),
            created_at: now,
            updated_at: now,
        };
        let tx = self.db.begin().await?;
        if let Err(e) = users::Entity::insert(users::ActiveModel::from(user.clone())).exec_without_returning(&tx).await {
            return Err(if store::is_unique_violation(&e) {
                ServiceError::conflict("email_taken", "an account with this email already exists")
            } else {
                e.into()
            });
        }
        let view = UserView::from(user);
        let meta = meta.with_actor(Actor { id: view.id, role: view.role });
        audit::record(&tx, &meta, Change::new(AuditAction::Create, "user", view.id).new_values(&view)).await?;
        let session = self.start_session(&tx, view, Uuid::now_v7()).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Same answer, and one argon2 verification either way, for an unknown email and a wrong
    /// password: neither timing nor wording tells which it was.
    pub async fn login(&self, meta: &RequestMeta, email: &str, password: &str) -> ServiceResult<AuthSession> {
        let user = match Email::parse(email) {
            Ok(e) => users::Entity::find().filter(users::Column::Email.eq(e.as_str())).one(self.db.primary()).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map_or(&*self.dummy_hash, |u| u.password_hash.as_str());
        let ok = password::verify(password, stored).await;
        let Some(user) = user.filter(|_| ok) else {
            tracing::warn!(event = "login_failed", "login failed");
            return Err(invalid_credentials());
        };
        let view = UserView::from(user);
        let tx = self.db.begin().await?;
        let meta = meta.with_actor(Actor { id: view.id, role: view.role });
        audit::record(&tx, &meta, Change::new(AuditAction::Login, "user", view.id)).await?;
        let session = self.start_session(&tx, view, Uuid::now_v7()).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Rotates: the presented token is spent and a new one of the same family is issued. A
    /// spent token presented again means it was stolen (or the client is broken): the whole
    /// family is revoked and every holder must log in again.
    pub async fn refresh(&self, meta: &RequestMeta, token: &str) -> ServiceResult<AuthSession> {
        let now = Utc::now();
        let found = rt::Entity::find().filter(rt::Column::TokenHash.eq(hash_token(token))).one(self.db.primary()).await?;
        let Some(found) = found else {
            return Err(invalid_refresh());
        };
        if found.revoked_at.is_some() {
            return Err(invalid_refresh());
        }
        // Before the token's own expiry, which is capped at the session's end (see
        // `start_session`): a session that ran out says so. This also ends sessions whose
        // tokens were issued before that cap existed.
        let ends = family_started(found.family_id).ok_or_else(invalid_refresh)? + self.tokens.session_max_age();
        if ends <= now {
            return Err(session_expired());
        }
        if found.expires_at <= now {
            return Err(invalid_refresh());
        }
        let tx = self.db.begin().await?;
        // Conditional update: of two concurrent refreshes with one token, exactly one wins.
        let spent = rt::Entity::update_many()
            .col_expr(rt::Column::UsedAt, Expr::value(now))
            .filter(rt::Column::Id.eq(found.id))
            .filter(rt::Column::UsedAt.is_null())
            .filter(rt::Column::RevokedAt.is_null())
            .exec(&tx)
            .await?
            .rows_affected;
        if spent == 0 {
            tx.rollback().await?;
            self.revoke_family(meta, found.user_id, found.family_id, "refresh_token_reuse").await?;
            return Err(ServiceError::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been revoked",
            ));
        }
        let user = users::Entity::find_by_id(found.user_id).one(&tx).await?.ok_or_else(invalid_refresh)?;
        let session = self.start_session(&tx, UserView::from(user), found.family_id).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Ends the session the token belongs to. Unknown tokens are ignored (logout is idempotent).
    pub async fn logout(&self, meta: &RequestMeta, token: &str) -> ServiceResult<()> {
        let found = rt::Entity::find().filter(rt::Column::TokenHash.eq(hash_token(token))).one(self.db.primary()).await?;
        if let Some(t) = found.filter(|t| t.revoked_at.is_none()) {
            self.revoke_family(meta, t.user_id, t.family_id, "logout").await?;
        }
        Ok(())
    }

    async fn revoke_family(&self, meta: &RequestMeta, user_id: Uuid, family: Uuid, reason: &str) -> ServiceResult<()> {
        let tx = self.db.begin().await?;
        rt::Entity::update_many()
            .col_expr(rt::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(rt::Column::FamilyId.eq(family))
            .filter(rt::Column::RevokedAt.is_null())
            .exec(&tx)
            .await?;
        let role = users::Entity::find_by_id(user_id).one(&tx).await?.and_then(|u| Role::parse(&u.role).ok()).unwrap_or(Role::Customer);
        let meta = meta.with_actor(Actor { id: user_id, role });
        let change = Change::new(AuditAction::Logout, "user", user_id).new_values(serde_json::json!({"reason": reason, "session": family}));
        audit::record(&tx, &meta, change).await?;
        tx.commit().await?;
        if reason != "logout" {
            tracing::warn!(event = "session_revoked", user_id = %user_id, reason, "refresh token family revoked");
        }
        Ok(())
    }

    async fn start_session<C: ConnectionTrait>(&self, conn: &C, user: UserView, family: Uuid) -> ServiceResult<AuthSession> {
        let (refresh_token, token_hash) = new_secret_token();
        let now = Utc::now();
        // A refresh token outlives neither its own lifetime nor its session's.
        let session_ends = family_started(family).ok_or_else(invalid_refresh)? + self.tokens.session_max_age();
        let expires_at = (now + self.tokens.refresh_ttl()).min(session_ends);
        rt::ActiveModel {
            id: Set(domain::new_id()),
            user_id: Set(user.id),
            family_id: Set(family),
            token_hash: Set(token_hash),
            expires_at: Set(expires_at),
            created_at: Set(now),
            used_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(conn)
        .await?;
        let access_token = self.tokens.issue_access(user.id, user.role)?;
        let refresh_expires_in = (expires_at - now).num_seconds().max(0) as u64;
        Ok(AuthSession { user, access_token, refresh_token, expires_in: self.tokens.settings.access_ttl_seconds, refresh_expires_in })
    }

    /// Always succeeds from the caller's point of view, so it cannot be used to probe which
    /// emails have accounts. When the account exists, a single-use token is emailed (at most
    /// one a minute).
    pub async fn forgot_password(&self, meta: &RequestMeta, email: &str) -> ServiceResult<()> {
        let email = Email::parse(email).map_err(|e| ServiceError::field("email", e.0))?;
        let Some(user) = users::Entity::find().filter(users::Column::Email.eq(email.as_str())).one(self.db.primary()).await? else {
            return Ok(());
        };
        let now = Utc::now();
        // One email per account per RESET_EMAIL_INTERVAL: the per-address rate limit does not
        // stop someone with many addresses from flooding one inbox. The earlier token works.
        let recent = resets::Entity::find()
            .filter(resets::Column::UserId.eq(user.id))
            .filter(resets::Column::CreatedAt.gt(now - RESET_EMAIL_INTERVAL))
            .one(self.db.primary())
            .await?;
        if recent.is_some() {
            return Ok(());
        }
        let (token, token_hash) = new_secret_token();
        let tx = self.db.begin().await?;
        resets::ActiveModel {
            id: Set(domain::new_id()),
            user_id: Set(user.id),
            token_hash: Set(token_hash),
            expires_at: Set(now + self.reset_ttl),
            created_at: Set(now),
            used_at: Set(None),
        }
        .insert(&tx)
        .await?;
        let change = Change::new(AuditAction::Update, "user", user.id).new_values(serde_json::json!({"password_reset_requested": true}));
        audit::record(&tx, meta, change).await?;
        // Sent by a job, committed with the token: never on this request's path.
        let payload = serde_json::json!({"to": email.as_str(), "token": token, "valid_minutes": self.reset_ttl.num_minutes()});
        crate::jobs::enqueue(&tx, crate::jobs::NewJob::new(crate::notifications::jobs::PASSWORD_RESET, payload).max_attempts(5)).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn reset_password(&self, meta: &RequestMeta, token: &str, new_password: &str) -> ServiceResult<()> {
        let password = Password::parse(new_password).map_err(|e| ServiceError::field("password", e.0))?;
        let invalid = || ServiceError::bad_request("invalid_reset_token", "the reset token is invalid, expired or already used");
        let now = Utc::now();
        let found = resets::Entity::find()
            .filter(resets::Column::TokenHash.eq(hash_token(token)))
            .one(self.db.primary())
            .await?
            .ok_or_else(invalid)?;
        if found.used_at.is_some() || found.expires_at <= now {
            return Err(invalid());
        }
        let password_hash = password::hash(&password).await?;
        let tx = self.db.begin().await?;
        let spent = resets::Entity::update_many()
            .col_expr(resets::Column::UsedAt, Expr::value(now))
            .filter(resets::Column::Id.eq(found.id))
            .filter(resets::Column::UsedAt.is_null())
            .exec(&tx)
            .await?
            .rows_affected;
        if spent == 0 {
            return Err(invalid());
        }
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(found.user_id))
            .exec(&tx)
            .await?;
        // The account's other reset tokens die with this one.
        resets::Entity::update_many()
            .col_expr(resets::Column::UsedAt, Expr::value(now))
            .filter(resets::Column::UserId.eq(found.user_id))
            .filter(resets::Column::UsedAt.is_null())
            .exec(&tx)
            .await?;
        // A new password ends every existing session.
        rt::Entity::update_many()
            .col_expr(rt::Column::RevokedAt, Expr::value(now))
            .filter(rt::Column::UserId.eq(found.user_id))
            .filter(rt::Column::RevokedAt.is_null())
            .exec(&tx)
            .await?;
        let change = Change::new(AuditAction::Update, "user", found.user_id).new_values(serde_json::json!({"password_reset": true}));
        audit::record(&tx, meta, change).await?;
        tx.commit().await?;
        Ok(())
    }
}
