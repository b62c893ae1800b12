//! One stack from start to cleanup. Every part is recorded as soon as it
//! exists, so a start that fails half-way (or is interrupted) is cleaned up
//! by the same `shutdown` as a stack that ran for hours.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use anyhow::{Context, bail};
use bollard::Docker;
use galaxy_testsmtp::SmtpServer;

use crate::args::Args;
use crate::banner::Banner;
use crate::child_env;
use crate::children::{self, ChildProc};
use crate::cleanup;
use crate::data_dir::{Secrets, StackDir};
use crate::database::{self, Database};
use crate::docker;
use crate::engines;
use crate::events::Event;
use crate::mail_print;
use crate::pg_server::PgServer;
use crate::term::{say, show};
use crate::waiting::{interrupted, wait_ready};

pub struct Stack {
    args: Args,
    target_dir: PathBuf,
    dir: StackDir,
    secrets: Secrets,
    runtime: tokio::runtime::Runtime,
    docker: Result<Docker, String>,
    database: Option<Database>,
    smtp: Option<SmtpServer>,
    backend: Option<ChildProc>,
    gateway: Option<ChildProc>,
    events: Sender<Event>,
}

impl Stack {
    pub fn new(
        args: Args,
        target_dir: PathBuf,
        runtime: tokio::runtime::Runtime,
        docker: Result<Docker, String>,
        events: Sender<Event>,
    ) -> anyhow::Result<Self> {
        let dir = match &args.data {
            Some(data) => StackDir::persistent(data)?,
            None => StackDir::throwaway()?,
        };
        let secrets = dir.secrets()?;
        Ok(Self {
            args,
            target_dir,
            dir,
            secrets,
            runtime,
            docker,
            database: None,
            smtp: None,
            backend: None,
            gateway: None,
            events,
        })
    }

