//! The user service against a real PostgreSQL: creation on the caller's
//! connection, write-through, failed commits, lifecycle events.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::{Arc, Mutex};

use diesel_async::RunQueryDsl;
use galaxy_core::PageQuery;
use galaxy_testdb::TestDb;
use galaxy_user::{
    AccountFilter, AccountStatus, PgUserService, UserError, UserEvents, UserService,
};
use uuid::Uuid;

/// Records the events it receives (a real listener of the trait).
#[derive(Default)]
struct Recorder(Mutex<Vec<(&'static str, Uuid)>>);

#[async_trait::async_trait]
impl UserEvents for Recorder {
    async fn user_deleted(&self, account_id: Uuid) -> Result<(), galaxy_core::ApiError> {
        self.0.lock().unwrap().push(("deleted", account_id));
        Ok(())
    }
    async fn user_blocked(
        &self,
        account_id: Uuid,
        _blocked_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), galaxy_core::ApiError> {
        self.0.lock().unwrap().push(("blocked", account_id));
        Ok(())
    }
}

async fn create(db: &TestDb, users: &PgUserService, email: &str, country: Option<&str>) -> Uuid {
    let mut conn = db.pool().get().await.unwrap();
    let (a, created) = galaxy_user::find_or_create(&mut conn, email, country)
        .await
        .unwrap();
    assert!(created);
    users.account_committed(a.clone());
    a.id
}

/// Two sign-ins of one new address at once: one creates the account, the
/// other waits on the insert's conflict and then finds the row the first
/// committed after its own statement began (the statement's fallback).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_sign_ins_of_one_address_share_one_account() {
    use diesel_async::AsyncConnection;
    let db = TestDb::new();
    let mut first = db.pool().get().await.unwrap();
    let mut second = db.pool().get().await.unwrap();
    let (a, other) = first
        .transaction(async |c| {
            let (a, created) =
                galaxy_user::find_or_create(c, "kim@example.test", Some("GB")).await?;
            assert!(created);
            // The second one starts while this transaction holds the row.
            let pool = db.pool();
            let other = tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                galaxy_user::find_or_create(&mut conn, "kim@example.test", None)
                    .await
                    .unwrap()
            });
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(!other.is_finished(), "waits on the uncommitted row");
            Ok::<_, diesel::result::Error>((a, other))
        })
        .await
        .unwrap();
    let (b, created) = other.await.unwrap();
    assert!(!created);
    assert_eq!(b.id, a.id);
    assert_eq!(b.declared_country.as_deref(), Some("GB"));
    let (again, created) = galaxy_user::find_or_create(&mut second, "kim@example.test", None)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        galaxy_testdb::count(&db, "SELECT count(*) AS n FROM accounts").await,
        1,
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_are_created_once_and_the_country_is_never_replaced() {
    let db = TestDb::new();
    let users = PgUserService::new(db.pool());
    users.warm().await.unwrap();
    let id = create(&db, &users, "ann@example.test", Some("GB")).await;
    let mut conn = db.pool().get().await.unwrap();
    let (again, created) = galaxy_user::find_or_create(&mut conn, "ann@example.test", Some("DE"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, id);
    assert_eq!(again.declared_country.as_deref(), Some("GB"));
    let a = users.account(id).unwrap();
    assert_eq!(a.status, AccountStatus::Active);
    assert!(
        !a.display_name.contains("ann"),
        "never derived from the email"
    );

    // A restart reads the same from the table.
    let restarted = PgUserService::new(db.pool());
    assert_eq!(restarted.warm().await.unwrap(), 1);
    assert_eq!(restarted.account(id).unwrap(), a);
    assert_eq!(
        restarted.account_by_email("ann@example.test").unwrap().id,
        id
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_leaves_the_cache_as_it_was() {
    let db = TestDb::new();
    let users = PgUserService::new(db.pool());
    users.warm().await.unwrap();
    let id = create(&db, &users, "bob@example.test", None).await;
    users.set_display_name(id, "Bob").await.unwrap();
    galaxy_db::testing::refuse_updates(&db.pool(), "accounts")
        .await
        .unwrap();
    assert!(matches!(
        users.set_display_name(id, "Robert").await,
        Err(UserError::Db(_))
    ));
    assert_eq!(users.account(id).unwrap().display_name, "Bob");
    assert!(matches!(users.delete(id).await, Err(UserError::Db(_))));
    assert_eq!(users.account(id).unwrap().status, AccountStatus::Active);
    assert!(users.is_active(id));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_and_block_notify_listeners_after_commit() {
    let db = TestDb::new();
    let users = PgUserService::new(db.pool());
    let recorder = Arc::new(Recorder::default());
    users.add_listener(recorder.clone());
    users.warm().await.unwrap();
    let a = create(&db, &users, "cy@example.test", None).await;
    let b = create(&db, &users, "dee@example.test", None).await;

    let blocked = users.set_blocked(a, true).await.unwrap();
    assert_eq!(blocked.status, AccountStatus::Blocked);
    assert!(!users.is_active(a));
    // Blocking again changes nothing and notifies nobody.
    users.set_blocked(a, true).await.unwrap();
    let active = users.set_blocked(a, false).await.unwrap();
    assert_eq!(active.status, AccountStatus::Active);

    users.delete(b).await.unwrap();
    assert_eq!(users.account(b).unwrap().status, AccountStatus::Deleted);
    writes_are_refused_as_deleted(&users, b).await;
    assert!(matches!(
        users.set_blocked(Uuid::now_v7(), true).await,
        Err(UserError::NotFound)
    ));
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![("blocked", a), ("deleted", b)]
    );
    // Both reactions succeeded: nothing is left for the worker.
    assert_eq!(pending_reactions(&db).await, 0);

    // The row is kept, marked deleted.
    let restarted = PgUserService::new(db.pool());
    restarted.warm().await.unwrap();
    assert_eq!(restarted.account(b).unwrap().status, AccountStatus::Deleted);
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_filters_and_pages_newest_first() {
    let db = TestDb::new();
    let users = PgUserService::new(db.pool());
    users.warm().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(&db, &users, &format!("u{i}@example.test"), None).await);
    }
    users.set_display_name(ids[1], "Zed Alpha").await.unwrap();
    users.set_blocked(ids[2], true).await.unwrap();
    let page = |p, s| {
        PageQuery {
            page: Some(p),
            page_size: Some(s),
        }
        .validate()
        .unwrap()
    };

    let all = users.list(&AccountFilter::default(), page(1, 2));
    assert_eq!(all.total, 5);
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.items[0].id, ids[4], "newest first");
    let last = users.list(&AccountFilter::default(), page(3, 2));
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].id, ids[0]);

    let search = |q: Option<&str>, status| {
        let filter = AccountFilter {
            q: q.map(str::to_owned),
            status,
        };
        users.list(&filter, page(1, 50))
    };
    let by_name = search(Some("zed"), None);
    assert_eq!(by_name.items.len(), 1);
    assert_eq!(by_name.items[0].id, ids[1]);
    let by_email = search(Some("U3@EXAMPLE"), None);
    assert_eq!(by_email.items[0].id, ids[3]);
    let blocked = search(None, Some(AccountStatus::Blocked));
    assert_eq!(blocked.total, 1);
    assert_eq!(blocked.items[0].id, ids[2]);
}

