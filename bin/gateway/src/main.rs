//! `galaxy-gateway [serve|check-config]`
//!
//! Exit codes: 0 success, 1 runtime failure, 2 configuration error.

use std::process::ExitCode;
use std::time::Duration;

use galaxy_core::env::Env;
use galaxy_gateway::Settings;

const USAGE: &str = "usage: galaxy-gateway [serve|check-config|healthcheck]\n\
  serve         run the gateway (default)\n\
  check-config  validate the environment and exit (0 valid, 2 invalid)\n\
  healthcheck   exit 0 when /readyz on GATEWAY_HTTP_LISTEN_ADDR answers 200, else 1";

fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        eprintln!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if !matches!(command.as_str(), "serve" | "check-config" | "healthcheck") {
        eprintln!("unknown command {command:?}\n{USAGE}");
        return ExitCode::from(2);
    }
    let env = Env::from_process();
    if command == "healthcheck" {
        return galaxy_core::healthcheck::run(&env, "GATEWAY_HTTP_LISTEN_ADDR", "0.0.0.0:8000");
    }
    // `<NAME>_FILE` secrets (container secrets are files) become `NAME`.
    let env = match env.read_secret_files() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env(&env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
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
    let installed = {
        let _rt = runtime.enter();
        galaxy_telemetry::Telemetry::new(settings.telemetry()).install(std::io::stdout)
    };
    let telemetry = match installed {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("cannot install telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    for name in Settings::unknown_variables(&env) {
        tracing::warn!(variable = %name, "unknown GATEWAY_* variable ignored");
    }
    let shutdown_timeout = settings.shutdown_timeout;
    let result = runtime.block_on(async {
        let scrape = match telemetry.prometheus() {
            Some(scrape) => Some(serve_scrape(settings.prometheus_listen, scrape).await?),
            None => None,
        };
        let served = galaxy_gateway::serve(settings, galaxy_core::shutdown_signal()).await;
        if let Some(task) = scrape {
            task.abort();
        }
        served
    });
    if !telemetry.shutdown(shutdown_timeout.min(Duration::from_secs(5))) {
        eprintln!("telemetry flush did not finish in time; pending data dropped");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "gateway stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `GET /metrics` on its own listener, never the public one.
async fn serve_scrape(
    addr: std::net::SocketAddr,
    scrape: galaxy_telemetry::PrometheusScrape,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind the Prometheus listener on {addr}"))?;
    tracing::info!(%addr, "Prometheus scrape listener on /metrics");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = scrape.encode();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        galaxy_telemetry::PrometheusScrape::CONTENT_TYPE,
                    )],
                    body,
                )
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "Prometheus listener failed");
        }
    }))
}
