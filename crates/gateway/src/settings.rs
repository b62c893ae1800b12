//! `GATEWAY_*` configuration (SYSTEM.md §11): parsed once at start; every
//! error names its variable so the binary prints one line and exits 2.

use std::net::SocketAddr;
use std::time::Duration;

use galaxy_core::env::{ConfigError, Env, RateLimit, Secret};
use galaxy_telemetry::{MetricsExporter, TelemetrySettings, TracesExporter};
use ipnet::IpNet;
use url::Url;

/// Every variable the gateway reads, with its default as an operator would
/// write it (`(required)` / empty for none). Anything else with the prefix
/// is warned about at start; the README table is checked against this list.
pub const VARIABLES: &[(&str, &str)] = &[
    ("GATEWAY_HTTP_LISTEN_ADDR", "0.0.0.0:8000"),
    ("GATEWAY_BACKEND_URL", "(required)"),
    ("GATEWAY_BACKEND_GRPC_ADDR", "(required)"),
    ("GATEWAY_PUSH_TOKEN", "(required)"),
    ("GATEWAY_ID", ""),
    ("GATEWAY_TRUSTED_PROXIES", ""),
    ("GATEWAY_AUTH_RATE_LIMIT", "20/1m"),
    ("GATEWAY_REDIS_URL", ""),
    ("GATEWAY_UPSTREAM_TIMEOUT", "30s"),
    ("GATEWAY_WS_PING_INTERVAL", "15s"),
    ("GATEWAY_WS_PONG_TIMEOUT", "30s"),
    ("GATEWAY_WS_SEND_QUEUE", "64"),
    ("GATEWAY_WS_MAX_PER_ACCOUNT", "8"),
    ("GATEWAY_WS_REVALIDATE_INTERVAL", "60s"),
    ("GATEWAY_ALLOWED_ORIGINS", ""),
    ("GATEWAY_OTEL_TRACES_EXPORTER", "otlp"),
    ("GATEWAY_OTEL_METRICS_EXPORTER", "otlp"),
    ("GATEWAY_OTEL_PROMETHEUS_LISTEN_ADDR", "127.0.0.1:9465"),
    ("GATEWAY_SHUTDOWN_TIMEOUT", "10s"),
];

/// The default of `name` in [`VARIABLES`].
fn default_of(name: &str) -> &'static str {
    VARIABLES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, d)| d)
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub http_listen: SocketAddr,
    /// Backend base URLs; a host name may stand for several backends.
    pub backend_urls: Vec<Url>,
    /// `host:port` of every backend push listener (names re-resolved).
    pub backend_grpc: Vec<String>,
    pub push_token: Secret,
    pub gateway_id: String,
    pub trusted_proxies: Vec<IpNet>,
    pub auth_rate_limit: RateLimit,
    pub redis_url: Option<Secret>,
    pub upstream_timeout: Duration,
    pub ws: SocketSettings,
    /// Lower-cased origins; empty means no `Origin` check.
    pub allowed_origins: Vec<String>,
    pub traces_exporter: TracesExporter,
    pub metrics_exporter: MetricsExporter,
    pub prometheus_listen: SocketAddr,
    pub shutdown_timeout: Duration,
    pub log_filter: String,
}

