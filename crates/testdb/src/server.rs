use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A PostgreSQL server of our own in a temporary directory.
///
/// Stopped and removed on drop; a detached watchdog also removes it when the
/// test process dies without running destructors (statics, `kill -9`).
pub struct PrivateServer {
    base: PathBuf,
    bindir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
}

const ROOT_DIR_NAME: &str = "galaxy-testpg";

fn root_dir() -> PathBuf {
    std::env::temp_dir().join(ROOT_DIR_NAME)
}

impl PrivateServer {
    /// initdb + start on a free loopback port. Panics with the reason when
    /// PostgreSQL cannot be started: a test that needs it must not pass.
    pub fn start() -> Self {
        sweep_leftovers();
        let bindir = find_bindir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found under \
                 /usr/lib/postgresql/*/bin or on PATH; install them (Debian: postgresql) \
                 or set GALAXY_TEST_DATABASE_URL"
            )
        });
        let run_as = if running_as_root() {
            Some(postgres_user().unwrap_or_else(|| {
                panic!("running as root needs a `postgres` system user to run PostgreSQL")
            }))
        } else {
            None
        };
        std::fs::create_dir_all(root_dir()).expect("create test server root");
        let _ = std::fs::set_permissions(root_dir(), std::fs::Permissions::from_mode(0o1777));
        let base = root_dir().join(format!("{}-{}", std::process::id(), uuid_like_suffix()));
        std::fs::create_dir_all(base.join("sock")).expect("create server dir");
        let server = Self {
            base,
            bindir,
            port: 0,
            run_as,
        };
        server.own_dir();
        server.initdb();
        let mut server = server;
        server.port = free_port();
        server.pg_start();
        server.spawn_watchdog();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown) and keeps its data directory.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) {
        self.pg_start();
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    fn own_dir(&self) {
        if let Some((uid, gid)) = self.run_as {
            for p in [self.base.as_path(), &self.base.join("sock")] {
                chown(p, Some(uid), Some(gid)).expect("chown test server dir");
            }
        }
        std::fs::set_permissions(&self.base, std::fs::Permissions::from_mode(0o700))
            .expect("chmod test server dir");
    }

    fn command(&self, program: &str) -> Command {
        let bin = self.bindir.join(program);
        match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin);
                c
            }
            None => Command::new(bin),
        }
    }

    fn initdb(&self) {
        self.run_tool(
            "initdb",
            &[
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
    }

    fn pg_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
            self.port,
            self.base.join("sock").display()
        );
        let log = self.base.join("server.log");
        self.pg_ctl(&[
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-t",
            "30",
            "-o",
            &opts,
            "start",
        ]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        self.run_tool("pg_ctl", args);
    }

    /// Runs one of the server's tools on its data directory; a failure
    /// panics with what the tool printed.
    fn run_tool(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .arg("-D")
            .arg(self.data_dir())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A detached shell that waits for this process to exit, then stops the
    /// server and removes its directory.
    fn spawn_watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf '{base}'",
            pid = std::process::id(),
            stop = stop_command(&self.bindir, &self.data_dir(), self.run_as.is_some()),
            base = self.base.display(),
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut watchdog = cmd.spawn().expect("spawn test server watchdog");
        // Reaped here if it ever ends while we live; after we exit, init reaps it.
        std::thread::spawn(move || watchdog.wait());
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["stop", "-m", "immediate", "-w"])
            .stdin(Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn stop_command(bindir: &Path, data: &Path, as_postgres: bool) -> String {
    let prefix = if as_postgres {
        "runuser -u postgres -- "
    } else {
        ""
    };
    format!(
        "{prefix}'{}' -D '{}' stop -m immediate -w >/dev/null 2>&1",
        bindir.join("pg_ctl").display(),
        data.display()
    )
}

/// Stops and removes servers whose owning test process no longer exists.
fn sweep_leftovers() {
    let Ok(entries) = std::fs::read_dir(root_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let data = entry.path().join("data");
        if data.join("postmaster.pid").exists()
            && let Some(bindir) = find_bindir()
        {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(stop_command(&bindir, &data, running_as_root()))
                .status();
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn find_bindir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    // Highest major version first.
    candidates.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    if let Some(dir) = candidates.into_iter().next() {
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

fn uuid_like_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}{:x}", nanos, N.fetch_add(1, Ordering::Relaxed))
}
