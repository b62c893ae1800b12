//! The shipped images (`galaxy/*:integration`, built by
//! deploy/build-images.sh when missing): non-root, no shell, CA bundle,
//! HEALTHCHECK, at most 80 MB — and host names resolve inside them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use galaxy_integration::testenv::{self, docker, must};
use serde_json::Value;

const MAX_BYTES: u64 = 80_000_000;
/// A start config the engine accepts, so a probe engine keeps running.
const ENGINE_CONFIG: &str = "GALAXY_START_CONFIG={\"game_id\":\"00000000-0000-4000-8000-000000000001\",\"players\":[{\"account_id\":\"00000000-0000-4000-8000-000000000002\",\"race_name\":\"Probe\"}]}";

fn inspect(image: &str) -> Value {
    let v: Value = serde_json::from_str(&must(&["image", "inspect", image])).unwrap();
    v[0].clone()
}

#[test]
fn images_are_small_non_root_shell_less_and_carry_ca_certificates() {
    testenv::ensure_images();
    for (image, binary) in [
        (testenv::BACKEND, Some("/usr/local/bin/galaxy-backend")),
        (testenv::GATEWAY, Some("/usr/local/bin/galaxy-gateway")),
        (testenv::GAME, None),
    ] {
        let meta = inspect(image);
        let size = meta["Size"].as_u64().unwrap();
        assert!(size <= MAX_BYTES, "{image}: {size} bytes");
        assert_eq!(meta["Config"]["User"], "65532:65532", "{image}");
        // No shell to run anything else with.
        let out = docker(&[
            "run",
            "--rm",
            "--pull=never",
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            "true",
        ]);
        assert!(!out.status.success(), "{image} has a shell");
        let Some(binary) = binary else { continue };
        assert_eq!(
            meta["Config"]["Healthcheck"]["Test"],
            serde_json::json!(["CMD", binary, "healthcheck"]),
            "{image}"
        );
        assert_eq!(meta["Config"]["Entrypoint"], serde_json::json!([binary]));
        // Debian's CA bundle, byte for byte, where rustls looks for it.
        let name = format!(
            "galaxy-ca-check-{}-{}",
            std::process::id(),
            image.replace(['/', ':'], "-")
        );
        must(&["create", "--name", &name, image]);
        let copied = std::env::temp_dir().join(&name);
        let out = docker(&[
            "cp",
            &format!("{name}:/etc/ssl/certs/ca-certificates.crt"),
            copied.to_str().unwrap(),
        ]);
        docker(&["rm", "-f", "-v", &name]);
        assert!(
            out.status.success(),
            "{image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundle = std::fs::read(&copied).unwrap();
        std::fs::remove_file(&copied).unwrap();
        assert_eq!(
            bundle,
            std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap(),
            "{image}"
        );
        assert_eq!(
            meta["Config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e.as_str().unwrap().starts_with("SSL_CERT_FILE="))
                .count(),
            1
        );
    }
}

/// A network with one named container on it (an engine: it listens on 8080).
struct Named {
    network: String,
    target: String,
}

impl Named {
    fn start() -> Self {
        let network = format!("galaxy-dns-check-{}", std::process::id());
        let target = format!("{network}-target");
        let owner = format!("{}={}", testenv::OWNER_LABEL, std::process::id());
        must(&["network", "create", "--label", &owner, &network]);
        must(&[
            "run",
            "-d",
            "--rm",
            "--pull=never",
            "--label",
            &owner,
            "--name",
            &target,
            "--network",
            &network,
            "-e",
            ENGINE_CONFIG,
            testenv::GAME,
        ]);
        Self { network, target }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.target]);
        docker(&["network", "rm", &self.network]);
    }
}

#[test]
fn names_resolve_inside_the_backend_and_gateway_images() {
    testenv::ensure_images();
    let named = Named::start();
    // The image's own glibc, NSS modules and nsswitch.conf answer getent
    // (the host's getent links the same glibc the image carries).
    for image in [testenv::BACKEND, testenv::GATEWAY] {
        let out = docker(&[
            "run",
            "--rm",
            "--pull=never",
            "--network",
            &named.network,
            "-v",
            "/usr/bin/getent:/probe/getent:ro",
            "--entrypoint",
            "/probe/getent",
            image,
            "hosts",
            &named.target,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&named.target),
            "{image}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The backend binary itself: `migrate` against the container's name
    // reaches the engine's port and fails on the protocol, while a name
    // that does not resolve never connects.
    let geoip = format!(
        "{}:/geoip.mmdb:ro",
        galaxy_integration::geoip_fixture().display()
    );
    let migrate = |host: &str| {
        let out = docker(&[
            "run",
            "--rm",
            "--pull=never",
            "--network",
            &named.network,
            "-e",
            &format!(
                "BACKEND_POSTGRES_DSN=postgres://galaxy@{host}:8080/galaxy?search_path=backend"
            ),
            "-e",
            "BACKEND_PUSH_TOKEN=0123456789abcdef0123",
            "-e",
            "BACKEND_SMTP_HOST=localhost",
            "-e",
            "BACKEND_SMTP_FROM=galaxy@example.test",
            "-e",
            "BACKEND_GEOIP_DB_PATH=/geoip.mmdb",
            "-v",
            &geoip,
            testenv::BACKEND,
            "migrate",
        ]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unresolved = migrate("no-such-host.invalid");
    let resolved = migrate(&named.target);
    // tokio-postgres: a connect that never got a socket (lookup failed) is
    // "error connecting to server"; one that reached the engine's port and
    // then read no PostgreSQL answer is "error communicating with the server".
    assert!(
        unresolved.contains("error connecting to server"),
        "{unresolved}"
    );
    assert!(
        resolved.contains("error communicating with the server"),
        "{resolved}"
    );
}
