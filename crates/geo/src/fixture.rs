//! The project's own GeoIP test database (feature `fixture`).
//!
//! A small file in the GeoLite2-Country layout, generated rather than
//! checked in: the IPv4 answers are the ones MaxMind documents for its own
//! test databases (so tests read the same against either), the IPv6 ones sit
//! in the documentation prefix `2001:db8::/32`. IPv4 networks live under
//! `::/96` of an IPv6 tree with the IPv4-mapped (`::ffff:0:0/96`) alias, as
//! in MaxMind's files, so IPv4 and mapped lookups both answer.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use mmdb_writer::{Value, Writer};

use crate::GeoIp;

/// Addresses the fixture answers, with their country.
pub const KNOWN: &[(&str, &str)] = &[
    ("81.2.69.142", "GB"),
    ("216.160.83.56", "US"),
    ("89.160.20.112", "SE"),
    ("67.43.156.1", "BT"),
    ("175.16.199.1", "CN"),
    ("202.196.224.1", "PH"),
    ("2001:db8::1", "DE"),
    ("2001:db8:2::1", "JP"),
];

/// Addresses the fixture has no country for.
pub const NO_COUNTRY: &[&str] = &[
    "127.0.0.1",
    "10.0.0.1",
    "192.168.1.1",
    "198.51.100.1",
    "::1",
    "fd00::1",
    "2001:db9::1",
];

/// (first address, last address, country). Later rows win where they
/// overlap, so the `/48` carves JP out of the DE `/32`.
const NETWORKS: &[(&str, &str, &str)] = &[
    ("81.2.69.0", "81.2.69.255", "GB"),
    ("216.160.83.0", "216.160.83.255", "US"),
    ("89.160.20.0", "89.160.20.255", "SE"),
    ("67.43.156.0", "67.43.156.255", "BT"),
    ("175.16.199.0", "175.16.199.255", "CN"),
    ("202.196.224.0", "202.196.239.255", "PH"),
    ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "DE"),
    ("2001:db8:2::", "2001:db8:2:ffff:ffff:ffff:ffff:ffff", "JP"),
];

/// (ISO code, English name, GeoNames id, continent code).
const COUNTRIES: &[(&str, &str, u32, &str)] = &[
    ("GB", "United Kingdom", 2_635_167, "EU"),
    ("US", "United States", 6_252_001, "NA"),
    ("SE", "Sweden", 2_661_886, "EU"),
    ("BT", "Bhutan", 1_252_634, "AS"),
    ("CN", "China", 1_814_991, "AS"),
    ("PH", "Philippines", 1_694_008, "AS"),
    ("DE", "Germany", 2_921_044, "EU"),
    ("JP", "Japan", 1_861_060, "AS"),
];

const CONTINENTS: &[(&str, &str, u32)] = &[
    ("AS", "Asia", 6_255_147),
    ("EU", "Europe", 6_255_148),
    ("NA", "North America", 6_255_149),
];

/// Writes the fixture to `path` (replacing any file there).
pub fn write(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, bytes()?)
}

/// The fixture opened in memory: for tests that only need lookups (a
/// backend process needs [`write`] and a path).
#[allow(
    clippy::expect_used,
    reason = "test fixture: the fixture's own tests open it the same way"
)]
#[must_use]
pub fn open() -> GeoIp {
    let bytes = bytes().expect("the fixture builds");
    GeoIp::from_bytes(bytes).expect("the fixture opens")
}

/// The fixture's bytes; identical on every call (fixed build time).
pub fn bytes() -> std::io::Result<Vec<u8>> {
    let mut writer = Writer::builder("GeoLite2-Country")
        .description(&[("en", "Galaxy GeoLite2-Country-shaped test fixture")])
        // 2026-01-01: a fixed epoch keeps the file byte-for-byte reproducible.
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        .build();
    for &(first, last, iso) in NETWORKS {
        let first: IpAddr = first.parse().map_err(std::io::Error::other)?;
        let last: IpAddr = last.parse().map_err(std::io::Error::other)?;
        writer
            .insert_range(first, last, &record(iso))
            .map_err(std::io::Error::other)?;
    }
    writer.to_bytes().map_err(std::io::Error::other)
}

/// A GeoLite2-Country record: continent, country and registered country.
#[allow(
    clippy::expect_used,
    reason = "test fixture: the tables are static and a test of this module covers every network"
)]
fn record(iso: &str) -> Value {
    let &(_, name, geoname_id, continent) = COUNTRIES
        .iter()
        .find(|c| c.0 == iso)
        .expect("every fixture network names a listed country");
    let &(_, continent_name, continent_id) = CONTINENTS
        .iter()
        .find(|c| c.0 == continent)
        .expect("every fixture country names a listed continent");
    let country = Value::map([
        ("geoname_id", Value::from(geoname_id)),
        ("iso_code", Value::from(iso)),
        ("names", Value::map([("en", name)])),
    ]);
    Value::map([
        (
            "continent",
            Value::map([
                ("code", Value::from(continent)),
                ("geoname_id", Value::from(continent_id)),
                ("names", Value::map([("en", continent_name)])),
            ]),
        ),
        ("country", country.clone()),
        ("registered_country", country),
    ])
}
