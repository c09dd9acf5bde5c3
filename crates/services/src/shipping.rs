//! Shipping zones (by country) and their rates: flat, weight bands, free above an amount.

use crate::{
    RequestMeta, ServiceError, ServiceResult,
    audit::{self, Change},
    catalog::MoneyView,
    contention::with_retry,
    error::Errors,
};
use bytes::Bytes;
use chrono::Utc;
use domain::{AuditAction, CountryCode, Money};
use platform::cache::{Cache, Invalidation, Space};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::{Deserialize, Serialize};
use store::{
    Db,
    entities::{shipping_rates as rates, shipping_zones as zones},
};
use utoipa::ToSchema;
use uuid::Uuid;

/// The cached [`RateTable`] (one key, dropped by every zone or rate change): checkout and the
/// cart's shipping options quote from it without going to the database.
pub const RATES: Space = Space { name: "shipping_rates", whole: false };
const TABLE_KEY: &str = "table";

/// Zones and rates as read at one moment.
#[derive(Serialize, Deserialize)]
pub struct RateTable {
    zones: Vec<zones::Model>,
    rates: Vec<rates::Model>,
}

impl RateTable {
    /// The rates offered for a destination, weight and subtotal, cheapest first: those of the
    /// zone listing the country, else of the catch-all zone (`*`).
    pub fn quotes(&self, country: &str, weight_grams: i64, subtotal: Money) -> Vec<Quote> {
        let listed = |z: &zones::Model| serde_json::from_str::<Vec<String>>(&z.countries).unwrap_or_default();
        let all = &self.zones;
        let zone =
            all.iter().find(|z| listed(z).iter().any(|c| c == country)).or_else(|| all.iter().find(|z| listed(z).iter().any(|c| c == "*")));
        let Some(zone) = zone else { return Vec::new() };
        let mut quotes: Vec<Quote> = self
            .rates
            .iter()
            .filter(|r| r.zone_id == zone.id)
            .filter(|r| r.currency == subtotal.currency().code())
            .filter(|r| {
                r.min_weight_grams.is_none_or(|lo| weight_grams >= lo as i64)
                    && r.max_weight_grams.is_none_or(|hi| weight_grams < hi as i64)
            })
            .map(|r| {
                let free = r.free_above.is_some_and(|t| subtotal.amount() >= t);
                Quote {
                    id: r.id,
                    name: r.name.clone(),
                    price: MoneyView { amount: if free { 0 } else { r.price }, currency: r.currency.clone() },
                }
            })
            .collect();
        quotes.sort_by_key(|q| q.price.amount);
        quotes
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    #[schema(example = "Standard")]
    pub name: String,
    pub price: MoneyView,
    /// Inclusive lower bound of the cart weight this rate applies to.
    pub min_weight_grams: Option<i32>,
    /// Exclusive upper bound.
    pub max_weight_grams: Option<i32>,
    /// The rate is free when the cart subtotal reaches this amount (minor units).
    pub free_above: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneInput {
    #[schema(example = "EU")]
    pub name: String,
    /// ISO-3166 alpha-2 codes; `["*"]` covers every country.
    #[schema(example = json!(["DE", "FR"]))]
    pub countries: Vec<String>,
    pub rates: Vec<RateInput>,
}

/// Absent fields stay; `rates` replaces the zone's rates.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ZonePatch {
    pub name: Option<String>,
    pub countries: Option<Vec<String>>,
    pub rates: Option<Vec<RateInput>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RateView {
    pub id: Uuid,
    pub name: String,
    pub price: MoneyView,
    pub min_weight_grams: Option<i32>,
    pub max_weight_grams: Option<i32>,
    pub free_above: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ZoneView {
    pub id: Uuid,
    pub name: String,
    pub countries: Vec<String>,
    pub rates: Vec<RateView>,
}

/// A rate offered for a cart: its price already reflects free-shipping thresholds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quote {
    pub id: Uuid,
    pub name: String,
    pub price: MoneyView,
}

#[derive(Clone)]
pub struct ShippingService {
    db: Db,
    cache: Option<Cache>,
}

fn parse_countries(errs: &mut Errors, raw: &[String]) -> Vec<String> {
    if raw.is_empty() || raw.len() > 300 {
        errs.push("countries", "must list 1-300 country codes, or [\"*\"]");
    }
    if raw == ["*"] {
        return vec!["*".into()];
    }
    let mut countries: Vec<String> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, c)| errs.check(&format!("countries[{i}]"), CountryCode::parse(c)).map(|c| c.as_str().to_owned()))
        .collect();
    let mut seen = std::collections::HashSet::new();
    countries.retain(|c| seen.insert(c.clone()));
    countries
}

