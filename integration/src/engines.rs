//! Real engine containers for tests: the reference image (built once when
//! missing), the admin's engine-version registration, and a guard that
//! removes a game's container and volume, also when the test fails.

use std::process::{Command, Output};

use serde_json::json;

use crate::Backend;
use crate::api::{call, json_of};

/// The reference engine image the tests run.
pub const ENGINE_IMAGE: &str = "galaxy/game:integration";

/// `docker <args>`; the CLI must exist (the tests need a daemon).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI is needed for the game tests")
}

/// The engine image, built once per test process if missing. No Docker →
/// the test fails, saying so.
pub fn ensure_engine_image() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        assert!(
            docker(&["info"]).status.success(),
            "no Docker daemon answers: the game tests need one"
        );
        if !docker(&["image", "inspect", ENGINE_IMAGE]).status.success() {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/engine/build-image.sh");
            let out = Command::new(script).arg("integration").output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// Removes a game's engine container and volume on drop.
pub struct EngineGuard(pub String);

impl Drop for EngineGuard {
    fn drop(&mut self) {
        let Ok(game_id) = self.0.parse() else {
            return;
        };
        for args in [
            ["rm", "-f", "-v", &galaxy_runtime::container_name(game_id)],
            ["volume", "rm", "-f", &galaxy_runtime::volume_name(game_id)],
        ] {
            let out = docker(&args);
            if !out.status.success() {
                eprintln!(
                    "engine guard: docker {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
    }
}

/// Logs `username` in as an admin; the token.
pub async fn admin_login(b: &Backend, username: &str, password: &str) -> String {
    let r = b
        .client
        .post(b.url("/api/v1/admin/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("admin login");
    json_of(r, 200).await["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Registers engine `version` → `image` with an admin token.
pub async fn register_engine(b: &Backend, admin: &str, version: &str, image: &str) {
    let r = call(
        b,
        reqwest::Method::POST,
        "/api/v1/admin/engine-versions",
        admin,
        Some(json!({ "version": version, "image": image })),
    )
    .await;
    json_of(r, 201).await;
}
