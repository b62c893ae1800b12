//! The command line: subcommands, exit codes and the one-line configuration
//! errors. (Having an integration test here also makes `cargo test
//! --workspace` build the `galaxy-backend` binary that the integration suite
//! runs.)

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::process::Command;

fn backend() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_galaxy-backend"));
    cmd.env_clear();
    cmd
}

fn valid_env(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "BACKEND_POSTGRES_DSN",
        "postgres://127.0.0.1:1/x?search_path=backend",
    )
    .env("BACKEND_PUSH_TOKEN", "0123456789abcdef0123")
    .env("BACKEND_SMTP_HOST", "127.0.0.1")
    .env("BACKEND_SMTP_FROM", "galaxy@example.test")
    .env("BACKEND_GEOIP_DB_PATH", "/nonexistent.mmdb")
}

/// Exit status 2 and one line on stderr that contains `expected`.
fn assert_one_line_error(out: &std::process::Output, expected: &str) {
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn help_and_unknown_commands() {
    let out = backend().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("check-config"));

    let out = backend().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_required_variable_exits_2_with_one_line() {
    let out = backend().arg("check-config").output().unwrap();
    assert_one_line_error(&out, "BACKEND_POSTGRES_DSN: required but not set");
}

#[test]
fn unparsable_value_exits_2_naming_the_variable() {
    let out = valid_env(&mut backend())
        .env("BACKEND_MAIL_WORKER_INTERVAL", "abc")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_line_error(&out, "BACKEND_MAIL_WORKER_INTERVAL");
}

#[test]
fn a_claim_lease_below_twice_the_smtp_timeout_exits_2_naming_it() {
    let out = valid_env(&mut backend())
        .env("BACKEND_SMTP_TIMEOUT", "10s")
        .env("BACKEND_MAIL_CLAIM_LEASE", "15s")
        .arg("check-config")
        .output()
        .unwrap();
    assert_one_line_error(&out, "BACKEND_MAIL_CLAIM_LEASE");
}
