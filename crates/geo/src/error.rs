use std::path::PathBuf;

/// What can go wrong with the GeoIP database.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file is missing, unreadable, or not a valid MaxMind DB.
    #[error("cannot open GeoIP database {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// The file opened but the record for an address could not be read
    /// (a corrupt search tree or data section).
    #[error("GeoIP lookup failed: {0}")]
    Lookup(#[from] maxminddb::MaxMindDbError),
}
