use crate::ParseError;
use serde::{Deserialize, Serialize};

/// Who may do what. Staff run the shop; admins also manage users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Staff,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "customer" => Ok(Self::Customer),
            "staff" => Ok(Self::Staff),
            "admin" => Ok(Self::Admin),
            _ => Err(ParseError::new("must be one of customer, staff, admin")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Staff => "staff",
            Self::Admin => "admin",
        }
    }

    /// Roles are ordered: admin includes everything staff may do.
    pub fn at_least(self, required: Role) -> bool {
        self >= required
    }
}

/// A password that meets the policy (NIST 800-63B: length, not composition rules). Its `Debug`
/// never shows the value, so it cannot leak through a log line.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(ParseError::new(format!("must be at least {} characters", Self::MIN_CHARS)));
        }
        if n > Self::MAX_CHARS {
            return Err(ParseError::new(format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.at_least(Role::Staff));
        assert!(!Role::Customer.at_least(Role::Staff));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn password_policy_and_redaction() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
