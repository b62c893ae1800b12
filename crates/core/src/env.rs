//! Typed parsing of environment variables. Every error names the variable,
//! so the binary can print one line and exit 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

mod variables;

pub use variables::{REQUIRED, Reader, Variable, assert_each_names_its_variable, looks_like_email};

/// A configuration error: which variable, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(<empty>)"
        } else {
            "Secret(***)"
        })
    }
}

/// `count` events per `window`, written `5/15m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub window: Duration,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (count, window) = s
            .split_once('/')
            .ok_or_else(|| format!("expected COUNT/WINDOW like 5/15m, got {s:?}"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("bad count in {s:?}"))?;
        if count == 0 {
            return Err("count must be at least 1".into());
        }
        let window = parse_duration(window.trim())?;
        if window.is_zero() {
            return Err("window must be longer than zero".into());
        }
        Ok(Self { count, window })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.window.as_secs())
    }
}

/// Parses `500ms`, `2s`, `5m`, `1h`, `720h`, and sequences like `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("expected a duration like 500ms, 2s, 5m or 1h, got {s:?}");
    if s.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(err()),
        };
        let part = unit
            .checked_mul(u32::try_from(value).map_err(|_| err())?)
            .ok_or_else(err)?;
        total = total.checked_add(part).ok_or_else(err)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Secret variables that may instead be given as `<NAME>_FILE`, naming a file
/// whose content is the value (Docker and Kubernetes secrets are files).
pub const SECRET_VARIABLES: &[&str] = &[
    "BACKEND_POSTGRES_DSN",
    "BACKEND_PUSH_TOKEN",
    "BACKEND_SMTP_PASSWORD",
    "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
    "GATEWAY_PUSH_TOKEN",
    "GATEWAY_REDIS_URL",
];

/// The suffix of a secret given as a file (`BACKEND_PUSH_TOKEN_FILE`).
pub const FILE_SUFFIX: &str = "_FILE";

