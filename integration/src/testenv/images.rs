//! The `:integration` images, built by deploy/build-images.sh when one is
//! missing — once, however many scenarios start at the same time: a file
//! lock serialises the test processes, and each re-checks after taking it.

use std::process::Command;
use std::sync::Once;

use super::docker::docker;

pub const TAG: &str = "integration";
pub const BACKEND: &str = "galaxy/backend:integration";
pub const GATEWAY: &str = "galaxy/gateway:integration";
pub const GAME: &str = "galaxy/game:integration";

fn missing() -> Vec<&'static str> {
    [BACKEND, GATEWAY, GAME]
        .into_iter()
        .filter(|image| !docker(&["image", "inspect", image]).status.success())
        .collect()
}

/// Fails loudly when no Docker daemon answers.
pub fn ensure() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        assert!(
            docker(&["info"]).status.success(),
            "no Docker daemon answers: the container integration suite needs one"
        );
        if missing().is_empty() {
            return;
        }
        let lock_path = std::env::temp_dir().join("galaxy-testenv-build-images.lock");
        let lock = std::fs::File::create(&lock_path).expect("the image build lock file");
        lock.lock().expect("take the image build lock");
        let still = missing();
        if !still.is_empty() {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/build-images.sh");
            eprintln!(
                "testenv: {} missing; running deploy/build-images.sh {TAG}",
                still.join(", ")
            );
            let mut cmd = Command::new(script);
            // Without the test harness's CARGO_* variables the script's cargo
            // sees the same build environment as a plain run of the script
            // (.ci/run's), so the release binaries are not rebuilt for it.
            for (key, _) in std::env::vars() {
                if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
                    cmd.env_remove(&key);
                }
            }
            let out = cmd.arg(TAG).output().expect("run build-images.sh");
            assert!(
                out.status.success(),
                "deploy/build-images.sh {TAG} failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
        drop(lock);
    });
}
