//! The GeoIP database at start: a missing or corrupt `BACKEND_GEOIP_DB_PATH`
//! stops `check-config` and `serve` with exit 2 and one line naming the
//! variable; the project's fixture boots, and the counters' flusher runs
//! through to its final flush at shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use galaxy_integration::{BackendBuilder, geoip_fixture};
use galaxy_testdb::TestDb;

/// A directory of this test's own, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "galaxy-geo-it-{name}-{}-{}",
            std::process::id(),
            galaxy_integration::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Nothing listens there: the GeoIP check must come before any database work.
const NO_DATABASE: &str = "postgres://127.0.0.1:1/galaxy?search_path=backend";

fn assert_geoip_refused(path: &Path, what: &str) {
    for command in ["check-config", "serve"] {
        let (status, stdout, stderr) = BackendBuilder::new(NO_DATABASE)
            .env("BACKEND_GEOIP_DB_PATH", path.to_str().unwrap())
            .run(&[command]);
        assert_eq!(status.code(), Some(2), "{what}, {command}: {stderr}");
        let lines: Vec<&str> = stderr.trim().lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}, {command}: one line expected: {stderr}"
        );
        assert!(
            lines[0].starts_with("configuration error: BACKEND_GEOIP_DB_PATH: "),
            "{what}, {command}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}, {command}: {stderr}");
        assert!(
            stdout.is_empty(),
            "{what}, {command}: nothing logged before: {stdout}"
        );
    }
}

#[test]
fn missing_or_corrupt_geoip_database_exits_2_naming_the_variable() {
    let scratch = Scratch::new("bad");
    assert_geoip_refused(&scratch.0.join("missing.mmdb"), "a missing file");
    assert_geoip_refused(&scratch.0, "a directory");
    assert_geoip_refused(&scratch.file("empty.mmdb", b""), "an empty file");
    assert_geoip_refused(
        &scratch.file("garbage.mmdb", &b"not a MaxMind database\n".repeat(64)),
        "a text file",
    );
    let fixture = std::fs::read(geoip_fixture()).unwrap();
    assert_geoip_refused(
        &scratch.file("truncated.mmdb", &fixture[..fixture.len() / 2]),
        "a truncated database",
    );

    // MaxMind's deliberately corrupt files, when the shared fixtures exist.
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/geoip/bad");
    if bad.is_dir() {
        let mut checked = 0;
        for entry in std::fs::read_dir(&bad).unwrap() {
            let path = entry.unwrap().path();
            assert_geoip_refused(&path, &path.display().to_string());
            checked += 1;
        }
        assert!(checked > 0, "{} is empty", bad.display());
    } else {
        eprintln!(
            "note: ../shared/fixtures/geoip not present; MaxMind's corrupt files not checked"
        );
    }
}

#[test]
fn the_fixture_passes_check_config() {
    let (status, _, stderr) = BackendBuilder::new(NO_DATABASE).run(&["check-config"]);
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_opens_the_database_and_flushes_counters_at_shutdown() {
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn()).spawn();
    backend.wait_ready(Duration::from_secs(20)).await;
    let opened = backend
        .logs()
        .into_iter()
        .find(|l| l["message"] == "GeoIP database opened")
        .unwrap_or_else(|| panic!("no GeoIP log line:\n{}", backend.dump()));
    assert_eq!(opened["database_type"], "GeoLite2-Country");

    let status = backend.terminate(Duration::from_secs(15));
    assert!(status.success(), "{status}:\n{}", backend.dump());
    assert!(
        backend
            .logs()
            .iter()
            .any(|l| l["message"] == "country counters flushed at shutdown"),
        "no final flush:\n{}",
        backend.dump()
    );
}
