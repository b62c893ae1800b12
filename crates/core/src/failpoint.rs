//! Crash points for the integration suite's kill -9 tests.
//!
//! Code calls [`hit`] at the moments a crash matters most — between a
//! commit and the reaction that must follow it. Only a build with the
//! `failpoints` feature (enabled by the integration suite's dev-dependency,
//! so `cargo test --workspace` builds the backend with it; a plain or
//! release build never has it) looks at `GALAXY_FAILPOINT`: when it names
//! the point, the process sends itself SIGKILL — no destructors, no flush,
//! no shutdown path, as `kill -9` from outside. Without the feature `hit`
//! is an empty function.

/// The environment variable naming the armed point (read once).
pub const ENV: &str = "GALAXY_FAILPOINT";

/// The armed point, if fail points are compiled in and one is named.
pub fn armed() -> Option<&'static str> {
    #[cfg(feature = "failpoints")]
    {
        static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        ARMED
            .get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty()))
            .as_deref()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        None
    }
}

/// Kills the process with SIGKILL when `name` is the armed point.
pub fn hit(name: &str) {
    if armed() != Some(name) {
        return;
    }
    // stderr is unbuffered: the test sees why the process died.
    eprintln!("fail point {name}: SIGKILL");
    let pid = std::process::id().to_string();
    // `unsafe` is forbidden in the workspace, so no libc::kill: the
    // `kill` utility sends the signal while this thread waits for it.
    if let Err(e) = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
    {
        eprintln!("fail point {name}: kill failed ({e}); aborting instead");
    }
    // Never continue past an armed point, even if `kill` was missing.
    std::process::abort();
}