/// A destination is quoted from one zone only, so a country (or `*`) listed by two zones would
/// never be quoted from the newer one: refused, naming the zone that has it. Callers run this
/// in a SERIALIZABLE transaction, so two admins adding the same country at once cannot both
/// pass (the loser is re-run and then refused).
async fn refuse_overlap<C: ConnectionTrait>(conn: &C, except: Option<Uuid>, countries: &[String]) -> ServiceResult<()> {
    for zone in zones::Entity::find().order_by_asc(zones::Column::Id).all(conn).await? {
        let listed: Vec<String> = serde_json::from_str(&zone.countries).unwrap_or_default();
        let shared: Vec<&str> = countries.iter().filter(|c| listed.contains(c)).map(String::as_str).collect();
        if Some(zone.id) != except && !shared.is_empty() {
            let detail = format!(
                "{} already in shipping zone \"{}\" ({}): a destination is quoted from one zone",
                shared.join(", "),
                zone.name,
                zone.id
            );
            return Err(ServiceError::conflict("zone_overlap", detail));
        }
    }
    Ok(())
}

fn parse_rates(errs: &mut Errors, raw: &[RateInput]) -> Vec<(RateInput, Money)> {
    if raw.is_empty() || raw.len() > 20 {
        errs.push("rates", "must have 1-20 rates");
    }
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let f = format!("rates[{i}]");
        if r.name.trim().is_empty() || r.name.chars().count() > 200 {
            errs.push(&format!("{f}.name"), "must be 1-200 characters");
        }
        let price = crate::catalog::parse_money(errs, &format!("{f}.price"), &r.price);
        if r.min_weight_grams.is_some_and(|w| w < 0) || r.max_weight_grams.is_some_and(|w| w <= 0) {
            errs.push(&format!("{f}.max_weight_grams"), "weights must be positive");
        }
        if let (Some(lo), Some(hi)) = (r.min_weight_grams, r.max_weight_grams)
            && lo >= hi
        {
            errs.push(&format!("{f}.max_weight_grams"), "must be above min_weight_grams");
        }
        if r.free_above.is_some_and(|a| a < 0) {
            errs.push(&format!("{f}.free_above"), "must not be negative");
        }
        if let Some(p) = price {
            out.push((r.clone(), p));
        }
    }
    out
}

async fn insert_rates<C: ConnectionTrait>(conn: &C, zone: Uuid, rs: &[(RateInput, Money)]) -> ServiceResult<()> {
    for (i, (r, price)) in rs.iter().enumerate() {
        let row = rates::ActiveModel {
            id: Set(domain::new_id()),
            zone_id: Set(zone),
            name: Set(r.name.trim().to_owned()),
            price: Set(price.amount()),
            currency: Set(price.currency().code().to_owned()),
            min_weight_grams: Set(r.min_weight_grams),
            max_weight_grams: Set(r.max_weight_grams),
            free_above: Set(r.free_above),
            position: Set(i as i32),
        };
        rates::Entity::insert(row).exec_without_returning(conn).await?;
    }
    Ok(())
}

impl ShippingService {
    pub fn new(db: Db, cache: Option<Cache>) -> Self {
        Self { db, cache }
    }

