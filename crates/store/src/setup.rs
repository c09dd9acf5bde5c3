//! Start-up work that two instances must not do at the same time. Instances of a scale-out
//! deployment usually start together (a rollout, `docker compose up --scale`), and each
//! migrates, and perhaps seeds, a database the others share. Without a lock both run the
//! same `CREATE TABLE` and one of them fails to start; or both find the catalog empty and
//! seed it twice.

use crate::{Db, StoreError};
use platform::config::Backend;
use sea_orm::{
    DbErr, RuntimeErr,
    sqlx::{self, Connection},
};
use std::sync::Arc;

/// The advisory lock's key ("valuva" in ASCII). Advisory locks are per database, so two
/// deployments on one PostgreSQL server with databases of their own do not wait for each other.
const SETUP_LOCK_KEY: i64 = 0x76_61_6c_75_76_61;

/// Held while an instance migrates and seeds; instances starting together take turns, and the
/// later ones find the schema current and the catalog seeded. On PostgreSQL it is a session
/// advisory lock on a connection of its own, outside the pool: no statement timeout cuts the
/// wait for it short, and no pooled connection can keep it by mistake (closing the connection,
/// or the process dying, releases it). It needs a session of its own on the server, so the URL
/// must reach PostgreSQL directly or through a session-pooling proxy (a transaction-pooling
/// pgbouncer would keep the lock on a shared server connection). SQLite serves one instance:
/// there is nothing to hold.
#[must_use = "the lock is held until released"]
pub struct SetupLock(Option<sqlx::PgConnection>);

fn conn_err(e: sqlx::Error) -> StoreError {
    StoreError::Connect(DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))))
}

impl Db {
    /// Waits until no other instance holds the setup lock, then takes it.
    pub async fn setup_lock(&self) -> Result<SetupLock, StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(SetupLock(None));
        }
        let settings = self.primary_settings();
        let connect = sqlx::PgConnection::connect(settings.url.expose());
        let mut conn = tokio::time::timeout(settings.connect_timeout, connect)
            .await
            .map_err(|_| conn_err(sqlx::Error::PoolTimedOut))?
            .map_err(conn_err)?;
        // The wait lasts as long as the other instance's migrations do: a statement timeout
        // set for the role must not cut it short.
        sqlx::query("SET statement_timeout = 0").execute(&mut conn).await.map_err(conn_err)?;
        let try_lock = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)").bind(SETUP_LOCK_KEY);
        if !try_lock.fetch_one(&mut conn).await.map_err(conn_err)? {
            tracing::info!("another instance is migrating or seeding the database; waiting for it");
            sqlx::query("SELECT pg_advisory_lock($1)").bind(SETUP_LOCK_KEY).execute(&mut conn).await.map_err(conn_err)?;
        }
        Ok(SetupLock(Some(conn)))
    }

    /// Applies pending migrations, holding the setup lock while it does.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let lock = self.setup_lock().await?;
        let done = self.migrate_holding(&lock).await;
        lock.release().await;
        done
    }
}

impl SetupLock {
    pub async fn release(self) {
        if let Some(conn) = self.0 {
            // Closing the session releases its advisory locks.
            let _ = conn.close().await;
        }
    }
}
