//! `GeoIp` against real `.mmdb` files: the project's fixture always, and
//! MaxMind's official test databases when `../shared/fixtures/geoip` exists.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::net::IpAddr;

use common::{TempDir, fixture_geo, shared_geoip_dir};
use galaxy_geo::{GeoError, GeoIp, fixture};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Answers MaxMind documents for its test databases (their README): the
/// fixture's IPv4 answers, which `official_test_databases_give_the_documented_answers`
/// holds to MaxMind's own files.
fn documented_answers() -> impl Iterator<Item = (&'static str, &'static str)> {
    fixture::KNOWN
        .iter()
        .copied()
        .filter(|(addr, _)| ip(addr).is_ipv4())
}

#[test]
fn fixture_answers_ipv4_and_ipv6() {
    let (_dir, geo) = fixture_geo();
    assert_eq!(geo.database_type(), "GeoLite2-Country");
    assert!(fixture::KNOWN.iter().any(|(a, _)| ip(a).is_ipv4()));
    assert!(fixture::KNOWN.iter().any(|(a, _)| ip(a).is_ipv6()));
    for &(addr, country) in fixture::KNOWN {
        assert_eq!(
            geo.country(ip(addr)).unwrap().as_deref(),
            Some(country),
            "{addr}"
        );
    }
    for &addr in fixture::NO_COUNTRY {
        assert_eq!(geo.country(ip(addr)).unwrap(), None, "{addr}");
    }
}

#[test]
fn fixture_agrees_with_the_documented_answers() {
    let (_dir, geo) = fixture_geo();
    for (addr, country) in documented_answers() {
        assert_eq!(
            geo.country(ip(addr)).unwrap().as_deref(),
            Some(country),
            "{addr}"
        );
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6.
        let mapped = match ip(addr) {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => unreachable!("the documented answers are IPv4"),
        };
        assert_eq!(
            geo.country(mapped).unwrap().as_deref(),
            Some(country),
            "{mapped}"
        );
    }
    for addr in ["127.0.0.1", "10.0.0.1"] {
        assert_eq!(geo.country(ip(addr)).unwrap(), None, "{addr}");
    }
}

#[test]
fn fixture_bytes_are_reproducible() {
    assert_eq!(fixture::bytes().unwrap(), fixture::bytes().unwrap());
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = TempDir::new();
    let path = dir.path().join("nope.mmdb");
    let err = GeoIp::open(&path).unwrap_err();
    assert!(matches!(err, GeoError::Open { .. }));
    let text = err.to_string();
    assert!(text.contains("nope.mmdb"), "{text}");
    assert!(text.contains("cannot open GeoIP database"), "{text}");
}

#[test]
fn directories_empty_and_garbage_files_are_refused() {
    let dir = TempDir::new();
    assert!(GeoIp::open(dir.path()).is_err(), "a directory");
    let empty = dir.path().join("empty.mmdb");
    std::fs::write(&empty, b"").unwrap();
    assert!(GeoIp::open(&empty).is_err(), "an empty file");
    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"this is not a MaxMind database\n".repeat(100)).unwrap();
    assert!(GeoIp::open(&garbage).is_err(), "a text file");
    let marker_only = dir.path().join("marker.mmdb");
    std::fs::write(&marker_only, b"\xab\xcd\xefMaxMind.com").unwrap();
    assert!(GeoIp::open(&marker_only).is_err(), "a bare metadata marker");
}

#[test]
fn truncated_fixture_is_refused() {
    let bytes = fixture::bytes().unwrap();
    let dir = TempDir::new();
    let path = dir.path().join("cut.mmdb");
    for keep in [16, bytes.len() / 4, bytes.len() / 2, bytes.len() - 8] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        assert!(
            GeoIp::open(&path).is_err(),
            "kept {keep} of {} bytes",
            bytes.len()
        );
    }
}

/// Every single-byte corruption of the fixture either is refused at open or
/// still answers lookups with a value or an error: never a panic or a hang.
#[test]
fn corrupted_fixture_never_panics() {
    let bytes = fixture::bytes().unwrap();
    let (mut refused, mut opened) = (0, 0);
    for offset in 0..bytes.len() {
        for flip in [0xff_u8, 0x01] {
            let mut bad = bytes.clone();
            bad[offset] ^= flip;
            match GeoIp::from_bytes(bad) {
                Err(_) => refused += 1,
                Ok(geo) => {
                    opened += 1;
                    for &(addr, _) in fixture::KNOWN {
                        let _ = geo.country(ip(addr));
                    }
                    for &addr in fixture::NO_COUNTRY {
                        let _ = geo.country(ip(addr));
                    }
                }
            }
        }
    }
    assert!(refused > 0, "no corruption was detected at all");
    assert_eq!(refused + opened, bytes.len() * 2);
}

#[test]
fn official_test_databases_give_the_documented_answers() {
    let Some(dir) = shared_geoip_dir() else {
        return;
    };
    for name in ["GeoIP2-Country-Test.mmdb", "GeoLite2-Country-Test.mmdb"] {
        let geo = GeoIp::open(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (addr, country) in documented_answers() {
            // MaxMind's GeoLite2 test file has no record at all for
            // 175.16.199.0/24 (its tree ends in an empty 174.0.0.0/7), unlike
            // the GeoIP2 one; the README's list holds for the latter only.
            let expected = match (name, addr) {
                ("GeoLite2-Country-Test.mmdb", "175.16.199.1") => None,
                _ => Some(country),
            };
            assert_eq!(
                geo.country(ip(addr)).unwrap().as_deref(),
                expected,
                "{name}: {addr}"
            );
        }
        // 81.2.69.142 is registered to US but located in GB, 67.43.156.1
        // registered to RO but located in BT: the location country wins.
        assert_eq!(geo.database_type(), name.trim_end_matches("-Test.mmdb"));
        for addr in ["127.0.0.1", "10.0.0.1", "::1"] {
            assert_eq!(geo.country(ip(addr)).unwrap(), None, "{name}: {addr}");
        }
    }
}

#[test]
fn official_bad_databases_give_errors() {
    let Some(dir) = shared_geoip_dir() else {
        return;
    };
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("bad")).expect("read bad/") {
        let path = entry.unwrap().path();
        checked += 1;
        match GeoIp::open(&path) {
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("cannot open GeoIP database"), "{text}");
            }
            Ok(geo) => {
                let failed = ["81.2.69.142", "1.1.1.1", "2001:db8::1", "::1"]
                    .iter()
                    .filter(|a| geo.country(ip(a)).is_err())
                    .count();
                assert!(
                    failed > 0,
                    "{} opened and answered every lookup",
                    path.display()
                );
            }
        }
    }
    assert!(checked > 0, "bad/ is empty");
}
