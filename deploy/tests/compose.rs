//! deploy/compose.yaml and deploy/.env.example against the code: every
//! variable compose sets is one the binaries read, and every Docker API
//! call the runtime makes passes the socket proxy — which opens nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::BTreeSet;

use galaxy_deploy::{
    SocketProxy, docker_calls, docker_request, env_file_keys, interpolated_variables,
    service_environment,
};

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn compose() -> String {
    read("compose.yaml")
}

/// `known` plus the `_FILE` form of each known secret.
fn with_file_forms(known: &[&str]) -> BTreeSet<String> {
    let mut all: BTreeSet<String> = known.iter().map(|s| (*s).to_owned()).collect();
    for secret in galaxy_core::env::SECRET_VARIABLES {
        if known.contains(secret) {
            all.insert(format!("{secret}{}", galaxy_core::env::FILE_SUFFIX));
        }
    }
    all
}

#[test]
fn every_variable_compose_gives_a_binary_is_one_it_knows() {
    let env = service_environment(&compose());
    let backend: Vec<&str> = galaxy_backend::config::variables()
        .map(|v| v.name)
        .collect();
    let gateway: Vec<&str> = galaxy_gateway::settings::VARIABLES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for (service, known, prefix) in [
        ("backend", backend, "BACKEND_"),
        ("gateway", gateway, "GATEWAY_"),
    ] {
        let known = with_file_forms(&known);
        let set = env
            .get(service)
            .unwrap_or_else(|| panic!("no {service} environment in compose"));
        assert!(set.len() > 5, "{service}: {set:?}");
        for name in set.keys() {
            // RUST_LOG is the log filter both binaries read.
            assert!(
                known.contains(name) || name == "RUST_LOG",
                "compose sets {name} on {service}, which reads no such variable"
            );
            assert!(
                name.starts_with(prefix) || name == "RUST_LOG",
                "{service}: {name}"
            );
        }
    }
}

#[test]
fn secrets_are_files_and_the_backend_port_is_not_published() {
    let text = compose();
    let env = service_environment(&text);
    for (service, secret) in [
        ("backend", "BACKEND_POSTGRES_DSN"),
        ("backend", "BACKEND_PUSH_TOKEN"),
        ("backend", "BACKEND_ADMIN_BOOTSTRAP_PASSWORD"),
        ("gateway", "GATEWAY_PUSH_TOKEN"),
    ] {
        assert!(!env[service].contains_key(secret), "{secret} given inline");
        let file = &env[service][&format!("{secret}_FILE")];
        assert!(file.starts_with("/run/secrets/"), "{secret}_FILE = {file}");
    }
    assert_eq!(
        env["backend"]["BACKEND_DOCKER_HOST"],
        "tcp://docker-proxy:2375"
    );
    // the socket is mounted in the proxy only
    let backend_block = block_of(&text, "backend");
    assert!(!backend_block.contains("docker.sock"), "{backend_block}");
    let publishes = |block: &str| block.lines().any(|l| l.trim() == "ports:");
    assert!(
        !publishes(&backend_block),
        "the backend publishes a port:\n{backend_block}"
    );
    assert!(publishes(&block_of(&text, "gateway")));
    assert!(
        block_of(&text, "docker-proxy").contains("/var/run/docker.sock:/var/run/docker.sock:ro")
    );
    assert!(text.contains("\n  engines:\n    name: ${GALAXY_ENGINE_NETWORK:-galaxy-engines}"));
}

/// The lines of `services.<name>`.
fn block_of(compose: &str, name: &str) -> String {
    let header = format!("\n  {name}:\n");
    let start = compose
        .find(&header)
        .unwrap_or_else(|| panic!("no service {name}"))
        + header.len();
    compose[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    ") || l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_env_file_covers_what_compose_interpolates() {
    let used = interpolated_variables(&compose());
    let example = env_file_keys(&read(".env.example"));
    assert_eq!(
        used, example,
        "compose interpolates what .env.example sets, no more, no less"
    );
}

#[test]
fn the_proxy_allows_every_call_the_runtime_makes_and_nothing_more() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/runtime/src/docker.rs"
    ))
    .expect("crates/runtime/src/docker.rs");
    let calls = docker_calls(&source);
    assert!(calls.len() >= 10, "{calls:?}");
    let requests: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| docker_request(c).unwrap_or_else(|| panic!("the runtime calls bollard's {c}: add its request to deploy/src/lib.rs and check the proxy")))
        .collect();
    let env = service_environment(&compose());
    let proxy = SocketProxy::from_environment(&env["docker-proxy"]);
    for (call, (method, path)) in calls.iter().zip(&requests) {
        assert!(
            proxy.allows(method, path),
            "{call}: {method} {path} is refused by the proxy"
        );
    }
    let needed = SocketProxy::needed(&requests);
    assert_eq!(
        proxy.enabled(),
        &needed,
        "the proxy opens exactly the sections the runtime needs"
    );
    for closed in [
        "EXEC", "BUILD", "SWARM", "SECRETS", "SYSTEM", "INFO", "EVENTS", "AUTH",
    ] {
        assert!(
            !proxy.allows("GET", &format!("/v1.41/{}", closed.to_ascii_lowercase())),
            "{closed}"
        );
    }
}
