use std::time::Duration;

use galaxy_core::percent::encode_component;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    #[error("not a postgres:// URL: {0}")]
    Invalid(String),
    #[error("search_path {0:?} must be a plain schema name")]
    BadSchema(String),
}

/// `BACKEND_POSTGRES_DSN`, split into what the driver sees and the schema.
///
/// The `search_path` query parameter is not a libpq parameter, so it is
/// stripped and re-applied as a startup `options` parameter together with a
/// statement timeout: every connection, pooled or not, starts configured and
/// no extra round trip is needed.
#[derive(Clone)]
pub struct DatabaseUrl {
    driver_url: String,
    schema: String,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("DatabaseUrl")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_SCHEMA: &str = "backend";

impl DatabaseUrl {
    pub fn parse(dsn: &str, statement_timeout: Duration) -> Result<Self, DsnError> {
        let mut url = Url::parse(dsn).map_err(|e| DsnError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(DsnError::Invalid(format!("scheme {:?}", url.scheme())));
        }
        let mut schema = None;
        let mut options = Vec::new();
        let mut kept = Vec::new();
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "search_path" => schema = Some(v.into_owned()),
                "options" => options.push(v.into_owned()),
                _ => kept.push((k.into_owned(), v.into_owned())),
            }
        }
        let schema = schema
            .and_then(|s| s.split(',').next().map(|s| s.trim().to_owned()))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        if !is_plain_identifier(&schema) {
            return Err(DsnError::BadSchema(schema));
        }
        options.push(format!("-c search_path={schema}"));
        options.push(format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis()
        ));
        kept.push(("options".to_owned(), options.join(" ")));
        // Built by hand: tokio-postgres does not decode `+` as a space.
        let query = kept
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
        Ok(Self {
            driver_url: url.into(),
            schema,
        })
    }

    /// The URL handed to the driver (secret: may contain a password).
    pub fn driver_url(&self) -> &str {
        &self.driver_url
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> Self {
        #[allow(clippy::expect_used, reason = "driver_url was parsed when built")]
        let mut url = Url::parse(&self.driver_url).expect("driver url was valid");
        url.set_path(database);
        Self {
            driver_url: url.into(),
            schema: self.schema.clone(),
        }
    }
}

/// Lower-case identifier that needs no quoting.
pub(crate) fn is_plain_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_search_path_into_options() {
        let u = DatabaseUrl::parse(
            "postgres://u:p@localhost:5432/galaxy?search_path=backend&sslmode=disable",
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(u.schema(), "backend");
        assert!(!u.driver_url().contains("search_path=backend&"));
        assert!(u.driver_url().contains("sslmode=disable"));
        let parsed = Url::parse(u.driver_url()).unwrap();
        let options: String = parsed
            .query_pairs()
            .find(|(k, _)| k == "options")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(options, "-c search_path=backend -c statement_timeout=30000");
        assert!(!format!("{u:?}").contains("u:p"));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(DatabaseUrl::parse("mysql://x/y", Duration::ZERO).is_err());
        assert!(DatabaseUrl::parse("not a url", Duration::ZERO).is_err());
        assert!(DatabaseUrl::parse("postgres://x/y?search_path=a;drop", Duration::ZERO).is_err());
        let d = DatabaseUrl::parse("postgres://x/y", Duration::ZERO).unwrap();
        assert_eq!(d.schema(), "backend");
        assert!(
            d.with_database("other")
                .driver_url()
                .starts_with("postgres://x/other?")
        );
    }
}
