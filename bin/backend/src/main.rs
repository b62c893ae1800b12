//! `galaxy-backend [serve|migrate|check-config]`
//!
//! Exit codes: 0 success, 1 runtime failure, 2 configuration error.

use std::process::ExitCode;

use galaxy_backend::config::Config;
use galaxy_backend::{serve, telemetry};
use galaxy_core::env::Env;

const USAGE: &str = "usage: galaxy-backend [serve|migrate|check-config|healthcheck]\n\
  serve         run the backend (default)\n\
  migrate       apply database migrations and exit\n\
  check-config  validate the environment and exit (0 valid, 2 invalid)\n\
  healthcheck   exit 0 when /readyz on BACKEND_HTTP_LISTEN_ADDR answers 200, else 1";

fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        eprintln!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if !matches!(
        command.as_str(),
        "serve" | "migrate" | "check-config" | "healthcheck"
    ) {
        eprintln!("unknown command {command:?}\n{USAGE}");
        return ExitCode::from(2);
    }

    let env = Env::from_process();
    if command == "healthcheck" {
        // Only the listener matters: a container's probe must not depend
        // on the rest of the configuration (or on opening the GeoIP file).
        return galaxy_core::healthcheck::run(&env, "BACKEND_HTTP_LISTEN_ADDR", "0.0.0.0:8080");
    }
    // `<NAME>_FILE` secrets (container secrets are files) become `NAME`.
    let env = match env.read_secret_files() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_env(&env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // Opened (and verified end to end) before anything else, so a missing or
    // corrupt database is a configuration error, never a failure mid-request.
    let geo = match galaxy_geo::GeoIp::open(&config.geoip.db_path) {
        Ok(geo) => geo,
        Err(e) => {
            eprintln!("configuration error: BACKEND_GEOIP_DB_PATH: {e}");
            return ExitCode::from(2);
        }
    };
    if command == "check-config" {
        return ExitCode::SUCCESS;
    }

    galaxy_telemetry::install_panic_hook();
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
    // Exporters are built inside the runtime (the OTLP channel's task lives
    // on it); `migrate` only logs.
    let settings = match command.as_str() {
        "migrate" => galaxy_telemetry::TelemetrySettings::logs_only(&config.telemetry.log_filter),
        _ => config.telemetry.clone(),
    };
    let installed = {
        let _rt = runtime.enter();
        galaxy_telemetry::Telemetry::new(settings).install(std::io::stdout)
    };
    let telemetry_guard = match installed {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("cannot install telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    galaxy_core::set_request_observer(telemetry::HttpObserver);
    for name in Config::unknown_variables(&env) {
        tracing::warn!(variable = %name, "unknown BACKEND_* variable ignored");
    }

    let shutdown_timeout = config.shutdown_timeout;
    let clock = {
        let _rt = runtime.enter();
        telemetry::ShutdownClock::watch()
    };
    let result = runtime.block_on(async {
        match command.as_str() {
            "migrate" => serve::migrate_only(&config).await,
            _ => {
                let scrape = match telemetry_guard.prometheus() {
                    Some(scrape) => {
                        // Always set by `TelemetrySettings::from_env`.
                        let addr = config.telemetry.prometheus_listen.ok_or_else(|| {
                            anyhow::anyhow!("BACKEND_OTEL_PROMETHEUS_LISTEN_ADDR: not set")
                        })?;
                        Some(telemetry::serve_scrape(addr, scrape)?)
                    }
                    None => None,
                };
                let served = serve::serve(config, geo).await;
                if let Some(handle) = scrape {
                    handle.stop(false).await;
                }
                served
            }
        }
    });
    // Flush spans and metrics while the runtime (and the OTLP channel on
    // it) is still alive; bounded so an unreachable collector cannot hold
    // the exit.
    let flush_bound = clock.flush_bound(shutdown_timeout);
    if !telemetry_guard.shutdown(flush_bound) {
        eprintln!("telemetry flush did not finish within {flush_bound:?}; pending data dropped");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "backend stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
