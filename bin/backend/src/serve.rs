//! Composition root: config → services → HTTP + gRPC + workers, one
//! shutdown path. Owns no domain logic.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use galaxy_core::{ApiError, Readiness, ReadyFlag, RequestContext};
use galaxy_db::leader::{ElectionSettings, Leadership};
use galaxy_db::{MigrateError, PostgresCheck, build_pool};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::grpc::GrpcListener;
use crate::modules::Modules;

/// `galaxy-backend migrate`.
pub async fn migrate_only(config: &Config) -> anyhow::Result<()> {
    let applied = galaxy_db::migrate(&config.postgres.url)
        .await
        .context("migration failed")?;
    tracing::info!(applied = ?applied, "migrations are up to date");
    Ok(())
}

/// `galaxy-backend serve`.
pub async fn serve(config: Config, geo: galaxy_geo::GeoIp) -> anyhow::Result<()> {
    if config.mail.smtp.tls == galaxy_mail::TlsMode::None {
        tracing::warn!(
            "BACKEND_SMTP_TLS_MODE=none: mail is sent in plaintext; use only for local development"
        );
    }
    let shutdown = CancellationToken::new();
    let readiness = Readiness::new();
    let pool = build_pool(&config.postgres.url, config.postgres.pool);
    readiness.add_check("postgres", PostgresCheck::new(pool.clone()));
    let migrated = readiness.flag("migrations");
    let grpc_bound = readiness.flag("grpc_listener");
    // Set once migrations ran and every module's cache is warm; until then
    // the API answers 503 rather than guessing from empty caches.
    let booted = readiness.flag("boot");
    // Cleared at the shutdown signal: `/readyz` answers 503 while requests
    // are still served, so the gateway moves away before the listener stops.
    let accepting = readiness.flag("accepting");
    accepting.set_ready();
    // Filled once the election has run its first round (in `boot`).
    let leadership: Arc<OnceLock<Leadership>> = Arc::default();
    {
        let leadership = leadership.clone();
        readiness.report_leader(Arc::new(move || {
            leadership.get().is_some_and(Leadership::is_leader)
        }));
    }

    let modules = Modules::build(&config, pool.clone(), geo, &readiness)?;

    let grpc = GrpcListener::bind(config.grpc.listen).await?;
    let grpc_addr = grpc.local_addr()?;

    let app_readiness = readiness.clone();
    let app_booted = booted.clone();
    let app_modules = modules.clone();
    let http = HttpServer::new(move || {
        let modules = app_modules.clone();
        App::new()
            .app_data(web::Data::new(app_readiness.clone()))
            .app_data(web::Data::new(app_booted.clone()))
            // Innermost: sees the admin API's answers (audit log).
            .wrap(from_fn(galaxy_console::audit_api))
            .wrap(from_fn(api_gate))
            .wrap(RequestContext)
            .configure(galaxy_core::http::configure_extractors)
            .configure(galaxy_core::http::configure_probes)
            .configure(crate::openapi::configure)
            .configure(move |cfg| modules.configure(cfg))
    })
    .disable_signals()
    .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
    .bind(config.http.listen)
    .with_context(|| format!("cannot bind the HTTP listener on {}", config.http.listen))?;
    let http_addr = http.addrs().first().copied();
    let http = http.run();
    let http_handle = http.handle();
    tracing::info!(http = ?http_addr, grpc = %grpc_addr, "listening");

    let mut http_task = tokio::spawn(http);
    let tokens: Vec<&str> = config
        .grpc
        .push_tokens
        .iter()
        .map(galaxy_core::env::Secret::expose)
        .collect();
    let push = modules.push_service(&tokens, shutdown.clone());
    let mut grpc_task = tokio::spawn(grpc.serve(push, grpc_bound, shutdown.clone()));
    let mut boot_task = tokio::spawn(boot(
        config.clone(),
        modules.clone(),
        migrated,
        booted,
        leadership,
        shutdown.clone(),
    ));
    let mut workers = Vec::new();
    let mut booting = true;

    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            () = galaxy_core::shutdown_signal() => {
                let grace = drain_grace(config.shutdown_timeout);
                tracing::info!(?grace, "shutdown requested; draining: not ready, still serving");
                accepting.set_not_ready();
                tokio::time::sleep(grace).await;
                break Ok(());
            }
            res = &mut http_task => break Err(anyhow::anyhow!("HTTP server exited: {res:?}")),
            res = &mut grpc_task => break Err(anyhow::anyhow!("gRPC server exited: {res:?}")),
            res = &mut boot_task, if booting => {
                booting = false;
                match res {
                    Ok(Ok(handles)) => workers = handles,
                    Ok(Err(e)) => break Err(e.context("start-up failed")),
                    Err(e) => break Err(anyhow::anyhow!("start-up task failed: {e}")),
                }
            }
        }
    };

    let drain = async {
        // In-flight requests finish first; only then do workers stop, so
        // their final flushes (country counters, session last-seen) include
        // every request that was answered.
        http_handle.stop(true).await;
        shutdown.cancel();
        if booting && let Ok(Ok(handles)) = boot_task.await {
            workers = handles;
        }
        for worker in workers {
            let _ = worker.await;
        }
        if !grpc_task.is_finished() {
            let _ = grpc_task.await;
        }
    };
    if tokio::time::timeout(config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?config.shutdown_timeout, "shutdown bound reached; exiting anyway");
        shutdown.cancel();
    }
    tracing::info!("stopped");
    outcome
}

