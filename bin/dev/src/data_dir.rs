//! The stack's folder and what lives in it: process logs, the credentials
//! file, the GeoIP fixture and, with `--data DIR`, the database and a lock.
//!
//! Without `--data` the folder is `$TMPDIR/galaxy-stack-<pid>` and the stack
//! is named after the launcher's pid; with it, the folder is DIR and the
//! stack (and its Docker network) is named after DIR, so a second run finds
//! the first run's engines on the same network.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// In a throwaway folder kept after a failure: the next launcher's sweep
/// leaves it alone.
pub const KEPT_MARKER: &str = "kept-after-failure";

pub struct StackDir {
    pub root: PathBuf,
    /// Its name; also the name of its Docker network.
    pub name: String,
    /// `--data`: kept (and locked) across runs.
    pub persistent: bool,
}

/// The secrets a `--data` world keeps: the bootstrap admin's password only
/// works for the admin the first run created, and engines' push clients
/// (the gateway) keep the token.
#[derive(Clone)]
pub struct Secrets {
    pub admin_user: String,
    pub admin_password: String,
    pub push_token: String,
}

impl Secrets {
    fn random() -> Self {
        Self {
            admin_user: "admin".to_owned(),
            admin_password: hex::encode(rand::random::<[u8; 12]>()),
            push_token: hex::encode(rand::random::<[u8; 24]>()),
        }
    }

    /// Parses a credentials file (`key=value` lines, `#` comments).
    fn parse(text: &str) -> Option<Self> {
        let get = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
        };
        Some(Self {
            admin_user: get("admin_user")?,
            admin_password: get("admin_password")?,
            push_token: get("push_token")?,
        })
    }
}

impl StackDir {
    /// `$TMPDIR/galaxy-stack-<pid>`, created empty.
    pub fn throwaway() -> anyhow::Result<Self> {
        let name = format!("galaxy-stack-{}", std::process::id());
        let root = std::env::temp_dir().join(&name);
        if root.exists() {
            // A launcher with this pid died without cleaning up; its
            // processes are gone with it.
            std::fs::remove_dir_all(&root)
                .with_context(|| format!("remove the leftover {}", root.display()))?;
        }
        let dir = Self {
            root,
            name,
            persistent: false,
        };
        dir.create_layout()?;
        Ok(dir)
    }

    /// DIR, created if needed, locked against a second launcher using it.
    pub fn persistent(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let root = dir
            .canonicalize()
            .with_context(|| format!("resolve {}", dir.display()))?;
        let dir = Self {
            name: name_for(&root),
            root,
            persistent: true,
        };
        dir.lock()?;
        dir.create_layout()?;
        Ok(dir)
    }

    fn create_layout(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.logs())
            .with_context(|| format!("create {}", self.logs().display()))
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn log(&self, process: &str) -> PathBuf {
        self.logs().join(format!("{process}.log"))
    }

    pub fn credentials(&self) -> PathBuf {
        self.root.join("credentials")
    }

    pub fn geoip(&self) -> PathBuf {
        self.root.join("GeoLite2-Country-fixture.mmdb")
    }

    /// The PostgreSQL data directory of a `--data` stack.
    pub fn pg_data(&self) -> PathBuf {
        self.root.join("postgres")
    }

    fn lock_file(&self) -> PathBuf {
        self.root.join("launcher.pid")
    }

    /// The secrets of this stack: a `--data` stack's from its credentials
    /// file when there is one, fresh ones otherwise.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        if self.persistent
            && let Ok(text) = std::fs::read_to_string(self.credentials())
        {
            return Secrets::parse(&text).with_context(|| {
                format!(
                    "{} lacks admin_user, admin_password or push_token; \
                     fix it or remove the folder to start a new world",
                    self.credentials().display()
                )
            });
        }
        Ok(Secrets::random())
    }

    /// Writes the credentials file, readable by its owner only.
    pub fn write_credentials(&self, secrets: &Secrets, backend_url: &str) -> anyhow::Result<()> {
        let path = self.credentials();
        let text = format!(
            "# The bootstrap admin of the Galaxy local stack {name}.\n\
             # Admin routes are on the backend (operators') URL, not on the gateway.\n\
             backend_url={backend_url}\n\
             admin_user={}\n\
             admin_password={}\n\
             push_token={}\n",
            secrets.admin_user,
            secrets.admin_password,
            secrets.push_token,
            name = self.name,
        );
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("write {}", path.display()))?;
        // `mode` applies only when the file is created; an older file may
        // have been made readable by hand.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("write {}", path.display()))
    }

    /// One launcher per DIR: a second one would start a second PostgreSQL on
    /// the same data directory and share the engines' network.
    fn lock(&self) -> anyhow::Result<()> {
        let path = self.lock_file();
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<u32>()
            && pid != std::process::id()
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            bail!(
                "{} is in use by another launcher (pid {pid}); stop it first",
                self.root.display()
            );
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("write {}", path.display()))
    }

    /// What is left of the folder when the stack ends. Returns what failed.
    pub fn finish(&self, keep_logs: bool) -> Result<Option<String>, String> {
        if self.persistent {
            return std::fs::remove_file(self.lock_file())
                .map(|()| None)
                .map_err(|e| format!("cannot remove {}: {e}", self.lock_file().display()));
        }
        if keep_logs {
            let marker = self.root.join(KEPT_MARKER);
            std::fs::write(
                &marker,
                "The stack failed; its logs are kept here until you remove this folder.\n",
            )
            .map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
            return Ok(Some(format!(
                "the logs of this failed start are kept in {} (remove the folder when done)",
                self.logs().display()
            )));
        }
        std::fs::remove_dir_all(&self.root)
            .map(|()| None)
            .map_err(|e| format!("cannot remove {}: {e}", self.root.display()))
    }
}

/// `galaxy-stack-<folder name>-<hash of the full path>`: readable in
/// `docker network ls`, distinct for two folders of the same name.
fn name_for(root: &Path) -> String {
    let base: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    // FNV-1a: only tells folders apart, no security meaning.
    let hash = root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("galaxy-stack-{base}-{:08x}", hash & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_folder_and_tell_same_named_folders_apart() {
        let a = name_for(Path::new("/home/ann/my world"));
        let b = name_for(Path::new("/srv/my world"));
        assert!(a.starts_with("galaxy-stack-my-world-"), "{a}");
        assert_ne!(a, b);
        assert_eq!(a, name_for(Path::new("/home/ann/my world")));
    }

    #[test]
    fn credentials_round_trip() {
        let text = "# comment\nbackend_url=http://x\nadmin_user=admin\n\
                    admin_password=p=w\npush_token=t\n";
        let s = Secrets::parse(text).unwrap();
        assert_eq!(s.admin_password, "p=w");
        assert_eq!(s.push_token, "t");
        assert!(Secrets::parse("admin_user=admin\n").is_none());
    }
}
