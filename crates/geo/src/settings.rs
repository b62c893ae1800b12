//! `BACKEND_GEOIP_DB_PATH`: which database [`crate::GeoIp::open`] reads.

use std::path::PathBuf;

use galaxy_core::env::{ConfigError, Env, Reader, Variable};

/// The variables this crate reads (SYSTEM.md §3).
pub const VARIABLES: &[Variable] = &[Variable::required(
    "BACKEND_GEOIP_DB_PATH",
    "GeoLite2-Country (or compatible) `.mmdb`",
)];

#[derive(Debug, Clone)]
pub struct Settings {
    /// Opened (and verified) by the binary before anything else starts.
    pub db_path: PathBuf,
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let r = Reader::new(env, VARIABLES);
        Ok(Self {
            db_path: r.required("BACKEND_GEOIP_DB_PATH")?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_required() {
        let err = Settings::from_env(&Env::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "BACKEND_GEOIP_DB_PATH: required but not set"
        );
        let env = Env::from_pairs([("BACKEND_GEOIP_DB_PATH", "/data/country.mmdb")]);
        let s = Settings::from_env(&env).unwrap();
        assert_eq!(s.db_path, PathBuf::from("/data/country.mmdb"));
    }
}