/// How player sockets are kept.
#[derive(Debug, Clone, Copy)]
pub struct SocketSettings {
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub send_queue: usize,
    pub max_per_account: usize,
    pub revalidate_interval: Duration,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let backend_urls = parse_backend_urls(&env.required("GATEWAY_BACKEND_URL")?)?;
        let backend_grpc = parse_grpc_addrs(&env.required("GATEWAY_BACKEND_GRPC_ADDR")?)?;
        let ws = SocketSettings {
            ping_interval: env.positive_duration_or(
                "GATEWAY_WS_PING_INTERVAL",
                default_of("GATEWAY_WS_PING_INTERVAL"),
            )?,
            pong_timeout: env.positive_duration_or(
                "GATEWAY_WS_PONG_TIMEOUT",
                default_of("GATEWAY_WS_PONG_TIMEOUT"),
            )?,
            send_queue: positive(
                env,
                "GATEWAY_WS_SEND_QUEUE",
                default_of("GATEWAY_WS_SEND_QUEUE"),
            )?,
            max_per_account: positive(
                env,
                "GATEWAY_WS_MAX_PER_ACCOUNT",
                default_of("GATEWAY_WS_MAX_PER_ACCOUNT"),
            )?,
            revalidate_interval: env.positive_duration_or(
                "GATEWAY_WS_REVALIDATE_INTERVAL",
                default_of("GATEWAY_WS_REVALIDATE_INTERVAL"),
            )?,
        };
        Ok(Self {
            http_listen: env.socket_addr_or(
                "GATEWAY_HTTP_LISTEN_ADDR",
                default_of("GATEWAY_HTTP_LISTEN_ADDR"),
            )?,
            backend_urls,
            backend_grpc,
            push_token: env.required_secret("GATEWAY_PUSH_TOKEN")?,
            gateway_id: env.get("GATEWAY_ID").map_or_else(host_name, str::to_owned),
            trusted_proxies: parse_cidrs(env.get("GATEWAY_TRUSTED_PROXIES").unwrap_or(""))?,
            auth_rate_limit: env.parse_or(
                "GATEWAY_AUTH_RATE_LIMIT",
                default_of("GATEWAY_AUTH_RATE_LIMIT"),
            )?,
            redis_url: parse_redis_url(env.get("GATEWAY_REDIS_URL"))?,
            upstream_timeout: env.positive_duration_or(
                "GATEWAY_UPSTREAM_TIMEOUT",
                default_of("GATEWAY_UPSTREAM_TIMEOUT"),
            )?,
            ws,
            allowed_origins: list(env.get("GATEWAY_ALLOWED_ORIGINS").unwrap_or(""))
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            traces_exporter: traces_exporter(env)?,
            metrics_exporter: metrics_exporter(env)?,
            prometheus_listen: env.socket_addr_or(
                "GATEWAY_OTEL_PROMETHEUS_LISTEN_ADDR",
                default_of("GATEWAY_OTEL_PROMETHEUS_LISTEN_ADDR"),
            )?,
            shutdown_timeout: env.positive_duration_or(
                "GATEWAY_SHUTDOWN_TIMEOUT",
                default_of("GATEWAY_SHUTDOWN_TIMEOUT"),
            )?,
            log_filter: env.string_or("RUST_LOG", "info"),
        })
    }

    /// `GATEWAY_*` variables that are set but not known.
    pub fn unknown_variables(env: &Env) -> Vec<String> {
        let known: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        env.unknown_with_prefix("GATEWAY_", &known)
    }

    pub fn telemetry(&self) -> TelemetrySettings {
        TelemetrySettings {
            log_filter: self.log_filter.clone(),
            traces: self.traces_exporter,
            metrics: self.metrics_exporter,
            prometheus_listen: Some(self.prometheus_listen),
            service_name: std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "galaxy-gateway".to_owned()),
        }
    }
}

fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn positive(env: &Env, name: &str, default: &str) -> Result<usize, ConfigError> {
    let n: usize = env.parse_or(name, default)?;
    if n == 0 {
        return Err(ConfigError::new(name, "must be at least 1"));
    }
    Ok(n)
}

fn parse_backend_urls(raw: &str) -> Result<Vec<Url>, ConfigError> {
    const VAR: &str = "GATEWAY_BACKEND_URL";
    let urls = list(raw)
        .map(|s| {
            let url = Url::parse(s).map_err(|e| ConfigError::new(VAR, format!("{s:?}: {e}")))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(ConfigError::new(
                    VAR,
                    format!("{s:?}: expected http or https"),
                ));
            }
            if url.host_str().is_none() {
                return Err(ConfigError::new(VAR, format!("{s:?}: no host")));
            }
            if url.path() != "/" || url.query().is_some() {
                return Err(ConfigError::new(
                    VAR,
                    format!("{s:?}: give the base URL only (no path or query)"),
                ));
            }
            Ok(url)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(ConfigError::new(VAR, "required but not set"));
    }
    Ok(urls)
}

fn parse_grpc_addrs(raw: &str) -> Result<Vec<String>, ConfigError> {
    const VAR: &str = "GATEWAY_BACKEND_GRPC_ADDR";
    let addrs = list(raw)
        .map(|s| {
            let port = s.rsplit_once(':').and_then(|(host, port)| {
                (!host.is_empty())
                    .then(|| port.parse::<u16>().ok())
                    .flatten()
            });
            match port {
                Some(p) if p > 0 => Ok(s.to_owned()),
                _ => Err(ConfigError::new(VAR, format!("{s:?}: expected host:port"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(ConfigError::new(VAR, "required but not set"));
    }
    Ok(addrs)
}

/// `10.0.0.0/8, 192.168.1.7` — a bare address is a one-address range.
pub fn parse_cidrs(raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    list(raw)
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "GATEWAY_TRUSTED_PROXIES",
                        format!("{s:?}: expected a CIDR like 10.0.0.0/8 or an address"),
                    )
                })
        })
        .collect()
}

