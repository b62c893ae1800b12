//! schemathesis (pinned in `.ci/run`) against a real backend, with all of its
//! checks, over every documented operation: once with a user token, once
//! with an admin token, and the operations that end their own credentials
//! (account deletion, logout, password change) on throwaway accounts, so
//! they cannot cut the other runs short. 0 failures is the bar: every answer
//! an operation can give is documented, every request the schema allows is
//! accepted (or refused for a documented state reason: 404, 409, 429), and
//! every request it refuses is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::process::Command;
use std::time::Duration;

use galaxy_integration::api::{json_of, post, sign_in};
use galaxy_integration::engines::admin_login;
use galaxy_integration::{Backend, BackendBuilder};
use galaxy_testdb::TestDb;
use serde_json::json;

const ADMIN_PASSWORD: &str = "an-admin-password-for-schemathesis";

/// One schemathesis run over the operations `filters` select, with `token`
/// as the bearer credential; panics with its report when anything fails.
fn schemathesis(b: &Backend, label: &str, token: &str, filters: &[&str]) {
    let version = Command::new("schemathesis").arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "schemathesis is not installed: `python3 -m pip install schemathesis==4.32.5` (.ci/run does)"
    );
    // schemathesis keeps a cache of what it found in its working directory.
    let workdir = std::env::temp_dir()
        .join(format!(
            "galaxy-schemathesis-{}-{label}",
            std::process::id()
        ))
        .to_string_lossy()
        .replace(' ', "-")
        .replace(',', "");
    std::fs::create_dir_all(&workdir).expect("schemathesis working directory");
    let run = || {
        Command::new("schemathesis")
            .current_dir(&workdir)
            .arg("run")
            .arg(b.url("/api/v1/openapi.json"))
            .args(["--checks", "all", "--mode", "all"])
            .args(["--max-examples", "25", "--seed", "20261201"])
            .args(["--request-timeout", "10", "--workers", "2"])
            .args(["--warnings", "off", "--continue-on-failure"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(filters)
            .env("NO_COLOR", "1")
            .output()
            .expect("run schemathesis")
    };
    let mut out = run();
    // A crash inside the tool (seen: hypothesis's "AST constructor recursion
    // depth mismatch") says nothing about the API: one more run. A check
    // that failed is never retried.
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() && !stdout.contains("FAILURES") && stdout.contains("Runtime Error") {
        eprintln!("schemathesis ({label}) crashed without a finding; running it again");
        out = run();
    }
    let _ = std::fs::remove_dir_all(&workdir);
    let report = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let dump = b.dump();
        let tail: Vec<&str> = dump.lines().rev().take(40).collect();
        panic!(
            "schemathesis ({label}) found failures:\n{report}\n{}\n--- backend, last lines ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert!(
        report.contains("passed") && !report.contains("No operations"),
        "schemathesis ({label}) tested nothing:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_passes_all_checks() {
    let db = TestDb::new();
    let mut backend = BackendBuilder::new(&db.dsn())
        .env("BACKEND_ADMIN_BOOTSTRAP_USER", "admin")
        .env("BACKEND_ADMIN_BOOTSTRAP_PASSWORD", ADMIN_PASSWORD)
        // A game schemathesis starts finds no image and fails to start; it
        // never reaches a registry.
        .env("BACKEND_RUNTIME_IMAGE_PULL_POLICY", "never")
        .spawn();
    backend.wait_ready(Duration::from_secs(15)).await;
    let b = &backend;

    let admin = admin_login(b, "admin", ADMIN_PASSWORD).await;
    let r = post(
        b,
        "/api/v1/admin/engine-versions",
        &admin,
        Some(json!({ "version": "1.0.0", "image": "galaxy/game:schemathesis-absent" })),
    )
    .await;
    json_of(r, 201).await;

    // Every credential is made before schemathesis runs: its wrong logins
    // and codes use up this address's sign-in budget (429 is a documented
    // answer), so a sign-in after it would be refused.
    let (player, _) = sign_in(b, &db, "player@example.test").await;
    let (throwaway, _) = sign_in(b, &db, "throwaway@example.test").await;
    let r = post(
        b,
        "/api/v1/admin/admins",
        &admin,
        Some(json!({ "username": "throwaway", "password": ADMIN_PASSWORD })),
    )
    .await;
    json_of(r, 201).await;
    let throwaway_admin = admin_login(b, "throwaway", ADMIN_PASSWORD).await;

    // Players: everything public or behind a user token, except the
    // operations that end the token itself.
    schemathesis(
        b,
        "user token",
        &player,
        &[
            "--include-path-regex",
            "^/(healthz|readyz|api/v1/(auth|user|lobby|games)/)",
            "--exclude-operation-id",
            "delete_me",
            "--exclude-operation-id",
            "logout",
        ],
    );
    schemathesis(
        b,
        "user token, ending operations",
        &throwaway,
        // schemathesis joins filters of different kinds with "or": one
        // regex keeps this run to the two paths.
        &["--include-path-regex", "^/api/v1/(user/me|auth/logout)$"],
    );

    // Operators: the admin surface, then password change and logout on an
    // admin of their own.
    schemathesis(
        b,
        "admin token",
        &admin,
        &[
            "--include-path-regex",
            "^/api/v1/admin/",
            "--exclude-operation-id",
            "change_password",
            "--exclude-operation-id",
            "logout",
        ],
    );
    schemathesis(
        b,
        "admin token, ending operations",
        &throwaway_admin,
        &[
            "--include-path-regex",
            "^/api/v1/admin/auth/(password|logout)$",
        ],
    );
}
