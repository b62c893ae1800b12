//! A PostgreSQL server whose data directory outlives the launcher, for
//! `--data DIR`. `galaxy_testdb::PrivateServer` (used by a throwaway stack)
//! always works in a temporary directory it removes, which is right for
//! tests; a kept world needs its own data directory, created once and
//! started and stopped on every run.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::term::say;
use anyhow::{Context, bail};

pub struct PgServer {
    bindir: PathBuf,
    data: PathBuf,
    port: u16,
    /// Running as root: PostgreSQL refuses root, so it runs as `postgres`.
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl PgServer {
    /// initdb on first use, then start on a free loopback port, logging to `log`.
    pub fn start(data: &Path, log: &Path) -> anyhow::Result<Self> {
        let bindir = find_bindir().context(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under \
             /usr/lib/postgresql/*/bin or on PATH; install them (Debian: postgresql)",
        )?;
        let run_as = if running_as_root() {
            Some(
                postgres_user()
                    .context("running as root needs a `postgres` system user to run PostgreSQL")?,
            )
        } else {
            None
        };
        let mut server = Self {
            bindir,
            data: data.to_owned(),
            port: 0,
            run_as,
            stopped: true,
        };
        server.prepare_dirs(log)?;
        if !data.join("PG_VERSION").exists() {
            say!("creating the database in {} (first run) …", data.display());
            server.run("initdb", |c| {
                c.arg("-D").arg(data).args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]);
            })?;
        }
        // A launcher killed without cleanup (kill -9) leaves its server
        // running; the lock on DIR says no other launcher owns it now.
        if data.join("postmaster.pid").exists()
            && server
                .output("pg_ctl", |c| {
                    c.arg("status").arg("-D").arg(data);
                })?
                .status
                .success()
        {
            say!("stopping the PostgreSQL a previous run left running …");
            server.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])?;
        }
        server.port = free_port()?;
        // No Unix socket: its path under DIR may exceed the 107-byte limit,
        // and everything connects over TCP anyway.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            server.port
        );
        let log = log.to_str().context("the log path is not UTF-8")?;
        server.pg_ctl(&["-l", log, "-w", "-t", "60", "-o", &options, "start"])?;
        server.stopped = false;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown: sessions end, committed data stays.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "60"])
    }

    /// The data directory belongs to the server's user (mode 0700, which
    /// initdb demands) and so does the log file pg_ctl appends to.
    fn prepare_dirs(&self, log: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("create {}", self.data.display()))?;
        std::fs::write(log, b"").with_context(|| format!("create {}", log.display()))?;
        if let Some((uid, gid)) = self.run_as {
            for p in [self.data.as_path(), log] {
                chown(p, Some(uid), Some(gid))
                    .with_context(|| format!("chown {} to postgres", p.display()))?;
            }
            let reachable = Command::new("runuser")
                .args(["-u", "postgres", "--", "test", "-w"])
                .arg(&self.data)
                .status()
                .context("run runuser")?
                .success();
            if !reachable {
                bail!(
                    "the `postgres` user cannot reach {} (PostgreSQL cannot run as root, \
                     and a parent folder is closed to other users); choose a --data folder \
                     under /tmp, /var/tmp or /srv",
                    self.data.display()
                );
            }
        }
        std::fs::set_permissions(&self.data, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", self.data.display()))
    }

    fn command(&self, program: &str) -> Command {
        let bin = self.bindir.join(program);
        let mut c = match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        c.stdin(Stdio::null());
        c
    }

    fn output(&self, program: &str, args: impl FnOnce(&mut Command)) -> anyhow::Result<Output> {
        let mut c = self.command(program);
        args(&mut c);
        c.output().with_context(|| format!("run {program}"))
    }

    fn run(&self, program: &str, args: impl FnOnce(&mut Command)) -> anyhow::Result<()> {
        let out = self.output(program, args)?;
        if !out.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.data.clone();
        self.run("pg_ctl", |c| {
            c.arg("-D").arg(data).args(args);
        })
    }
}

impl Drop for PgServer {
    /// A panic between start and stop still stops the server.
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            say!(
                "cleanup: cannot stop PostgreSQL in {}: {e:#}",
                self.data.display()
            );
        }
    }
}

fn find_bindir() -> Option<PathBuf> {
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    // Highest major version first, as the throwaway server picks.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    if let Some((_, dir)) = candidates.into_iter().next() {
        return Some(dir);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn postgres_user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .flatten()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("find a free port for PostgreSQL")?
        .port())
}