fn parse_redis_url(raw: Option<&str>) -> Result<Option<Secret>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "redis" | "rediss") => Ok(Some(Secret::new(raw))),
        // The value may carry a password: never echo it.
        _ => Err(ConfigError::new(
            "GATEWAY_REDIS_URL",
            "expected redis://[user:password@]host:port[/db]",
        )),
    }
}

fn traces_exporter(env: &Env) -> Result<TracesExporter, ConfigError> {
    let name = "GATEWAY_OTEL_TRACES_EXPORTER";
    env.pick_or(name, default_of(name), TracesExporter::OPTIONS)
}

fn metrics_exporter(env: &Env) -> Result<MetricsExporter, ConfigError> {
    let name = "GATEWAY_OTEL_METRICS_EXPORTER";
    env.pick_or(name, default_of(name), MetricsExporter::OPTIONS)
}

/// The machine's host name (what a container's `HOSTNAME` is), else `gateway`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gateway".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("GATEWAY_BACKEND_URL", "http://127.0.0.1:8080"),
            ("GATEWAY_BACKEND_GRPC_ADDR", "127.0.0.1:9090"),
            ("GATEWAY_PUSH_TOKEN", "secret"),
        ]
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = Settings::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(s.http_listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(s.auth_rate_limit.count, 20);
        assert_eq!(s.auth_rate_limit.window, Duration::from_secs(60));
        assert_eq!(s.ws.send_queue, 64);
        assert_eq!(s.ws.max_per_account, 8);
        assert_eq!(s.ws.ping_interval, Duration::from_secs(15));
        assert_eq!(s.ws.pong_timeout, Duration::from_secs(30));
        assert_eq!(s.ws.revalidate_interval, Duration::from_secs(60));
        assert_eq!(s.upstream_timeout, Duration::from_secs(30));
        assert!(s.redis_url.is_none() && s.trusted_proxies.is_empty());
        assert_eq!(s.prometheus_listen, "127.0.0.1:9465".parse().unwrap());
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, bad) in [
            ("GATEWAY_BACKEND_URL", "ftp://x"),
            ("GATEWAY_BACKEND_URL", "http://x:1/api"),
            ("GATEWAY_BACKEND_GRPC_ADDR", "nohost"),
            ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("GATEWAY_AUTH_RATE_LIMIT", "20"),
            ("GATEWAY_REDIS_URL", "http://user:hunter2@x"),
            ("GATEWAY_WS_SEND_QUEUE", "0"),
            ("GATEWAY_OTEL_METRICS_EXPORTER", "graphite"),
        ] {
            let mut pairs = base();
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, bad));
            let err = Settings::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert_eq!(err.variable, var, "{bad}");
            assert!(!err.to_string().contains("hunter2"));
        }
        let err = Settings::from_env(&Env::from_pairs([("GATEWAY_PUSH_TOKEN", "x")])).unwrap_err();
        assert_eq!(err.variable, "GATEWAY_BACKEND_URL");
    }

    #[test]
    fn readme_table_lists_exactly_the_variables_with_their_defaults() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the repository root");
        let rows: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `GATEWAY_"))
            .collect();
        let in_readme: Vec<&str> = rows
            .iter()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        let in_code: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            in_readme, in_code,
            "README gateway table out of sync with VARIABLES"
        );
        for ((name, default), row) in VARIABLES.iter().zip(&rows) {
            let shown = match *default {
                "" => "(empty)".to_owned(),
                "(required)" => "(required)".to_owned(),
                d => format!("`{d}`"),
            };
            assert!(
                row.contains(&shown),
                "README row for {name} does not show {shown}"
            );
        }
        let env = Env::from_pairs(base().into_iter().chain([("GATEWAY_TYPO", "1")]));
        assert_eq!(Settings::unknown_variables(&env), ["GATEWAY_TYPO"]);
    }

    #[test]
    fn lists_and_ranges() {
        let mut pairs = base();
        pairs.push(("GATEWAY_BACKEND_URL", "http://a:1, http://b:2/"));
        pairs.push(("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7, ::1"));
        pairs.push(("GATEWAY_ALLOWED_ORIGINS", "https://Play.Example/ ,http://x"));
        pairs.retain(|(k, v)| *k != "GATEWAY_BACKEND_URL" || v.contains(','));
        let s = Settings::from_env(&Env::from_pairs(pairs)).unwrap();
        assert_eq!(s.backend_urls.len(), 2);
        assert_eq!(s.trusted_proxies.len(), 3);
        assert_eq!(s.allowed_origins, ["https://play.example", "http://x"]);
    }
}
