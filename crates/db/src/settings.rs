//! `BACKEND_POSTGRES_*`: where the database is and how the pool uses it.

use galaxy_core::env::{ConfigError, Env, Reader, Variable};

use crate::dsn::DatabaseUrl;
use crate::pool::PoolSettings;

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[
    Variable::required(
        "BACKEND_POSTGRES_DSN",
        "`postgres://…?search_path=backend`; `search_path` is applied to every pooled connection",
    ),
    Variable::new("BACKEND_POSTGRES_MAX_CONNECTIONS", "16", "pool size"),
    Variable::new(
        "BACKEND_POSTGRES_STATEMENT_TIMEOUT",
        "30s",
        "statement timeout set on every connection",
    ),
];

/// The database URL (with `search_path` and the statement timeout folded
/// in) and the pool's size.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: DatabaseUrl,
    pub pool: PoolSettings,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        let dsn = r.required("BACKEND_POSTGRES_DSN")?;
        let timeout = r.duration("BACKEND_POSTGRES_STATEMENT_TIMEOUT")?;
        let url = DatabaseUrl::parse(&dsn, timeout)
            .map_err(|e| ConfigError::new("BACKEND_POSTGRES_DSN", e.to_string()))?;
        Ok(Self {
            url,
            pool: PoolSettings {
                max_connections: r.count("BACKEND_POSTGRES_MAX_CONNECTIONS")?,
                ..PoolSettings::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use galaxy_core::env::assert_each_names_its_variable;

    const DSN: (&str, &str) = (
        "BACKEND_POSTGRES_DSN",
        "postgres://u@localhost/galaxy?search_path=backend",
    );

    #[test]
    fn defaults() {
        let s = Settings::from_env(&Env::from_pairs([DSN])).unwrap();
        assert_eq!(s.pool.max_connections, 16);
        assert_eq!(s.url.schema(), "backend");
        assert!(s.url.driver_url().contains("statement_timeout%3D30000"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        assert_each_names_its_variable(
            Settings::from_env,
            &[DSN],
            &[
                ("BACKEND_POSTGRES_DSN", "mysql://x/y"),
                ("BACKEND_POSTGRES_MAX_CONNECTIONS", "0"),
                ("BACKEND_POSTGRES_STATEMENT_TIMEOUT", "0s"),
            ],
        );
        let err = Settings::from_env(&Env::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BACKEND_POSTGRES_DSN: required but not set"
        );
    }
}
