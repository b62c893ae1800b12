//! Telemetry for every Galaxy process: JSON log lines on stdout carrying the
//! `request_id` (and, once tracing export is on, the OpenTelemetry trace and
//! span ids) of the scope they are written in; panics to stderr; and the
//! `email_hash` used wherever a module would otherwise log an address.

mod json;
mod pii;

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

pub use json::JsonLogLayer;
pub use pii::email_hash;

/// Installs the global subscriber: `RUST_LOG` filter (default `info`) and
/// JSON lines to `writer`. Tests pass a buffer; binaries pass `std::io::stdout`.
pub fn init<W>(filter: &str, writer: W) -> Result<(), tracing::subscriber::SetGlobalDefaultError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing::subscriber::set_global_default(subscriber(filter, writer))
}

/// The subscriber `init` installs, for scoped use (`with_default`) in tests.
pub fn subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    Registry::default()
        .with(filter)
        .with(JsonLogLayer::new(writer))
}

/// Writes panics (message, location, backtrace) to stderr, then lets the
/// previous hook run. Never writes to stdout, which carries the JSON log.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        let thread = std::thread::current();
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "panic in thread {:?}: {info}\n{backtrace}",
            thread.name().unwrap_or("<unnamed>")
        );
        drop(err);
        previous(info);
    }));
}
