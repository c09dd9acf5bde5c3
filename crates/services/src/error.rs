use sea_orm::{DbErr, RuntimeErr};

/// One field's problem, as shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Everything a service can refuse or fail with. Each variant maps to one HTTP status in the
/// http layer; `Internal` carries the cause for the log, never for the client.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// 409 `insufficient_stock`, naming each variant that is short.
    #[error("{detail}")]
    InsufficientStock { detail: String, variants: Vec<FieldError> },
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    /// 415: the body is not of a type this endpoint takes.
    #[error("{detail}")]
    Unsupported { detail: String },
    /// A serialization failure, deadlock or busy database: the transaction did nothing and
    /// may run again. Retried by the callers that use SERIALIZABLE; a 503 if it escapes.
    #[error("contention: {0}")]
    Contention(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest { code, detail: detail.into() }
    }
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unauthorized { code, detail: detail.into() }
    }
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden { code, detail: detail.into() }
    }
    pub fn not_found(what: &'static str) -> Self {
        Self::NotFound { what }
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

impl From<DbErr> for ServiceError {
    fn from(e: DbErr) -> Self {
        match &e {
            // The database is down or the pool is exhausted: a dependency problem (503),
            // which clears by itself when the database is back.
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable { code: "database_unavailable", detail: "the database is unavailable; try again shortly".into() }
            }
            DbErr::Query(RuntimeErr::SqlxError(s)) | DbErr::Exec(RuntimeErr::SqlxError(s))
                if matches!(&**s, sea_orm::sqlx::Error::Io(_) | sea_orm::sqlx::Error::PoolTimedOut | sea_orm::sqlx::Error::PoolClosed) =>
            {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable { code: "database_unavailable", detail: "the database is unavailable; try again shortly".into() }
            }
            _ if store::db::is_retryable(&e) => Self::Contention(e.to_string()),
            // A row the request names was deleted meanwhile (or, for a signed token, before
            // it expired): the caller's reference is stale, nothing broke.
            _ if store::is_foreign_key_violation(&e) => {
                tracing::warn!(error = %e, "a write referred to a row that does not exist");
                Self::conflict("reference_gone", "a record this request refers to no longer exists")
            }
            _ => Self::Internal(e.to_string()),
        }
    }
}

/// Collects field errors from parsing several inputs, then fails once with all of them.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn check<T>(&mut self, field: &str, r: Result<T, domain::ParseError>) -> Option<T> {
        r.map_err(|e| self.0.push(FieldError::new(field, e.0))).ok()
    }
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
    pub fn finish(self) -> ServiceResult<()> {
        if self.0.is_empty() { Ok(()) } else { Err(ServiceError::Validation(self.0)) }
    }
}
