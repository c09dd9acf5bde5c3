//! End-to-end tests over HTTP against a real database. Each test gets a fresh database:
//! a temporary SQLite file by default, or — when `TEST_DATABASE_URL` points at PostgreSQL — a
//! newly created PostgreSQL database that is dropped afterwards. `.ci/run` runs the suite once
//! per backend.

mod support;

mod audit;
mod auth;
mod carts_input;
mod catalog;
mod catalog_input;
mod cli;
mod errors;
mod inventory;
mod jobs;
mod mail;
mod me;
mod ops;
mod orders;
mod orders_concurrency;
mod orders_support;
mod pagination;
mod proxy;
mod replica;
mod roles;
mod round_trips;
mod scale;
mod sentry;
mod shipping;
mod shopify;
mod shutdown;
mod stripe;
mod uploads;
mod writes;