/// How long a draining backend keeps taking new requests while `/readyz`
/// says 503: several of the gateway's readiness probes (every 500 ms), so
/// it has stopped routing here before the listener closes; at most half of
/// `BACKEND_SHUTDOWN_TIMEOUT`, which also bounds the drain that follows.
fn drain_grace(shutdown_timeout: Duration) -> Duration {
    (shutdown_timeout / 2).min(Duration::from_secs(2))
}

/// The advisory lock whose holder runs the reconciler and the turn
/// scheduler ("runtime" in ASCII; the migrations use another key).
const RUNTIME_LEADER_KEY: i64 = 0x0072_756e_7469_6d65;

/// How often a follower tries to lead and the leader checks its session:
/// a dead leader's successor takes over within about this long.
const LEADER_RETRY: Duration = Duration::from_secs(2);

/// Migrations (retried while the database is unreachable), then module
/// start-up: caches warm, workers spawned. Returns the worker handles so
/// shutdown can wait for their current batch.
async fn boot(
    config: Config,
    modules: Modules,
    migrated: ReadyFlag,
    booted: ReadyFlag,
    leadership: Arc<OnceLock<Leadership>>,
    shutdown: CancellationToken,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut delay = Duration::from_millis(250);
    loop {
        match galaxy_db::migrate(&config.postgres.url).await {
            Ok(applied) => {
                tracing::info!(applied = ?applied, "migrations are up to date");
                break;
            }
            Err(MigrateError::Db(e)) => {
                tracing::warn!(error = %e, retry_in = ?delay, "database not reachable for migrations");
            }
            Err(e) => {
                tracing::error!(error = %e, "migrations failed");
                return Err(e.into());
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(Vec::new()),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    migrated.set_ready();
    let listener = match modules.warm(&config.postgres.url).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "module start-up failed");
            return Err(e);
        }
    };
    let (leader, election) = galaxy_db::leader::start(
        config.postgres.url.clone(),
        ElectionSettings {
            lock_key: RUNTIME_LEADER_KEY,
            retry: LEADER_RETRY,
        },
        shutdown.clone(),
    )
    .await;
    tracing::info!(leader = leader.is_leader(), "leader election running");
    let mut workers = modules.spawn_workers(&shutdown, &leader);
    workers.push(election);
    workers.push(modules.follow_peers(listener, &shutdown));
    if leadership.set(leader).is_err() {
        tracing::error!("leadership was already set; /readyz keeps the first election's view");
    }
    booted.set_ready();
    tracing::info!("boot complete; serving the API");
    Ok(workers)
}

/// Until boot completes, `/api/*` answers 503 instead of serving from cold caches.
async fn api_gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let booted = req
        .app_data::<web::Data<ReadyFlag>>()
        .is_none_or(|flag| flag.is_ready());
    if !booted && req.path().starts_with("/api/") {
        return Err(ApiError::unavailable("the backend is starting").into());
    }
    next.call(req).await
}
