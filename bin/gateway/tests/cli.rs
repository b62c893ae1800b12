//! The command line: subcommands, exit codes and the one-line configuration
//! errors. (Having an integration test here also makes `cargo test
//! --workspace` build the `galaxy-gateway` binary that the integration suite
//! and the local-stack tests run.)

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::net::TcpListener;
use std::process::Command;

fn gateway() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_galaxy-gateway"));
    cmd.env_clear();
    cmd
}

fn valid_env(cmd: &mut Command) -> &mut Command {
    cmd.env("GATEWAY_BACKEND_URL", "http://127.0.0.1:1")
        .env("GATEWAY_BACKEND_GRPC_ADDR", "127.0.0.1:2")
        .env("GATEWAY_PUSH_TOKEN", "0123456789abcdef0123")
}

fn one_line_stderr(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn help_and_unknown_commands() {
    let out = gateway().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("check-config"));

    let out = gateway().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_valid_environment_passes_check_config() {
    let out = valid_env(&mut gateway())
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn missing_required_variable_exits_2_with_one_line() {
    let out = gateway().arg("check-config").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = one_line_stderr(&out);
    assert!(stderr.contains("GATEWAY_BACKEND_URL"), "{stderr}");
}

#[test]
fn unparsable_value_exits_2_naming_the_variable() {
    let out = valid_env(&mut gateway())
        .env("GATEWAY_AUTH_RATE_LIMIT", "lots")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = one_line_stderr(&out);
    assert!(stderr.contains("GATEWAY_AUTH_RATE_LIMIT"), "{stderr}");
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    // A port that was free a moment ago: nothing listens there now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = gateway()
        .env("GATEWAY_HTTP_LISTEN_ADDR", addr.to_string())
        .arg("healthcheck")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
