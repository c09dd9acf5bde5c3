//! Plain types and rules with no I/O. A value of a domain type is valid by construction:
//! parse once at the edge, then pass the typed value around.

mod address;
mod audit;
mod catalog;
mod email;
mod identity;
mod money;
mod order;
mod slug;

pub use address::{Address, AddressInput, CountryCode};
pub use audit::AuditAction;
pub use catalog::{Availability, ProductStatus, Sku, fold_for_search};
pub use email::Email;
pub use identity::{Password, Role};
pub use money::{Currency, Money};
pub use order::{InvalidTransition, OrderEvent, OrderStatus};
pub use slug::Slug;

/// Why a raw value was refused. The message is safe to show to the client; the caller names
/// the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Identifiers are UUIDv7: time-ordered, so keyset pagination by id follows creation order.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
