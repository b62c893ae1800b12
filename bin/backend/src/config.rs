//! The backend's configuration (SYSTEM.md §3), composed: each module reads
//! its own variables with `from_env` in its crate, beside the code they
//! tune; this file reads only the binary's own (listeners, push tokens,
//! shutdown bound). [`MODULES`] chains every module's `VARIABLES`: the
//! README table is checked against it and unknown `BACKEND_*` variables are
//! warned about with it.

use std::net::SocketAddr;
use std::time::Duration;

use galaxy_core::env::{ConfigError, Env, Reader, Secret, Variable};

/// The variables the binary itself reads.
pub const VARIABLES: &[Variable] = &[
    Variable::new(
        "BACKEND_HTTP_LISTEN_ADDR",
        "0.0.0.0:8080",
        "public + admin HTTP API, probes",
    ),
    Variable::new(
        "BACKEND_GRPC_LISTEN_ADDR",
        "0.0.0.0:9090",
        "gRPC push listener (internal)",
    ),
    Variable::required(
        "BACKEND_PUSH_TOKEN",
        "bearer secret the gateway presents on the gRPC listener; two comma-separated while rotating",
    ),
    Variable::new(
        "BACKEND_SHUTDOWN_TIMEOUT",
        "10s",
        "bound on draining requests and worker batches at shutdown",
    ),
];

/// Every module's variables, by module, in the README table's order.
pub const MODULES: &[(&str, &[Variable])] = &[
    ("backend", VARIABLES),
    ("db", galaxy_db::VARIABLES),
    ("mail", galaxy_mail::VARIABLES),
    ("geo", galaxy_geo::VARIABLES),
    ("runtime", galaxy_runtime::VARIABLES),
    ("admin", galaxy_admin::VARIABLES),
    ("console", galaxy_console::VARIABLES),
    ("auth", galaxy_auth::VARIABLES),
    ("notification", galaxy_notification::VARIABLES),
    ("telemetry", galaxy_telemetry::VARIABLES),
];

/// Every variable the backend reads, in the README table's order.
pub fn variables() -> impl Iterator<Item = &'static Variable> {
    MODULES.iter().flat_map(|(_, declared)| declared.iter())
}

#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub grpc: GrpcConfig,
    pub postgres: galaxy_db::Settings,
    pub mail: galaxy_mail::Settings,
    pub geoip: galaxy_geo::Settings,
    pub runtime: galaxy_runtime::RuntimeSettings,
    pub admin: galaxy_admin::Settings,
    pub console_cookies: galaxy_console::CookiePolicy,
    pub auth: galaxy_auth::AuthSettings,
    pub notification: galaxy_notification::NotificationSettings,
    pub telemetry: galaxy_telemetry::TelemetrySettings,
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
    /// Every accepted push token: one, or two while the gateway's rotates.
    pub push_tokens: Vec<Secret>,
}

