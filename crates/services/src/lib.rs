//! Services: one module per bounded context. A service owns its tables and its transactions;
//! nothing here knows about HTTP.

pub mod audit;
pub mod carts;
pub mod catalog;
pub mod contention;
pub mod context;
pub mod error;
pub mod idempotency;
pub mod identity;
pub mod inventory;
pub mod jobs;
pub mod media;
pub mod notifications;
pub mod orders;
pub mod outbox;
pub mod pagination;
pub mod payments;
pub mod seed;
pub mod shipping;

pub use context::{Actor, RequestMeta};
pub use error::{FieldError, ServiceError, ServiceResult};
