//! Helpers shared by the geo tests.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use galaxy_geo::GeoIp;

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "galaxy-geo-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The project's fixture, written to a fresh file and opened.
pub fn fixture_geo() -> (TempDir, GeoIp) {
    let dir = TempDir::new();
    let path = dir.path().join("GeoLite2-Country.mmdb");
    galaxy_geo::fixture::write(&path).expect("write the fixture");
    let geo = GeoIp::open(&path).expect("open the fixture");
    (dir, geo)
}

/// MaxMind's public test databases beside the repository, when present
/// (`GALAXY_GEOIP_FIXTURES` names another directory). Locally their absence
/// skips the checks that need them, with a note; under `CI=true` it fails
/// the test, so CI can never pass without having run them.
pub fn shared_geoip_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GALAXY_GEOIP_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/geoip"),
        PathBuf::from,
    );
    if dir.is_dir() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "CI=true but the GeoIP fixtures are missing at {}: the official-database checks must run in CI",
        dir.display()
    );
    eprintln!(
        "note: {} not present; official-database checks not run",
        dir.display()
    );
    None
}
