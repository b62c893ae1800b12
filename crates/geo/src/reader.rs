use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use maxminddb::{PathElement, Reader};

use crate::error::GeoError;

const COUNTRY: &[PathElement<'static>] =
    &[PathElement::Key("country"), PathElement::Key("iso_code")];
const REGISTERED_COUNTRY: &[PathElement<'static>] = &[
    PathElement::Key("registered_country"),
    PathElement::Key("iso_code"),
];

/// A GeoLite2-Country (or compatible) database held in memory; cheap to clone.
#[derive(Clone)]
pub struct GeoIp {
    reader: Arc<Reader<Vec<u8>>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("path", &self.path)
            .field("database_type", &self.database_type())
            .finish()
    }
}

impl GeoIp {
    /// Reads the whole file and checks it end to end.
    ///
    /// `verify` walks the search tree and every data record once, so a
    /// truncated or corrupt file is refused here, at start, with the reason,
    /// instead of surfacing later as lookup errors on the request path. It
    /// costs a fraction of a second even for a full GeoLite2-Country file.
    pub fn open(path: &Path) -> Result<GeoIp, GeoError> {
        let open_error = |source| GeoError::Open {
            path: path.to_owned(),
            source,
        };
        let bytes = std::fs::read(path).map_err(|e| open_error(e.into()))?;
        Self::verified(bytes, path)
    }

    /// [`GeoIp::open`] over bytes already in memory (named `<memory>` in errors).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoIp, GeoError> {
        Self::verified(bytes, Path::new("<memory>"))
    }

    fn verified(bytes: Vec<u8>, path: &Path) -> Result<GeoIp, GeoError> {
        let open_error = |source| GeoError::Open {
            path: path.to_owned(),
            source,
        };
        let reader = Reader::from_source(bytes).map_err(open_error)?;
        reader.verify().map_err(open_error)?;
        Ok(GeoIp {
            reader: Arc::new(reader),
            path: Arc::new(path.to_owned()),
        })
    }

    /// ISO 3166-1 alpha-2 country of `ip`, upper case; `None` when the
    /// database has no country for it (private, reserved, unknown ranges).
    ///
    /// The location country is preferred; the registered country is the
    /// fallback for networks MaxMind only knows the registrant of. Anything
    /// that is not two ASCII letters is treated as unknown, so a surprising
    /// database can never produce a value the `^[A-Z]{2}$` columns reject.
    pub fn country(&self, ip: IpAddr) -> Result<Option<String>, GeoError> {
        Ok(self
            .country_code(ip)?
            .map(|code| String::from_utf8_lossy(&code).into_owned()))
    }

    /// [`GeoIp::country`] without the allocation, for the per-request counters.
    pub(crate) fn country_code(&self, ip: IpAddr) -> Result<Option<[u8; 2]>, GeoError> {
        // `::ffff:a.b.c.d` (a dual-stack listener's view of an IPv4 peer) is
        // looked up as the IPv4 address it is: IPv4-only databases cannot
        // take IPv6 input at all.
        let ip = ip.to_canonical();
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(None);
        }
        let found = self.reader.lookup(ip)?;
        if !found.has_data() {
            return Ok(None);
        }
        let code = match found.decode_path::<&str>(COUNTRY)? {
            Some(code) => Some(code),
            None => found.decode_path::<&str>(REGISTERED_COUNTRY)?,
        };
        Ok(code.and_then(normalize))
    }

    /// `database_type` from the file's metadata (e.g. `GeoLite2-Country`).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built (seconds since the Unix epoch).
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn normalize(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => {
            tracing::debug!(
                code,
                "GeoIP returned a country code that is not ISO 3166-1 alpha-2"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalizes_country_codes() {
        assert_eq!(normalize("GB"), Some(*b"GB"));
        assert_eq!(normalize("se"), Some(*b"SE"));
        assert_eq!(normalize(""), None);
        assert_eq!(normalize("GBR"), None);
        assert_eq!(normalize("G1"), None);
        assert_eq!(normalize("É"), None);
    }
}
