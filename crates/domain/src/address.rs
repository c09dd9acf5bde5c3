use crate::ParseError;
use serde::{Deserialize, Serialize};

/// ISO-3166-1 alpha-2 country code (upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

// All officially assigned ISO-3166-1 alpha-2 codes, concatenated.
const COUNTRIES: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

impl CountryCode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let b = raw.as_bytes();
        let known = b.len() == 2 && COUNTRIES.as_bytes().chunks(2).any(|c| c == b);
        if known { Ok(Self([b[0], b[1]])) } else { Err(ParseError::new("must be an ISO-3166 alpha-2 country code, e.g. DE")) }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// A postal address as clients send it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    pub phone: Option<String>,
}

/// A validated postal address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: CountryCode,
    pub phone: Option<String>,
}

fn text(field: &'static str, raw: &str, max: usize, errors: &mut Vec<(&'static str, ParseError)>) -> String {
    let v = raw.trim();
    if v.is_empty() {
        errors.push((field, ParseError::new("must not be empty")));
    } else if v.chars().count() > max || v.chars().any(char::is_control) {
        errors.push((field, ParseError::new(format!("must be at most {max} printable characters"))));
    }
    v.to_owned()
}

impl Address {
    /// Validates every field and reports all problems at once, each with its field name.
    pub fn parse(input: &AddressInput) -> Result<Self, Vec<(&'static str, ParseError)>> {
        let mut errors = Vec::new();
        let name = text("name", &input.name, 200, &mut errors);
        let line1 = text("line1", &input.line1, 200, &mut errors);
        let line2 = input.line2.as_deref().filter(|s| !s.trim().is_empty()).map(|s| text("line2", s, 200, &mut errors));
        let city = text("city", &input.city, 100, &mut errors);
        let postal_code = text("postal_code", &input.postal_code, 20, &mut errors);
        let phone = input.phone.as_deref().filter(|s| !s.trim().is_empty()).map(|s| text("phone", s, 32, &mut errors));
        if let Some(p) = &phone
            && !p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            errors.push(("phone", ParseError::new("must contain only digits, spaces and + - ( ) .")));
        }
        let country = CountryCode::parse(input.country.trim()).map_err(|e| errors.push(("country", e)));
        match country {
            Ok(country) if errors.is_empty() => Ok(Self { name, line1, line2, city, postal_code, country, phone }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_validation_reports_every_field() {
        let bad = AddressInput { country: "XX".into(), ..Default::default() };
        let errs = Address::parse(&bad).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["name", "line1", "city", "postal_code", "country"]);
        let ok = AddressInput {
            name: "Ann".into(),
            line1: "1 Main St".into(),
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
            ..Default::default()
        };
        assert_eq!(Address::parse(&ok).unwrap().country.as_str(), "DE");
    }
}
