//! `galaxy-backend [serve|migrate|check-config]`
//!
//! Exit codes: 0 success, 1 runtime failure, 2 configuration error.

use std::process::ExitCode;

use galaxy_backend::config::Config;
use galaxy_backend::serve;
use galaxy_core::env::Env;

const USAGE: &str = "usage: galaxy-backend [serve|migrate|check-config]\n\
  serve         run the backend (default)\n\
  migrate       apply database migrations and exit\n\
  check-config  validate the environment and exit (0 valid, 2 invalid)";

fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        eprintln!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if !matches!(command.as_str(), "serve" | "migrate" | "check-config") {
        eprintln!("unknown command {command:?}\n{USAGE}");
        return ExitCode::from(2);
    }

    let env = Env::from_process();
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if command == "check-config" {
        return ExitCode::SUCCESS;
    }

    galaxy_telemetry::install_panic_hook();
    if let Err(e) = galaxy_telemetry::init(&config.log_filter, std::io::stdout) {
        eprintln!("cannot install the log subscriber: {e}");
        return ExitCode::FAILURE;
    }
    for name in Config::unknown_variables(&env) {
        tracing::warn!(variable = %name, "unknown BACKEND_* variable ignored");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command.as_str() {
            "migrate" => serve::migrate_only(&config).await,
            _ => serve::serve(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "backend stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