    /// After a committed zone or rate change: quotes everywhere read the new table.
    async fn rates_changed(&self) {
        if let Some(cache) = &self.cache {
            cache.invalidate(Invalidation::default().key(RATES, TABLE_KEY)).await;
        }
    }

    async fn view<C: ConnectionTrait>(&self, conn: &C, z: zones::Model) -> ServiceResult<ZoneView> {
        let rs = rates::Entity::find().filter(rates::Column::ZoneId.eq(z.id)).order_by_asc(rates::Column::Position).all(conn).await?;
        Ok(ZoneView {
            id: z.id,
            name: z.name,
            countries: serde_json::from_str(&z.countries).unwrap_or_default(),
            rates: rs
                .into_iter()
                .map(|r| RateView {
                    id: r.id,
                    name: r.name,
                    price: MoneyView { amount: r.price, currency: r.currency },
                    min_weight_grams: r.min_weight_grams,
                    max_weight_grams: r.max_weight_grams,
                    free_above: r.free_above,
                })
                .collect(),
        })
    }

    pub async fn list(&self) -> ServiceResult<Vec<ZoneView>> {
        let all = zones::Entity::find().order_by_asc(zones::Column::Id).all(self.db.primary()).await?;
        let mut out = Vec::with_capacity(all.len());
        for z in all {
            out.push(self.view(self.db.primary(), z).await?);
        }
        Ok(out)
    }

    pub async fn get(&self, id: Uuid) -> ServiceResult<ZoneView> {
        let z = zones::Entity::find_by_id(id).one(self.db.primary()).await?.ok_or(ServiceError::not_found("shipping zone"))?;
        self.view(self.db.primary(), z).await
    }

