use crate::ParseError;

/// An ISO-4217 currency this shop can price in, with its number of minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u8,
}

// Active ISO-4217 codes in common use for online commerce. Extending the list is a one-line
// change; an unknown code is refused rather than guessed.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == raw)
            .map(|&(code, minor_units)| Self { code, minor_units })
            .ok_or_else(|| ParseError::new("must be a supported ISO-4217 currency code, e.g. EUR"))
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    pub fn minor_units(self) -> u8 {
        self.minor_units
    }
}

/// An amount in integer minor units (cents) of one currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    /// Prices are never negative; a zero price (a free gift) is allowed.
    pub fn price(amount: i64, currency: Currency) -> Result<Self, ParseError> {
        if amount < 0 {
            return Err(ParseError::new("amount must not be negative"));
        }
        Ok(Self { amount, currency })
    }

    pub fn zero(currency: Currency) -> Self {
        Self { amount: 0, currency }
    }

    pub fn amount(self) -> i64 {
        self.amount
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// Sum of two amounts of one currency; `None` on a currency mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency).then_some(())?;
        Some(Self { amount: self.amount.checked_add(other.amount)?, currency: self.currency })
    }

    pub fn checked_mul(self, qty: i64) -> Option<Money> {
        Some(Self { amount: self.amount.checked_mul(qty)?, currency: self.currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_rules() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Currency::parse("XXX").is_err());
        assert!(Currency::parse("eur").is_err());
        assert!(Money::price(-1, eur).is_err());
        let a = Money::price(1999, eur).unwrap();
        assert_eq!(a.checked_add(a).unwrap().amount(), 3998);
        let usd = Money::price(1, Currency::parse("USD").unwrap()).unwrap();
        assert!(a.checked_add(usd).is_none());
        assert!(Money::price(i64::MAX, eur).unwrap().checked_mul(2).is_none());
    }
}