/// Blocking, unblocking and renaming the deleted account `id` are refused
/// with `Deleted`.
async fn writes_are_refused_as_deleted(users: &PgUserService, id: Uuid) {
    for blocked in [true, false] {
        let refused = users.set_blocked(id, blocked).await;
        assert!(matches!(refused, Err(UserError::Deleted)), "{refused:?}");
    }
    let refused = users.set_display_name(id, "Back").await;
    assert!(matches!(refused, Err(UserError::Deleted)), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_missed_a_delete_does_not_revive_the_account() {
    let db = TestDb::new();
    let here = PgUserService::new(db.pool());
    here.warm().await.unwrap();
    let a = create(&db, &here, "eve@example.test", None).await;
    // Another process (or a write racing the delete) still sees it active.
    let stale = PgUserService::new(db.pool());
    stale.warm().await.unwrap();
    here.delete(a).await.unwrap();

    writes_are_refused_as_deleted(&stale, a).await;
    // The stale cache learnt the truth; the row stays deleted.
    assert_eq!(stale.account(a).unwrap().status, AccountStatus::Deleted);
    let fresh = PgUserService::new(db.pool());
    fresh.warm().await.unwrap();
    let row = fresh.account(a).unwrap();
    assert_eq!(row.status, AccountStatus::Deleted);
    assert_ne!(row.display_name, "Back");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_status_writes_leave_the_cache_as_the_last_commit() {
    let db = TestDb::new();
    let users = Arc::new(PgUserService::new(db.pool()));
    users.warm().await.unwrap();
    let a = create(&db, &users, "fox@example.test", None).await;
    for round in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..6 {
            let users = users.clone();
            tasks.push(tokio::spawn(async move {
                users
                    .set_blocked(a, (round + i) % 2 == 0)
                    .await
                    .expect("a status write on an active account succeeds");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let fresh = PgUserService::new(db.pool());
        fresh.warm().await.unwrap();
        assert_eq!(
            users.account(a).unwrap().status,
            fresh.account(a).unwrap().status,
            "round {round}: the cache is what committed"
        );
    }
    let deleter = users.clone();
    let blocker = users.clone();
    let (d, _) = tokio::join!(deleter.delete(a), blocker.set_blocked(a, true));
    d.unwrap();
    let fresh = PgUserService::new(db.pool());
    fresh.warm().await.unwrap();
    assert_eq!(fresh.account(a).unwrap().status, AccountStatus::Deleted);
    assert_eq!(users.account(a).unwrap().status, AccountStatus::Deleted);
}

/// Fails its first `failures` calls (a database blip in a listener).
struct Flaky {
    failures: Mutex<u32>,
    calls: Mutex<Vec<Uuid>>,
}

#[async_trait::async_trait]
impl UserEvents for Flaky {
    async fn user_deleted(&self, account_id: Uuid) -> Result<(), galaxy_core::ApiError> {
        self.calls.lock().unwrap().push(account_id);
        let mut left = self.failures.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Err(galaxy_core::ApiError::unavailable("listener down"));
        }
        Ok(())
    }
}

async fn pending_reactions(db: &TestDb) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM account_reactions")
        .get_result::<N>(&mut conn)
        .await
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reaction_is_kept_and_completed_by_a_later_pass() {
    let db = TestDb::new();
    let users = PgUserService::new(db.pool());
    let flaky = Arc::new(Flaky {
        failures: Mutex::new(1),
        calls: Mutex::new(Vec::new()),
    });
    users.add_listener(flaky.clone());
    users.warm().await.unwrap();
    let a = create(&db, &users, "flo@example.test", None).await;

    // The deletion stands although its listener failed; the record stays.
    users.delete(a).await.unwrap();
    assert_eq!(users.account(a).unwrap().status, AccountStatus::Deleted);
    assert_eq!(pending_reactions(&db).await, 1);
    // Not due yet (backoff): a pass leaves it.
    assert_eq!(users.react_due().await.unwrap(), 0);
    let mut conn = db.pool().get().await.unwrap();
    diesel::sql_query("UPDATE account_reactions SET next_attempt_at = now()")
        .execute(&mut conn)
        .await
        .unwrap();
    // Another process (a restart) completes it, once.
    let other = PgUserService::new(db.pool());
    other.add_listener(flaky.clone());
    other.warm().await.unwrap();
    assert_eq!(other.react_due().await.unwrap(), 1);
    assert_eq!(other.react_due().await.unwrap(), 0);
    assert_eq!(pending_reactions(&db).await, 0);
    assert_eq!(*flaky.calls.lock().unwrap(), vec![a, a]);
}
