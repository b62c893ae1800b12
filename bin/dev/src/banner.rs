//! The banner: where everything of the stack is. Printed once it is up,
//! again on Enter or SIGUSR1, so it never scrolls away for good.

use crate::term::show;
use std::path::PathBuf;

pub struct Banner {
    pub stack: String,
    pub folder: PathBuf,
    pub persistent: bool,
    /// The gateway's port when it runs; otherwise why not.
    pub gateway: Result<u16, String>,
    pub http_port: u16,
    pub grpc_port: u16,
    pub push_token: String,
    pub dsn: String,
    pub smtp_port: u16,
    pub geoip: PathBuf,
    pub engines: String,
    pub admin_user: String,
    pub admin_password: String,
    pub credentials: PathBuf,
    /// (process, log file)
    pub logs: Vec<(&'static str, PathBuf)>,
}

impl Banner {
    pub fn render(&self) -> String {
        let backend = format!("http://127.0.0.1:{}", self.http_port);
        let players = match &self.gateway {
            Ok(port) => format!(
                "http://127.0.0.1:{port}  gateway (--gateway-port {port}): /api/v1, push socket /api/v1/push"
            ),
            Err(why) => format!("{backend}  (no gateway: {why}; use the backend directly)"),
        };
        let stop = if self.persistent {
            "Ctrl-C stops everything and keeps the world (database, engines, network) for the next run"
        } else {
            "Ctrl-C stops and removes everything (throwaway stack; keep a world with --data DIR)"
        };
        let mut out = format!(
            "\nGalaxy local stack {stack} is up\n\
             \x20 players      {players}\n\
             \x20 operators    {backend}  backend HTTP (--http-port {http}): admin routes /api/v1/admin, \
             probes /healthz /readyz, OpenAPI /api/v1/openapi.json\n\
             \x20 backend gRPC 127.0.0.1:{grpc}  (--grpc-port; push token {token})\n\
             \x20 admin        user {user}  password {password}  (also in {creds})\n\
             \x20 PostgreSQL   {dsn}\n\
             \x20 SMTP sink    127.0.0.1:{smtp}  (mails, e.g. sign-in codes, are shown here)\n\
             \x20 GeoIP        {geoip}  (test fixture: 81.2.69.142 → GB, 2001:db8::1 → DE)\n\
             \x20 engines      {engines}\n\
             \x20 folder       {folder}\n",
            stack = self.stack,
            http = self.http_port,
            grpc = self.grpc_port,
            token = self.push_token,
            user = self.admin_user,
            password = self.admin_password,
            creds = self.credentials.display(),
            dsn = self.dsn,
            smtp = self.smtp_port,
            geoip = self.geoip.display(),
            engines = self.engines,
            folder = self.folder.display(),
        );
        for (name, path) in &self.logs {
            out.push_str(&format!("  log          {name}: {}\n", path.display()));
        }
        out.push_str(&format!("Enter (or SIGUSR1) shows this again; {stop}.\n"));
        out
    }

    pub fn print(&self) {
        show!("{}", self.render());
    }
}