    /// Starts everything in dependency order; the banner once all is up.
    pub fn start(&mut self, events: &Receiver<Event>) -> anyhow::Result<Banner> {
        let geoip = self.dir.geoip();
        // The project's own GeoIP fixture: answers the documented test
        // addresses (e.g. `X-Forwarded-For: 81.2.69.142` → GB).
        galaxy_geo::fixture::write(&geoip).context("write the GeoIP fixture")?;
        let network = self.dir.name.clone();
        if let Ok(d) = &self.docker {
            let created = self
                .runtime
                .block_on(docker::ensure_network(d, &network, !self.dir.persistent))
                .map_err(anyhow::Error::msg)?;
            if created {
                say!("created the Docker network {network} for the engines");
            }
        }
        interrupted(events)?;

        say!("starting PostgreSQL …");
        self.database = Some(if self.dir.persistent {
            Database::Persistent(PgServer::start(
                &self.dir.pg_data(),
                &self.dir.log("postgres"),
            )?)
        } else {
            Database::throwaway()?
        });
        let dsn = self
            .database
            .as_ref()
            .map(Database::dsn)
            .unwrap_or_default();
        interrupted(events)?;

        // The SMTP sink: a real SMTP server on loopback that shows every
        // mail on this terminal instead of delivering it.
        let smtp = SmtpServer::builder()
            .on_message(print_mail)
            .start()
            .context("start the SMTP sink")?;
        let smtp_port = smtp.port();
        self.smtp = Some(smtp);

        let (http_port, grpc_port, gateway_port) = (
            self.args.http_port,
            self.args.grpc_port,
            self.args.gateway_port,
        );
        let env = child_env::current();
        let backend_env = child_env::plan(
            "galaxy-backend",
            "BACKEND_",
            "GATEWAY_",
            &env,
            &[
                ("BACKEND_HTTP_LISTEN_ADDR", format!("127.0.0.1:{http_port}")),
                ("BACKEND_GRPC_LISTEN_ADDR", format!("127.0.0.1:{grpc_port}")),
                ("BACKEND_POSTGRES_DSN", dsn.clone()),
                ("BACKEND_PUSH_TOKEN", self.secrets.push_token.clone()),
                ("BACKEND_SMTP_HOST", "127.0.0.1".to_owned()),
                ("BACKEND_SMTP_PORT", smtp_port.to_string()),
                ("BACKEND_SMTP_TLS_MODE", "none".to_owned()),
                (
                    "BACKEND_SMTP_FROM",
                    "galaxy@localhost.localdomain".to_owned(),
                ),
                ("BACKEND_GEOIP_DB_PATH", geoip.display().to_string()),
                (
                    "BACKEND_ADMIN_BOOTSTRAP_USER",
                    self.secrets.admin_user.clone(),
                ),
                (
                    "BACKEND_ADMIN_BOOTSTRAP_PASSWORD",
                    self.secrets.admin_password.clone(),
                ),
                ("BACKEND_DOCKER_HOST", format!("unix://{}", docker::SOCKET)),
                ("BACKEND_DOCKER_NETWORK", network.clone()),
            ],
            &[
                ("BACKEND_OTEL_TRACES_EXPORTER", "none".to_owned()),
                ("BACKEND_OTEL_METRICS_EXPORTER", "none".to_owned()),
                ("BACKEND_RUNTIME_RECONCILE_INTERVAL", "10s".to_owned()),
                // The operator console over plain http://127.0.0.1.
                ("BACKEND_CONSOLE_INSECURE_COOKIE", "true".to_owned()),
            ],
        );
        for note in &backend_env.notes {
            say!("note: {note}");
        }
        let mut command = std::process::Command::new(self.target_dir.join("galaxy-backend"));
        command.arg("serve");
        backend_env.apply(&mut command);
        say!("starting galaxy-backend …");
        let backend = children::spawn(
            "galaxy-backend",
            command,
            &self.dir.log("backend"),
            self.args.verbose,
            self.events.clone(),
        )?;
        let backend = self.backend.insert(backend);
        wait_ready(backend, None, http_port, events)?;

        let engines = match &self.docker {
            Ok(_) => {
                engines::register(
                    http_port,
                    &self.secrets.admin_user,
                    &self.secrets.admin_password,
                )?;
                format!(
                    "engine version `{}` → {} on Docker network {network}",
                    engines::VERSION,
                    engines::IMAGE
                )
            }
            Err(why) => format!("none: {why}; games cannot start"),
        };

        let gateway = self.start_gateway(events, &env, gateway_port)?;
        self.dir
            .write_credentials(&self.secrets, &format!("http://127.0.0.1:{http_port}"))?;

        let mut logs = vec![("galaxy-backend", self.dir.log("backend"))];
        if let Some(g) = &self.gateway {
            logs.push(("galaxy-gateway", g.log_path.clone()));
        }
        if self.dir.persistent {
            logs.push(("postgres", self.dir.log("postgres")));
        }
        Ok(Banner {
            stack: self.dir.name.clone(),
            folder: self.dir.root.clone(),
            persistent: self.dir.persistent,
            gateway,
            http_port,
            grpc_port,
            push_token: self.secrets.push_token.clone(),
            dsn,
            smtp_port,
            geoip,
            engines,
            admin_user: self.secrets.admin_user.clone(),
            admin_password: self.secrets.admin_password.clone(),
            credentials: self.dir.credentials(),
            logs,
        })
    }

    /// The gateway in front of the backend; Err(reason) in the Ok when its
    /// binary is not built (the stack then works without it).
    fn start_gateway(
        &mut self,
        events: &Receiver<Event>,
        env: &[(String, String)],
        port: u16,
    ) -> anyhow::Result<Result<u16, String>> {
        let binary = self.target_dir.join("galaxy-gateway");
        if !binary.exists() {
            let why = format!(
                "galaxy-gateway is not built in {}",
                self.target_dir.display()
            );
            say!("warning: {why}; the stack runs without a gateway");
            return Ok(Err(why));
        }
        let (http_port, grpc_port) = (self.args.http_port, self.args.grpc_port);
        let plan = child_env::plan(
            "galaxy-gateway",
            "GATEWAY_",
            "BACKEND_",
            env,
            &[
                ("GATEWAY_HTTP_LISTEN_ADDR", format!("127.0.0.1:{port}")),
                (
                    "GATEWAY_BACKEND_URL",
                    format!("http://127.0.0.1:{http_port}"),
                ),
                (
                    "GATEWAY_BACKEND_GRPC_ADDR",
                    format!("127.0.0.1:{grpc_port}"),
                ),
                ("GATEWAY_PUSH_TOKEN", self.secrets.push_token.clone()),
            ],
            &[
                ("GATEWAY_OTEL_TRACES_EXPORTER", "none".to_owned()),
                ("GATEWAY_OTEL_METRICS_EXPORTER", "none".to_owned()),
            ],
        );
        for note in &plan.notes {
            say!("note: {note}");
        }
        let mut command = std::process::Command::new(binary);
        command.arg("serve");
        plan.apply(&mut command);
        say!("starting galaxy-gateway …");
        let gateway = children::spawn(
            "galaxy-gateway",
            command,
            &self.dir.log("gateway"),
            self.args.verbose,
            self.events.clone(),
        )?;
        let gateway = self.gateway.insert(gateway);
        wait_ready(gateway, self.backend.as_ref(), port, events)?;
        Ok(Ok(port))
    }