/// A snapshot of the environment to read configuration from.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Replaces every `<NAME>_FILE` of [`SECRET_VARIABLES`] by `NAME` with the
    /// file's content (one trailing newline trimmed: editors and `echo` add
    /// it). Setting both forms is an error, as is an unreadable file; the
    /// message names the variable and the path, never the content.
    pub fn read_secret_files(mut self) -> Result<Self, ConfigError> {
        for name in SECRET_VARIABLES {
            let file_var = format!("{name}{FILE_SUFFIX}");
            let Some(path) = self.get(&file_var).map(str::to_owned) else {
                continue;
            };
            if self.get(name).is_some() {
                return Err(ConfigError::new(
                    &file_var,
                    format!("set either {name} or {file_var}, not both"),
                ));
            }
            let content = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(&file_var, format!("cannot read {path:?}: {e}")))?;
            let value = content
                .strip_suffix("\r\n")
                .or_else(|| content.strip_suffix('\n'))
                .unwrap_or(&content);
            if value.is_empty() {
                return Err(ConfigError::new(&file_var, format!("{path:?} is empty")));
            }
            self.vars.insert((*name).to_owned(), value.to_owned());
            self.vars.remove(&file_var);
        }
        Ok(self)
    }

    /// The raw value; an empty string counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError::new(name, "required but not set"))
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub fn secret(&self, name: &str) -> Secret {
        Secret::new(self.get(name).unwrap_or_default())
    }

    pub fn required_secret(&self, name: &str) -> Result<Secret, ConfigError> {
        self.required(name).map(Secret::new)
    }

    /// Parses with `FromStr`, falling back to `default` (itself parsed, so the
    /// defaults are written exactly as an operator would write them).
    pub fn parse_or<T>(&self, name: &str, default: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self.get(name).unwrap_or(default);
        raw.parse::<T>()
            .map_err(|e| ConfigError::new(name, format!("invalid value {raw:?}: {e}")))
    }

    pub fn duration_or(&self, name: &str, default: &str) -> Result<Duration, ConfigError> {
        let raw = self.get(name).unwrap_or(default);
        parse_duration(raw).map_err(|e| ConfigError::new(name, e))
    }

    /// A duration that must be longer than zero (worker periods, TTLs).
    pub fn positive_duration_or(&self, name: &str, default: &str) -> Result<Duration, ConfigError> {
        let d = self.duration_or(name, default)?;
        if d.is_zero() {
            return Err(ConfigError::new(name, "must be longer than zero"));
        }
        Ok(d)
    }

    pub fn socket_addr_or(&self, name: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        self.parse_or(name, default)
    }

    /// One of `allowed`, lower-cased.
    pub fn choice_or(
        &self,
        name: &str,
        default: &str,
        allowed: &[&str],
    ) -> Result<String, ConfigError> {
        let options: Vec<(&str, &str)> = allowed.iter().map(|&a| (a, a)).collect();
        self.pick_or(name, default, &options).map(str::to_owned)
    }

    /// The value paired with the lower-cased value's name in `options`.
    pub fn pick_or<T: Copy>(
        &self,
        name: &str,
        default: &str,
        options: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let raw = self.get(name).unwrap_or(default).to_ascii_lowercase();
        options
            .iter()
            .find(|(option, _)| *option == raw)
            .map(|&(_, value)| value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|&(option, _)| option).collect();
                ConfigError::new(
                    name,
                    format!(
                        "invalid value {raw:?}: expected one of {}",
                        names.join(", ")
                    ),
                )
            })
    }

    /// Variables with `prefix` that are not in `known` (to warn about typos).
    /// The `_FILE` form of a known secret counts as known.
    pub fn unknown_with_prefix(&self, prefix: &str, known: &[&str]) -> Vec<String> {
        let is_known = |k: &str| {
            known.contains(&k)
                || k.strip_suffix(FILE_SUFFIX)
                    .is_some_and(|n| known.contains(&n) && SECRET_VARIABLES.contains(&n))
        };
        self.vars
            .keys()
            .filter(|k| k.starts_with(prefix) && !is_known(k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("720h").unwrap(),
            Duration::from_secs(720 * 3600)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "abc", "5", "s", "5x", "-1s", "1.5s", "99999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        let r: RateLimit = "5/15m".parse().unwrap();
        assert_eq!((r.count, r.window), (5, Duration::from_secs(900)));
        for bad in ["5", "0/1m", "5/0s", "x/1m", "5/abc"] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_variable() {
        let env = Env::from_pairs([("BACKEND_MAIL_WORKER_INTERVAL", "abc")]);
        let err = env
            .duration_or("BACKEND_MAIL_WORKER_INTERVAL", "2s")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("BACKEND_MAIL_WORKER_INTERVAL: ")
        );
        let err = env.required("BACKEND_POSTGRES_DSN").unwrap_err();
        assert_eq!(
            err.to_string(),
            "BACKEND_POSTGRES_DSN: required but not set"
        );
        assert_eq!(
            env.choice_or("X", "OTLP", &["otlp", "none"]).unwrap(),
            "otlp"
        );
        assert!(format!("{:?}", Secret::new("hunter2")).contains("***"));
    }

    /// A file removed on drop (core has no tempfile dependency).
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Err(e) = std::fs::remove_file(&self.0) {
                eprintln!("cannot remove test file {}: {e}", self.0.display());
            }
        }
    }

    fn secret_file(content: &str) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "galaxy-core-secret-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }

    #[test]
    fn secrets_from_files() {
        let token = secret_file("s3cret-token-0123456789\n");
        let dsn = secret_file("postgres://u:p@db/galaxy\r\n");
        let bare = secret_file("no-newline");
        let env = Env::from_pairs([
            ("BACKEND_PUSH_TOKEN_FILE", token.str()),
            ("BACKEND_POSTGRES_DSN_FILE", dsn.str()),
            ("GATEWAY_REDIS_URL_FILE", bare.str()),
            ("BACKEND_SMTP_HOST", "mail"),
        ])
        .read_secret_files()
        .unwrap();
        assert_eq!(
            env.get("BACKEND_PUSH_TOKEN"),
            Some("s3cret-token-0123456789")
        );
        assert_eq!(
            env.get("BACKEND_POSTGRES_DSN"),
            Some("postgres://u:p@db/galaxy")
        );
        assert_eq!(env.get("GATEWAY_REDIS_URL"), Some("no-newline"));
        // only one trailing newline is the file's framing; the rest is value
        let two = secret_file("pw\n\n");
        let env = Env::from_pairs([("BACKEND_SMTP_PASSWORD_FILE", two.str())])
            .read_secret_files()
            .unwrap();
        assert_eq!(env.get("BACKEND_SMTP_PASSWORD"), Some("pw\n"));
    }

    #[test]
    fn secret_file_errors_name_the_variable() {
        let token = secret_file("t");
        let both = Env::from_pairs([
            ("GATEWAY_PUSH_TOKEN", "inline"),
            ("GATEWAY_PUSH_TOKEN_FILE", token.str()),
        ])
        .read_secret_files()
        .unwrap_err();
        assert_eq!(both.variable, "GATEWAY_PUSH_TOKEN_FILE");
        assert!(both.problem.contains("not both"), "{both}");
        let missing = Env::from_pairs([("BACKEND_PUSH_TOKEN_FILE", "/nonexistent/galaxy/token")])
            .read_secret_files()
            .unwrap_err();
        assert_eq!(missing.variable, "BACKEND_PUSH_TOKEN_FILE");
        assert!(missing.problem.contains("/nonexistent/galaxy/token"));
        let empty = secret_file("\n");
        let err = Env::from_pairs([("BACKEND_ADMIN_BOOTSTRAP_PASSWORD_FILE", empty.str())])
            .read_secret_files()
            .unwrap_err();
        assert!(err.problem.contains("empty"), "{err}");
        // a non-secret variable has no _FILE form: it stays as it is
        let env = Env::from_pairs([("BACKEND_SMTP_HOST_FILE", token.str())])
            .read_secret_files()
            .unwrap();
        assert_eq!(env.get("BACKEND_SMTP_HOST"), None);
    }

    #[test]
    fn file_forms_of_known_secrets_are_not_unknown() {
        let env = Env::from_pairs([
            ("BACKEND_PUSH_TOKEN_FILE", "/run/secrets/t"),
            ("BACKEND_SMTP_HOST_FILE", "/x"),
            ("BACKEND_TYPO", "1"),
        ]);
        let known = ["BACKEND_PUSH_TOKEN", "BACKEND_SMTP_HOST"];
        assert_eq!(
            env.unknown_with_prefix("BACKEND_", &known),
            ["BACKEND_SMTP_HOST_FILE", "BACKEND_TYPO"]
        );
    }
}
