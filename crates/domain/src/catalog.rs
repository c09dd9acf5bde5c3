use crate::ParseError;
use serde::{Deserialize, Serialize};

/// A stock-keeping unit: 1–64 chars of upper-case letters, digits, `-`, `_` and `.`.
/// Input is trimmed and upper-cased, so `ts-red-m` and `TS-RED-M` are the same SKU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim().to_ascii_uppercase();
        let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok { Ok(Self(s)) } else { Err(ParseError::new("must be 1-64 letters, digits, '-', '_' or '.'")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Publication state. The storefront sees only `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Draft,
    Active,
    Archived,
}

impl ProductStatus {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "draft" => Ok(Self::Draft),
            "active" => Ok(Self::Active),
            "archived" => Ok(Self::Archived),
            _ => Err(ParseError::new("must be one of draft, active, archived")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }
}

/// What the storefront shows instead of exact stock counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    InStock,
    LowStock,
    OutOfStock,
}

impl Availability {
    pub fn of(stock: i64, low_threshold: i64) -> Self {
        match stock {
            s if s <= 0 => Self::OutOfStock,
            s if s <= low_threshold => Self::LowStock,
            _ => Self::InStock,
        }
    }
}

/// Text folded for search: lower case, accents removed, punctuation turned into spaces.
/// Indexing and querying both go through it, so "Crème" finds "creme" on every backend.
pub fn fold_for_search(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let mut folded = String::new();
        folded.extend(crate::slug::fold_accent(c));
        for f in folded.chars() {
            if f.is_alphanumeric() {
                out.extend(f.to_lowercase());
            } else if !out.ends_with(' ') {
                out.push(' ');
            }
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_and_folding() {
        assert_eq!(Sku::parse(" ts-red-m ").unwrap().as_str(), "TS-RED-M");
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse("").is_err());
        assert_eq!(fold_for_search("Crème Brûlée, 100%!"), "creme brulee 100");
        assert_eq!(Availability::of(0, 5), Availability::OutOfStock);
        assert_eq!(Availability::of(5, 5), Availability::LowStock);
        assert_eq!(Availability::of(6, 5), Availability::InStock);
    }
}