    /// Waits for a stop signal (Ok) or a child that dies (Err, with its
    /// last lines); prints the banner again when asked.
    pub fn serve(&self, banner: &Banner, events: &Receiver<Event>) -> anyhow::Result<()> {
        loop {
            match events.recv() {
                Ok(Event::Stop(signal)) => {
                    say!("{signal}: stopping the stack …");
                    return Ok(());
                }
                Ok(Event::Reprint) => banner.print(),
                Ok(Event::ChildExited { name, status }) => bail!("{}", self.report(name, status)),
                Err(_) => bail!("the launcher's event threads ended"),
            }
        }
    }

    fn report(&self, name: &str, status: std::process::ExitStatus) -> String {
        [&self.backend, &self.gateway]
            .into_iter()
            .flatten()
            .find(|c| c.name == name)
            .map_or_else(
                || format!("{name} exited ({status})"),
                |c| c.death_report(status),
            )
    }

    /// Stops everything in reverse order and removes what a throwaway stack
    /// made. Returns the steps that failed (each already printed).
    pub fn shutdown(mut self, failed: bool) -> Vec<String> {
        let mut failures = Vec::new();
        let mut fail = |what: String| {
            say!("cleanup: {what}");
            failures.push(what);
        };
        // The gateway first (it holds the backend's push streams), then the
        // backend, whose reconciler would otherwise restart the engines.
        for child in [self.gateway.take(), self.backend.take()]
            .into_iter()
            .flatten()
        {
            if let Err(e) = child.stop(Duration::from_secs(15)) {
                fail(format!("{e:#}"));
            }
        }
        let network = self.dir.name.clone();
        match &self.docker {
            Ok(d) if self.dir.persistent => {
                for e in self.runtime.block_on(cleanup::stop_all(d, &network)) {
                    fail(e);
                }
            }
            Ok(d) => {
                let games = match &self.database {
                    Some(db) => match self.runtime.block_on(database::games(&db.dsn())) {
                        Ok(games) => games,
                        Err(e) => {
                            fail(format!(
                                "cannot list the stack's games (their engine volumes may \
                                 remain if no container names them): {e:#}"
                            ));
                            Vec::new()
                        }
                    },
                    None => Vec::new(),
                };
                for e in self
                    .runtime
                    .block_on(cleanup::remove_all(d, &network, &games))
                {
                    fail(e);
                }
            }
            Err(_) => {}
        }
        if let Some(db) = self.database.take()
            && let Err(e) = db.stop()
        {
            fail(format!("cannot stop PostgreSQL: {e:#}"));
        }
        match self.dir.finish(failed) {
            Ok(Some(note)) => say!("{note}"),
            Ok(None) => {}
            Err(e) => fail(e),
        }
        if failures.is_empty() {
            if self.dir.persistent {
                say!(
                    "stopped; the world is kept in {} (network {network})",
                    self.dir.root.display()
                );
            } else {
                say!("stopped; the stack's containers, volumes and network are removed");
            }
        }
        failures
    }
}

fn print_mail(m: &galaxy_testsmtp::Received) {
    show!("\n{}", mail_print::render(&m.to, &m.data));
}