    pub async fn create(&self, meta: &RequestMeta, input: ZoneInput) -> ServiceResult<ZoneView> {
        let mut errs = Errors::default();
        if input.name.trim().is_empty() || input.name.chars().count() > 200 {
            errs.push("name", "must be 1-200 characters");
        }
        let countries = parse_countries(&mut errs, &input.countries);
        let rs = parse_rates(&mut errs, &input.rates);
        errs.finish()?;
        let name = input.name.trim();
        let view = with_retry(|| async {
            let tx = self.db.begin_serializable().await?;
            refuse_overlap(&tx, None, &countries).await?;
            let now = Utc::now();
            let id = domain::new_id();
            let zone = zones::ActiveModel {
                id: Set(id),
                name: Set(name.to_owned()),
                countries: Set(serde_json::to_string(&countries).unwrap_or_default()),
                created_at: Set(now),
                updated_at: Set(now),
            };
            zones::Entity::insert(zone).exec_without_returning(&tx).await?;
            insert_rates(&tx, id, &rs).await?;
            let z = zones::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("shipping zone"))?;
            let view = self.view(&tx, z).await?;
            audit::record(&tx, meta, Change::new(AuditAction::Create, "shipping_zone", id).new_values(&view)).await?;
            tx.commit().await?;
            Ok(view)
        })
        .await?;
        self.rates_changed().await;
        Ok(view)
    }

    pub async fn update(&self, meta: &RequestMeta, id: Uuid, patch: ZonePatch) -> ServiceResult<ZoneView> {
        let mut errs = Errors::default();
        if patch.name.as_ref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > 200) {
            errs.push("name", "must be 1-200 characters");
        }
        let countries = patch.countries.as_deref().map(|c| parse_countries(&mut errs, c));
        let rs = patch.rates.as_deref().map(|r| parse_rates(&mut errs, r));
        errs.finish()?;
        let new = with_retry(|| async {
            let tx = self.db.begin_serializable().await?;
            let z = zones::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("shipping zone"))?;
            if let Some(c) = &countries {
                refuse_overlap(&tx, Some(id), c).await?;
            }
            let old = self.view(&tx, z.clone()).await?;
            let mut am: zones::ActiveModel = z.into();
            if let Some(n) = &patch.name {
                am.name = Set(n.trim().to_owned());
            }
            if let Some(c) = &countries {
                am.countries = Set(serde_json::to_string(c).unwrap_or_default());
            }
            am.updated_at = Set(Utc::now());
            let z = sea_orm::ActiveModelTrait::update(am, &tx).await?;
            if let Some(rs) = &rs {
                rates::Entity::delete_many().filter(rates::Column::ZoneId.eq(id)).exec(&tx).await?;
                insert_rates(&tx, id, rs).await?;
            }
            let new = self.view(&tx, z).await?;
            audit::record(&tx, meta, Change::new(AuditAction::Update, "shipping_zone", id).old(&old).new_values(&new)).await?;
            tx.commit().await?;
            Ok(new)
        })
        .await?;
        self.rates_changed().await;
        Ok(new)
    }

    pub async fn delete(&self, meta: &RequestMeta, id: Uuid) -> ServiceResult<()> {
        let tx = self.db.begin().await?;
        // Read through the transaction: on SQLite it holds the one writer connection.
        let z = zones::Entity::find_by_id(id).one(&tx).await?.ok_or(ServiceError::not_found("shipping zone"))?;
        let old = self.view(&tx, z).await?;
        // A concurrent delete of the same zone waited for the row and finds it gone: 404.
        if zones::Entity::delete_by_id(id).exec(&tx).await?.rows_affected == 0 {
            return Err(ServiceError::not_found("shipping zone"));
        }
        audit::record(&tx, meta, Change::new(AuditAction::Delete, "shipping_zone", id).old(&old)).await?;
        tx.commit().await?;
        self.rates_changed().await;
        Ok(())
    }

    /// Rates that apply to a destination, cart weight and subtotal, cheapest first. A zone
    /// naming the country wins over the `*` zone.
    pub async fn quotes(&self, country: &str, weight_grams: i64, subtotal: Money) -> ServiceResult<Vec<Quote>> {
        Ok(self.table().await?.quotes(country, weight_grams, subtotal))
    }

    /// Every zone and rate (two small tables, changed rarely), from the cache when there is
    /// one. Checkout reads them before its transaction so the transaction stays short.
    pub async fn table(&self) -> ServiceResult<RateTable> {
        // The primary, not the replica: a fill right after a change must not cache the old table.
        let load = || async {
            let conn = self.db.primary();
            let zones = zones::Entity::find().order_by_asc(zones::Column::Id).all(conn).await?;
            let rates = rates::Entity::find().order_by_asc(rates::Column::Position).all(conn).await?;
            let json = serde_json::to_vec(&RateTable { zones, rates }).map_err(ServiceError::internal)?;
            Ok::<_, ServiceError>(Bytes::from(json))
        };
        let bytes = match &self.cache {
            Some(cache) => cache.get_or_load(RATES, TABLE_KEY, load).await.map_err(ServiceError::from_shared)?,
            None => load().await?,
        };
        serde_json::from_slice(&bytes).map_err(ServiceError::internal)
    }

    /// The demo zone: every country, a free-above-50 standard rate and an express rate.
    pub async fn seed_demo(&self, meta: &RequestMeta) -> ServiceResult<()> {
        if zones::Entity::find().one(self.db.primary()).await?.is_some() {
            return Ok(());
        }
        let eur = |amount| MoneyView { amount, currency: "EUR".into() };
        let rate = |name: &str, price, free_above| RateInput {
            name: name.into(),
            price: eur(price),
            min_weight_grams: None,
            max_weight_grams: None,
            free_above,
        };
        let zone = ZoneInput {
            name: "Worldwide".into(),
            countries: vec!["*".into()],
            rates: vec![rate("Standard", 495, Some(5000)), rate("Express", 1495, None)],
        };
        self.create(meta, zone).await.map(|_| ())
    }
}
