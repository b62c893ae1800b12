//! GeoIP: the ISO country of a source address, read from a MaxMind `.mmdb`
//! opened once at start (`BACKEND_GEOIP_DB_PATH`), and per-account country
//! counters for every authenticated request.
//!
//! The request path never waits on this crate: [`CountryCounters::record`]
//! aggregates in memory and a background flusher writes everything in one
//! upsert about once a second and at shutdown. Lookup errors are logged and
//! ignored there; only opening the database at start is fatal.

mod counters;
mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
mod reader;
pub mod schema;
mod settings;
mod store;

pub use counters::CountryCounters;
pub use error::GeoError;
pub use reader::GeoIp;
pub use settings::{Settings, VARIABLES};
pub use store::{CountryCounter, counters_for};
