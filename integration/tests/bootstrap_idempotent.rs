//! Container scenario: the backend image boots twice on one database — the
//! migrations and the bootstrap admin are applied once, the engine network
//! it finds is kept — and SIGTERM stops it with exit 0.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use galaxy_integration::testenv;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn admins(stack: &testenv::Stack) -> i64 {
    let mut conn = stack.db.pool().get().await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM admins WHERE username = 'admin'")
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_boot_on_the_same_database_changes_nothing() {
    let mut stack = testenv::bootstrap().await;
    let first_token = stack.admin_token().await;
    assert_eq!(admins(&stack).await, 1);
    let network_id = testenv::must(&["network", "inspect", "-f", "{{.Id}}", stack.network()]);

    let status = stack.stop_backend();
    assert!(
        status.success(),
        "SIGTERM exits 0, got {status}:\n{}",
        stack.dump()
    );
    stack.start_backend().await;

    assert_eq!(
        admins(&stack).await,
        1,
        "the bootstrap admin is inserted once"
    );
    // Same password (never overwritten), and the first session survived.
    let second_token = stack.admin_token().await;
    assert_ne!(first_token, second_token);
    let r = stack
        .call(
            reqwest::Method::GET,
            &stack.backend("/api/v1/admin/users"),
            &first_token,
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "a session from before the restart");
    let logs = stack.backend_container().stdout_lines().join("\n");
    assert!(
        !logs.contains(testenv::ADMIN_PASSWORD),
        "the password is never logged"
    );
    assert_eq!(
        testenv::must(&["network", "inspect", "-f", "{{.Id}}", stack.network()]),
        network_id,
        "the engine network is reused, not recreated"
    );
    // Players still get in through the gateway after the backend's restart.
    stack
        .eventually(
            std::time::Duration::from_secs(20),
            "gateway ready again",
            || async {
                stack
                    .client
                    .get(stack.url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
    stack.sign_in("grace@example.test").await;
}
