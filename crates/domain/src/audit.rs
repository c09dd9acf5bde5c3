use crate::ParseError;
use serde::{Deserialize, Serialize};

/// The kinds of event the audit trail records (the seed's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditAction {
    Create,
    Update,
    Delete,
    Login,
    Logout,
    Payment,
    Order,
    Refund,
    Inventory,
    AdminAction,
}

impl AuditAction {
    pub const ALL: [AuditAction; 10] = [
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::Login,
        Self::Logout,
        Self::Payment,
        Self::Order,
        Self::Refund,
        Self::Inventory,
        Self::AdminAction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Login => "LOGIN",
            Self::Logout => "LOGOUT",
            Self::Payment => "PAYMENT",
            Self::Order => "ORDER",
            Self::Refund => "REFUND",
            Self::Inventory => "INVENTORY",
            Self::AdminAction => "ADMIN_ACTION",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(raw)).ok_or_else(|| ParseError::new("unknown audit action"))
    }
}
