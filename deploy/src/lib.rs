//! Readers for the files in `deploy/`, so tests can hold them to the code:
//! the variables compose sets, the variables it interpolates, the Docker API
//! sections the socket proxy opens, and the Docker calls the runtime makes.
//!
//! `compose.yaml` is read line by line (the workspace has no YAML parser and
//! the file keeps to block style: two-space indents, `KEY: value` entries);
//! `.ci/run` validates the whole file with `docker compose config`.

use std::collections::{BTreeMap, BTreeSet};

/// `service → (variable → value)` of every service's `environment:` block.
pub fn service_environment(compose: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut in_services = false;
    let mut service: Option<String> = None;
    let mut in_environment = false;
    for line in compose.lines() {
        let content = line.split(" #").next().unwrap_or("").trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let text = content.trim_start();
        match indent {
            0 => {
                in_services = text == "services:";
                service = None;
                in_environment = false;
            }
            2 if in_services => {
                service = text.strip_suffix(':').map(str::to_owned);
                in_environment = false;
            }
            4 => in_environment = text == "environment:",
            6 if in_environment => {
                if let (Some(service), Some((key, value))) = (&service, text.split_once(':')) {
                    out.entry(service.clone())
                        .or_default()
                        .insert(key.trim().to_owned(), value.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

/// Every `NAME` interpolated as `${NAME…}` in `text`.
pub fn interpolated_variables(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The keys an env file (`.env.example`) assigns.
pub fn env_file_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect()
}

/// Methods called on a `docker` value that send no request (a clone of the
/// client, `map_err` on the `Result` that connecting returns, the driver's
/// lock around its client).
const LOCAL_METHODS: &[&str] = &["clone", "map_err", "read", "write"];

/// The expressions the runtime calls bollard's client through: a value
/// named `docker`, or the driver's `client()` accessor.
const RECEIVERS: &[&str] = &["docker", "client()"];

/// Names of the Docker API methods called on the client in Rust `source`
/// (`self.docker.create_network(…)`, `self.client().stop_container(…)`,
/// also split over lines).
pub fn docker_calls(source: &str) -> BTreeSet<String> {
    let bytes = source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut calls = BTreeSet::new();
    for receiver in RECEIVERS {
        let mut from = 0;
        while let Some(found) = source[from..].find(receiver) {
            let start = from + found;
            let end = start + receiver.len();
            from = end;
            if start > 0 && is_ident(bytes[start - 1]) || end < bytes.len() && is_ident(bytes[end])
            {
                continue;
            }
            let rest = source[end..].trim_start();
            let Some(rest) = rest.strip_prefix('.') else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let called = rest[name.len()..].trim_start().starts_with('(');
            if called && !name.is_empty() && !LOCAL_METHODS.contains(&name.as_str()) {
                calls.insert(name);
            }
        }
    }
    calls
}

/// The HTTP request (method, path) a bollard client method sends, for the
/// methods the runtime uses; `None` for a method not in this table (a test
/// then fails, so a new call is looked at before the proxy blocks it).
pub fn docker_request(bollard_method: &str) -> Option<(&'static str, &'static str)> {
    Some(match bollard_method {
        "negotiate_version" => ("GET", "/version"),
        "inspect_network" => ("GET", "/v1.41/networks/galaxy-engines"),
        "create_network" => ("POST", "/v1.41/networks/create"),
        "inspect_image" => ("GET", "/v1.41/images/galaxy/game:1/json"),
        "create_image" => ("POST", "/v1.41/images/create"),
        "create_volume" => ("POST", "/v1.41/volumes/create"),
        "create_container" => ("POST", "/v1.41/containers/create"),
        "start_container" => ("POST", "/v1.41/containers/galaxy-game-1/start"),
        "inspect_container" => ("GET", "/v1.41/containers/galaxy-game-1/json"),
        "logs" => ("GET", "/v1.41/containers/galaxy-game-1/logs"),
        "stop_container" => ("POST", "/v1.41/containers/galaxy-game-1/stop"),
        "remove_container" => ("DELETE", "/v1.41/containers/galaxy-game-1"),
        "list_containers" => ("GET", "/v1.41/containers/json"),
        _ => return None,
    })
}

/// The access rules of `tecnativa/docker-socket-proxy` for a set of its
/// environment flags: a request other than GET needs `POST`; then the path's
/// first segment after the optional `/vX.Y` names the section (`CONTAINERS`,
/// `IMAGES`, `NETWORKS`, …; `_ping` is `PING`), which must be on; start and
/// stop of a container are also opened alone by `ALLOW_START`/`ALLOW_STOP`.
pub struct SocketProxy {
    on: BTreeSet<String>,
}

impl SocketProxy {
    /// From the proxy service's environment (`1`/`true` is on).
    pub fn from_environment(env: &BTreeMap<String, String>) -> Self {
        let on = env
            .iter()
            .filter(|(_, v)| {
                matches!(
                    v.trim_matches('"').to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes"
                )
            })
            .map(|(k, _)| k.clone())
            .collect();
        Self { on }
    }

    /// The flags that are on.
    pub fn enabled(&self) -> &BTreeSet<String> {
        &self.on
    }

    pub fn allows(&self, method: &str, path: &str) -> bool {
        if method != "GET" && !self.on.contains("POST") {
            return false;
        }
        let mut segments = path.trim_start_matches('/').split('/');
        let mut first = segments.next().unwrap_or("");
        if first.starts_with('v')
            && first[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
            && first.len() > 1
        {
            first = segments.next().unwrap_or("");
        }
        let action = path.rsplit('/').next().unwrap_or("");
        if first == "containers" {
            if action == "start" && self.on.contains("ALLOW_START") {
                return true;
            }
            if action == "stop" && self.on.contains("ALLOW_STOP") {
                return true;
            }
        }
        let section = match first {
            "_ping" => "PING".to_owned(),
            other => other.to_ascii_uppercase(),
        };
        self.on.contains(&section)
    }

    /// The flags a set of requests needs (sections, and `POST` for writes).
    pub fn needed(requests: &[(&str, &str)]) -> BTreeSet<String> {
        let mut needed = BTreeSet::new();
        for (method, path) in requests {
            if *method != "GET" {
                needed.insert("POST".to_owned());
            }
            let mut segments = path.trim_start_matches('/').split('/');
            let mut first = segments.next().unwrap_or("");
            if first.starts_with("v1") {
                first = segments.next().unwrap_or("");
            }
            needed.insert(first.to_ascii_uppercase());
        }
        needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_calls_across_lines_and_skips_other_names() {
        let src = "let x = self.docker\n    .create_network(a);\nlet y = docker.negotiate_version().await;\n\
                   let z = Docker::connect_with_http(); dockerfile.len(); my_docker.ping();";
        assert_eq!(
            docker_calls(src),
            BTreeSet::from(["create_network".to_owned(), "negotiate_version".to_owned()])
        );
    }

    #[test]
    fn proxy_rules_follow_method_and_section() {
        let env = BTreeMap::from([
            ("CONTAINERS".to_owned(), "1".to_owned()),
            ("IMAGES".to_owned(), "0".to_owned()),
        ]);
        let proxy = SocketProxy::from_environment(&env);
        assert!(proxy.allows("GET", "/v1.41/containers/json"));
        assert!(
            !proxy.allows("POST", "/v1.41/containers/create"),
            "writes need POST"
        );
        assert!(!proxy.allows("GET", "/images/x/json"));
        assert!(!proxy.allows("GET", "/v1.41/exec/abc/json"));
    }

    #[test]
    fn reads_environment_blocks_per_service() {
        let yaml = "services:\n  a:\n    image: x\n    environment:\n      A_ONE: 1\n      A_TWO: \"${X:-y}\"\n    ports:\n      - \"1:1\"\n  b:\n    environment:\n      B: z # note\nvolumes:\n  v: {}\n";
        let env = service_environment(yaml);
        assert_eq!(env["a"].keys().collect::<Vec<_>>(), ["A_ONE", "A_TWO"]);
        assert_eq!(env["b"]["B"], "z");
        assert_eq!(
            interpolated_variables(yaml),
            BTreeSet::from(["X".to_owned()])
        );
    }
}
