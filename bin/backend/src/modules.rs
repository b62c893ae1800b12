//! Where the domain modules are composed. Each module adds its lines to the
//! four steps below — nothing else in the binary knows about modules:
//!
//! 1. `Modules::build` — construct services (caches empty) from config + pool,
//!    register readiness flags.
//! 2. `Modules::warm` — after migrations: load caches, bootstrap data; set
//!    flags; then `Modules::follow_peers` keeps the caches coherent.
//! 3. `Modules::configure` — mount routes and register app data (resolvers).
//! 4. `Modules::spawn_workers` — background workers, stopped by `shutdown`.
//!
//! The OpenAPI document of each module is merged in `openapi.rs`.

use std::sync::Arc;

use actix_web::web;
use galaxy_core::{Readiness, ReadyFlag};
use galaxy_db::Pool;
use galaxy_db::announce::{Coherent, Listener, ListenerSettings};
use galaxy_notification::{NotificationService, PgNotificationService, PushGrpc, PushHub};

use crate::adapters::{
    Accounts, LobbyNotifications, LobbyRuntime, RuntimeReactions, UserDeletedFanout,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How often the per-request country counters are written (one upsert).
const COUNTER_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Every module's services; cheap to clone (one per HTTP worker).
#[derive(Clone)]
pub struct Modules {
    pool: Pool,
    notification: Arc<PgNotificationService>,
    runtime: galaxy_runtime::Runtime,
    /// The GeoIP database opened at start (declared country at sign-up).
    geo: galaxy_geo::GeoIp,
    /// Per-request country counters; the user session resolver records.
    counters: galaxy_geo::CountryCounters,
    runtime_ready: ReadyFlag,
    /// Up while the change listener follows the peers' writes.
    announcements_ready: ReadyFlag,
    /// Games and memberships; reacts to the runtime through `RuntimeReactions`.
    lobby: Arc<galaxy_lobby::PgLobby>,
    /// The mail outbox: admin surface and the delivery worker's settings.
    mail: Arc<galaxy_mail::PgMailService>,
    mail_settings: galaxy_mail::Settings,
    /// Identity: accounts, user sessions (the user session resolver), admins.
    users: Arc<galaxy_user::PgUserService>,
    auth: Arc<galaxy_auth::PgAuthService>,
    admin: Arc<galaxy_admin::PgAdminService>,
    admin_bootstrap: Option<galaxy_admin::Bootstrap>,
    identity_ready: ReadyFlag,
    /// The admin audit log (API middleware and console) and the console's cookie policy.
    audit: Arc<galaxy_console::AuditLog>,
    console_cookies: galaxy_console::CookiePolicy,
}

impl Modules {
    pub fn build(
        config: &Config,
        pool: Pool,
        geo: galaxy_geo::GeoIp,
        readiness: &Readiness,
    ) -> anyhow::Result<Self> {
        tracing::info!(
            path = %geo.path().display(),
            database_type = geo.database_type(),
            build_epoch = geo.build_epoch(),
            "GeoIP database opened"
        );
        if let Some(point) = galaxy_core::failpoint::armed() {
            // Only a test build has fail points (integration/tests/reactions.rs).
            tracing::warn!(failpoint = point, "fail point armed");
        }
        let counters = galaxy_geo::CountryCounters::new(geo.clone());
        let users = Arc::new(galaxy_user::PgUserService::new(pool.clone()));
        let notification = Arc::new(PgNotificationService::new(
            pool.clone(),
            PushHub::new(),
            Arc::new(Accounts(users.clone())),
            config.notification.clone(),
        ));
        // Runtime and lobby react to each other: the runtime's events are
        // bound to the lobby once both exist.
        let reactions = Arc::new(RuntimeReactions::default());
        let runtime =
            galaxy_runtime::Runtime::new(pool.clone(), config.runtime.clone(), reactions.clone())
                .map_err(|e| anyhow::anyhow!("BACKEND_DOCKER_HOST: {e}"))?;
        let runtime_service: Arc<dyn galaxy_runtime::RuntimeService> = Arc::new(runtime.clone());
        let lobby = galaxy_lobby::PgLobby::new(
            pool.clone(),
            Arc::new(LobbyRuntime(runtime_service.clone())),
            Arc::new(LobbyNotifications(notification.clone())),
            Arc::new(Accounts(users.clone())),
            readiness.flag("lobby_cache"),
        );
        let _ = reactions.lobby.set(lobby.clone());
        let _ = reactions.runtime.set(runtime_service);
        let _ = reactions.notifications.set(notification.clone());
        let mail_settings = config.mail.clone();
        // Fails fast on a From address mail-send cannot use.
        galaxy_mail::Mailer::new(&mail_settings.smtp)
            .map_err(|e| anyhow::anyhow!("BACKEND_SMTP_FROM / TLS client: {e}"))?;
        // An email route follows its mail: the outbox reports each state it
        // writes to the notification module, in the same transaction.
        let mail = Arc::new(
            galaxy_mail::PgMailService::new(pool.clone())
                .with_outcomes(Arc::new(galaxy_notification::RoutesFollowMail)),
        );
        let auth = Arc::new(galaxy_auth::PgAuthService::new(
            pool.clone(),
            users.clone(),
            counters.clone(),
            config.auth,
        ));
        // Auth listens first: other listeners see the sessions already revoked.
        galaxy_user::UserService::add_listener(users.as_ref(), auth.clone());
        galaxy_user::UserService::add_listener(
            users.as_ref(),
            Arc::new(UserDeletedFanout {
                notifications: notification.clone(),
                lobby: lobby.clone(),
            }),
        );
        let admin = Arc::new(galaxy_admin::PgAdminService::new(
            pool.clone(),
            users.clone(),
            auth.clone(),
            config.admin.service.clone(),
        ));
        Ok(Self {
            audit: Arc::new(galaxy_console::AuditLog::new(pool.clone())),
            console_cookies: config.console_cookies,
            users,
            auth,
            admin,
            admin_bootstrap: config.admin.bootstrap.clone(),
            identity_ready: readiness.flag("identity_caches"),
            mail,
            mail_settings,
            pool,
            notification,
            runtime,
            geo,
            counters,
            runtime_ready: readiness.flag("runtime_cache"),
            announcements_ready: readiness.flag("announcements"),
            lobby,
        })
    }

    /// The notification service other modules submit through (lobby,
    /// runtime) and react with (user deletion).
    pub fn notifications(&self) -> Arc<dyn NotificationService> {
        self.notification.clone()
    }

    /// The gRPC push service for the listener; `shutdown` ends open streams.
    pub fn push_service(
        &self,
        push_tokens: &[&str],
        shutdown: CancellationToken,
    ) -> galaxy_notification::proto::push_server::PushServer<PushGrpc> {
        PushGrpc::new(self.notification.hub().clone(), push_tokens, shutdown).into_server()
    }

    /// The GeoIP database (country of a source address).
    pub fn geo(&self) -> &galaxy_geo::GeoIp {
        &self.geo
    }

    /// The per-request country counters (`record` on every authenticated request).
    pub fn country_counters(&self) -> &galaxy_geo::CountryCounters {
        &self.counters
    }

    /// Runs once migrations are applied; `/api/*` opens when it returns.
    /// Returns the peers' change listener, to be run with [`Self::follow_peers`].
    pub async fn warm(&self, url: &galaxy_db::DatabaseUrl) -> anyhow::Result<Listener> {
        // LISTENing before the caches load: a change a peer commits after a
        // cache's snapshot is announced to it and applied after the load.
        let listener = Listener::open(
            url.clone(),
            self.coherent_caches(),
            ListenerSettings::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("the change listener cannot start: {e}"))?;
        self.users.warm().await?;
        self.auth.warm().await?;
        let bootstrap = self
            .admin_bootstrap
            .as_ref()
            .map(|b| (b.username.as_str(), b.password.expose()));
        self.admin.warm(bootstrap).await?;
        self.identity_ready.set_ready();
        self.runtime.warm().await?;
        self.runtime_ready.set_ready();
        self.lobby.warm().await?;
        Ok(listener)
    }

    /// Every cache a peer's write must reach (SYSTEM.md §12).
    fn coherent_caches(&self) -> Vec<Arc<dyn Coherent>> {
        let mut caches: Vec<Arc<dyn Coherent>> = vec![
            self.users.clone(),
            self.auth.clone(),
            self.admin.clone(),
            self.lobby.clone(),
        ];
        caches.extend(self.runtime.coherent_caches());
        caches
    }

    /// Applies the peers' announced changes until `shutdown`; readiness
    /// check `announcements` is down while the listener reconnects.
    pub fn follow_peers(&self, listener: Listener, shutdown: &CancellationToken) -> JoinHandle<()> {
        listener.run(self.announcements_ready.clone(), shutdown.clone())
    }

    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let user_resolver: Arc<dyn galaxy_core::UserSessionResolver> = self.auth.clone();
        let admin_resolver: Arc<dyn galaxy_core::AdminSessionResolver> = self.admin.clone();
        let users: Arc<dyn galaxy_user::UserService> = self.users.clone();
        let auth: Arc<dyn galaxy_auth::AuthService> = self.auth.clone();
        let admin: Arc<dyn galaxy_admin::AdminService> = self.admin.clone();
        // The principal extractors of every module read these two.
        cfg.app_data(web::Data::from(user_resolver))
            .app_data(web::Data::from(admin_resolver));
        galaxy_auth::configure(cfg, auth);
        galaxy_user::configure(cfg, users);
        galaxy_admin::configure(cfg, admin);
        galaxy_notification::configure(cfg, self.notification.clone());
        let runtime: Arc<dyn galaxy_runtime::RuntimeService> = Arc::new(self.runtime.clone());
        galaxy_runtime::configure(cfg, runtime);
        galaxy_mail::configure(cfg, self.mail.clone());
        galaxy_lobby::configure(cfg, self.lobby.clone());
        galaxy_console::configure_audit_api(cfg, self.audit.clone());
        galaxy_console::configure(
            cfg,
            galaxy_console::Console {
                admin: self.admin.clone(),
                mail: self.mail.clone(),
                notifications: self.notification.clone(),
                runtime: Arc::new(self.runtime.clone()),
                lobby: self.lobby.clone(),
                audit: self.audit.clone(),
                cookies: self.console_cookies,
            },
        );
    }

    /// Cache sizes as gauges (read from memory at each export).
    fn register_cache_gauges(&self) {
        cache_gauge("accounts", &self.users, |u| u.cached_accounts());
        cache_gauge("user_sessions", &self.auth, |a| a.cached_sessions());
        cache_gauge("admins", &self.admin, |a| a.cached_counts().0);
        cache_gauge("admin_sessions", &self.admin, |a| a.cached_counts().1);
        cache_gauge("games", &self.lobby, |l| l.cached_games());
        cache_gauge("runtime_records", &self.runtime, |r| r.cached_counts().0);
        cache_gauge("engine_versions", &self.runtime, |r| r.cached_counts().1);
    }

    /// Every worker; the reconciler and the turn scheduler act only while
    /// `leadership` says this backend leads.
    pub fn spawn_workers(
        &self,
        shutdown: &CancellationToken,
        leadership: &galaxy_db::leader::Leadership,
    ) -> Vec<JoinHandle<()>> {
        let mut workers = vec![self.notification.spawn_worker(shutdown.clone())];
        workers.push(self.auth.spawn_flusher(shutdown.clone()));
        workers.push(self.auth.spawn_pruner(shutdown.clone()));
        workers.push(self.users.spawn_reactor(shutdown.clone()));
        workers.extend(self.runtime.spawn_workers(shutdown, leadership));
        workers.push(self.counters.spawn_flusher(
            self.pool.clone(),
            COUNTER_FLUSH_INTERVAL,
            shutdown.clone(),
        ));
        match galaxy_mail::Worker::new(self.pool.clone(), self.mail_settings.clone()) {
            Ok(worker) => workers.push(
                worker
                    .with_outcomes(Arc::new(galaxy_notification::RoutesFollowMail))
                    .spawn(shutdown.clone()),
            ),
            // Checked in `build`; kept as a log line rather than a panic.
            Err(e) => tracing::error!(error = %e, "mail worker not started"),
        }
        workers.extend(crate::gauges::spawn(self.pool.clone(), shutdown.clone()));
        self.register_cache_gauges();
        workers
    }
}

/// Registers the size of one of `service`'s caches as the gauge `cache`;
/// the gauge holds its own clone of the service (a shared handle).
fn cache_gauge<S: Clone + Send + Sync + 'static>(
    cache: &'static str,
    service: &S,
    len: fn(&S) -> usize,
) {
    let service = service.clone();
    galaxy_telemetry::register_cache_size(cache, move || len(&service));
}