/// `BACKEND_PUSH_TOKEN`: one token, or two comma-separated so the gateway's
/// can be rotated without downtime (add the new one, roll the gateways, drop
/// the old one). Each is at least 16 characters; the error never shows them.
fn push_tokens(raw: &Secret) -> Result<Vec<Secret>, ConfigError> {
    let tokens: Vec<Secret> = raw
        .expose()
        .split(',')
        .map(|t| Secret::new(t.trim()))
        .collect();
    if tokens.len() > 2 {
        return Err(ConfigError::new(
            "BACKEND_PUSH_TOKEN",
            "at most two comma-separated tokens (the current one and the next)",
        ));
    }
    if tokens.iter().any(|t| t.expose().len() < 16) {
        return Err(ConfigError::new(
            "BACKEND_PUSH_TOKEN",
            "each token must be at least 16 characters",
        ));
    }
    Ok(tokens)
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        // A fixed order: of several bad values, the first read here is the
        // one reported (and the process stops on it).
        let postgres = galaxy_db::Settings::from_env(env)?;
        let grpc = GrpcConfig {
            listen: r.addr("BACKEND_GRPC_LISTEN_ADDR")?,
            push_tokens: push_tokens(&r.required_secret("BACKEND_PUSH_TOKEN")?)?,
        };
        let mail = galaxy_mail::Settings::from_env(env)?;
        let admin = galaxy_admin::Settings::from_env(env)?;
        let console_cookies = galaxy_console::CookiePolicy::from_env(env)?;
        let notification = galaxy_notification::NotificationSettings::from_env(env)?;
        let http = HttpConfig {
            listen: r.addr("BACKEND_HTTP_LISTEN_ADDR")?,
        };
        let geoip = galaxy_geo::Settings::from_env(env)?;
        let auth = galaxy_auth::AuthSettings::from_env(env)?;
        let runtime = galaxy_runtime::RuntimeSettings::from_env(env)?;
        let telemetry = galaxy_telemetry::TelemetrySettings::from_env(env)?;
        Ok(Self {
            http,
            grpc,
            postgres,
            mail,
            geoip,
            runtime,
            admin,
            console_cookies,
            auth,
            notification,
            telemetry,
            shutdown_timeout: r.duration("BACKEND_SHUTDOWN_TIMEOUT")?,
        })
    }

    /// `BACKEND_*` variables that are set but no module reads (likely typos).
    pub fn unknown_variables(env: &Env) -> Vec<String> {
        let known: Vec<&str> = variables().map(|v| v.name).collect();
        env.unknown_with_prefix("BACKEND_", &known)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use galaxy_mail::TlsMode;
    use galaxy_runtime::PullPolicy;
    use galaxy_telemetry::MetricsExporter;

    use super::*;

    pub(crate) fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "BACKEND_POSTGRES_DSN",
                "postgres://u@localhost/galaxy?search_path=backend",
            ),
            ("BACKEND_PUSH_TOKEN", "0123456789abcdef0123"),
            ("BACKEND_SMTP_HOST", "localhost"),
            ("BACKEND_SMTP_FROM", "galaxy@example.com"),
            ("BACKEND_GEOIP_DB_PATH", "/tmp/x.mmdb"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut vars = minimal();
        vars.extend_from_slice(extra);
        Config::from_env(&Env::from_pairs(vars))
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = with(&[]).unwrap();
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.grpc.listen.to_string(), "0.0.0.0:9090");
        assert_eq!(c.postgres.pool.max_connections, 16);
        assert_eq!(c.mail.smtp.port, 587);
        assert_eq!(c.mail.smtp.tls, TlsMode::StartTls);
        assert_eq!(c.mail.smtp.timeout, Duration::from_secs(30));
        assert!(c.admin.service.hash_concurrency >= 1);
        assert!(c.console_cookies.secure);
        assert_eq!(c.auth.session_ttl, Duration::from_secs(720 * 3600));
        assert_eq!(c.auth.email_code_limit.count, 5);
        assert_eq!(c.mail.worker.interval, Duration::from_secs(2));
        assert_eq!(c.mail.worker.max_attempts, 8);
        assert_eq!(c.mail.worker.retry_max, Duration::from_secs(1800));
        assert_eq!(c.mail.worker.connections, 1);
        assert_eq!(c.notification.admin_email, None);
        assert_eq!(c.runtime.pull_policy, PullPolicy::IfMissing);
        assert_eq!(c.telemetry.metrics, MetricsExporter::Otlp);
        assert_eq!(c.runtime.network, "galaxy-engines");
        assert_eq!(c.telemetry.log_filter, "info");
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let cases: &[(&str, &str)] = &[
            ("BACKEND_MAIL_WORKER_INTERVAL", "abc"),
            ("BACKEND_MAIL_WORKER_INTERVAL", "0s"),
            ("BACKEND_HTTP_LISTEN_ADDR", "nowhere"),
            ("BACKEND_POSTGRES_MAX_CONNECTIONS", "0"),
            ("BACKEND_SMTP_PORT", "70000"),
            ("BACKEND_SMTP_TLS_MODE", "ssl"),
            ("BACKEND_AUTH_EMAIL_CODE_LIMIT", "5"),
            ("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "sometimes"),
            ("BACKEND_OTEL_TRACES_EXPORTER", "prometheus"),
            ("BACKEND_NOTIFICATION_ADMIN_EMAIL", "not-an-email"),
            ("BACKEND_PUSH_TOKEN", "short"),
            ("BACKEND_PUSH_TOKEN", "0123456789abcdef0123,short"),
            ("BACKEND_PUSH_TOKEN", "0123456789abcdef0123,"),
            (
                "BACKEND_PUSH_TOKEN",
                "0123456789abcdef0,0123456789abcdef1,0123456789abcdef2",
            ),
            ("BACKEND_POSTGRES_DSN", "mysql://x/y"),
            ("BACKEND_MAIL_RETRY_MAX", "1s"),
            ("BACKEND_MAIL_CLAIM_LEASE", "50s"),
            ("BACKEND_CONSOLE_INSECURE_COOKIE", "maybe"),
            ("BACKEND_SHUTDOWN_TIMEOUT", "0s"),
        ];
        for (name, value) in cases {
            let err = with(&[(name, value)]).unwrap_err();
            assert_eq!(&err.variable, name, "{name}={value} gave {err}");
        }
    }

    #[test]
    fn two_push_tokens_while_rotating() {
        let c = with(&[(
            "BACKEND_PUSH_TOKEN",
            "old-token-0123456789, new-token-0123456789",
        )])
        .unwrap();
        let tokens: Vec<&str> = c.grpc.push_tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["old-token-0123456789", "new-token-0123456789"]);
        let err = with(&[("BACKEND_PUSH_TOKEN", "0123456789abcdef0123,short")]).unwrap_err();
        assert!(!err.to_string().contains("0123456789abcdef0123"), "{err}");
    }

    #[test]
    fn missing_required_variables_are_named() {
        for (name, _) in minimal() {
            let vars: Vec<_> = minimal().into_iter().filter(|(n, _)| *n != name).collect();
            let err = Config::from_env(&Env::from_pairs(vars)).unwrap_err();
            assert_eq!(err.variable, name);
            assert_eq!(err.problem, "required but not set");
        }
        // and those are every variable a module declares required
        let required: BTreeSet<&str> = variables()
            .filter(|v| v.is_required())
            .map(|v| v.name)
            .collect();
        let given: BTreeSet<&str> = minimal().into_iter().map(|(n, _)| n).collect();
        assert_eq!(given, required);
    }

    #[test]
    fn unknown_backend_variables_are_reported() {
        let mut vars = minimal();
        vars.push(("BACKEND_MAIL_WORKER_INTERVALL", "2s"));
        vars.push(("PATH", "/bin"));
        assert_eq!(
            Config::unknown_variables(&Env::from_pairs(vars)),
            vec!["BACKEND_MAIL_WORKER_INTERVALL".to_owned()]
        );
    }

    /// The README's configuration rows for the backend: (name, row).
    fn readme_rows(readme: &str) -> Vec<(&str, &str)> {
        readme
            .lines()
            .filter_map(|row| {
                let name = row.strip_prefix("| `")?.split('`').next()?;
                (name.starts_with("BACKEND_") || name == "RUST_LOG").then_some((name, row))
            })
            .collect()
    }

    /// How the README shows a default.
    fn shown(default: &str) -> String {
        match default {
            "" => "(empty)".to_owned(),
            galaxy_core::env::REQUIRED => galaxy_core::env::REQUIRED.to_owned(),
            d => format!("`{d}`"),
        }
    }

    #[test]
    fn what_the_modules_declare_is_what_the_readme_lists_and_what_is_known() {
        // each name belongs to one module
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (module, declared) in MODULES {
            assert!(!declared.is_empty(), "{module} declares no variable");
            for v in *declared {
                if let Some(other) = owner.insert(v.name, module) {
                    panic!("{} is declared by both {other} and {module}", v.name);
                }
            }
        }

        // the README table lists exactly those, in the same order, with the
        // same defaults
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md at the repository root");
        let rows = readme_rows(&readme);
        for (name, _) in &rows {
            assert!(
                owner.contains_key(name),
                "README lists {name}, which no module declares"
            );
        }
        let listed: BTreeMap<&str, &str> = rows.iter().copied().collect();
        for v in variables() {
            let row = listed.get(v.name).unwrap_or_else(|| {
                panic!("{} ({}) is not in the README table", v.name, owner[v.name])
            });
            let shown = shown(v.default);
            assert!(
                row.split('|')
                    .nth(2)
                    .is_some_and(|cell| cell.trim() == shown),
                "README row for {} does not show default {shown}: {row}",
                v.name
            );
        }
        let in_readme: Vec<&str> = rows.iter().map(|(n, _)| *n).collect();
        let in_code: Vec<&str> = variables().map(|v| v.name).collect();
        assert_eq!(
            in_readme, in_code,
            "README table order differs from config::MODULES"
        );

        // the warning knows every module's variables and nothing else
        let mut vars: Vec<(&str, &str)> = variables().map(|v| (v.name, "x")).collect();
        vars.push(("BACKEND_SMTP_HOTS", "mail"));
        assert_eq!(
            Config::unknown_variables(&Env::from_pairs(vars)),
            ["BACKEND_SMTP_HOTS"]
        );
        for (module, declared) in MODULES {
            let one = declared[0].name;
            let env = Env::from_pairs([(one, "x"), ("BACKEND_SMTP_HOTS", "mail")]);
            assert_eq!(
                Config::unknown_variables(&env),
                ["BACKEND_SMTP_HOTS"],
                "{one} of {module}"
            );
        }
    }
}
