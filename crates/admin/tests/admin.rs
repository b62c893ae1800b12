//! The admin service against a real PostgreSQL: bootstrap idempotence,
//! argon2id logins, limits, password rotation, failed commits, the user
//! surface.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use galaxy_admin::{AdminError, AdminService, AdminSettings, PgAdminService};
use galaxy_auth::{AuthService, AuthSettings, PgAuthService};
use galaxy_core::{AdminSessionResolver, PageQuery, UserSessionResolver};
use galaxy_geo::CountryCounters;
use galaxy_testdb::{TestDb, count};
use galaxy_user::{AccountFilter, AccountStatus, PgUserService, UserService};
use uuid::Uuid;

struct World {
    db: TestDb,
    users: Arc<PgUserService>,
    auth: Arc<PgAuthService>,
    admin: Arc<PgAdminService>,
}

fn admin_settings() -> AdminSettings {
    AdminSettings {
        session_ttl: Duration::from_secs(3600),
        login_limit: "4/15m".parse().unwrap(),
        hash_concurrency: 2,
    }
}

fn build(db: &TestDb) -> (Arc<PgUserService>, Arc<PgAuthService>, Arc<PgAdminService>) {
    let users = Arc::new(PgUserService::new(db.pool()));
    let auth = Arc::new(PgAuthService::new(
        db.pool(),
        users.clone(),
        CountryCounters::new(galaxy_geo::fixture::open()),
        // the defaults, with short-lived sessions
        AuthSettings {
            session_ttl: Duration::from_secs(3600),
            session_retention: Duration::from_secs(86400),
            ..AuthSettings::from_env(&galaxy_core::env::Env::default()).unwrap()
        },
    ));
    users.add_listener(auth.clone());
    let admin = Arc::new(PgAdminService::new(
        db.pool(),
        users.clone(),
        auth.clone(),
        admin_settings(),
    ));
    (users, auth, admin)
}

const BOOT: (&str, &str) = ("root", "first-password-123");

impl World {
    /// Signs `username` in from `ip` (which must succeed) and gives the token.
    async fn login(&self, username: &str, password: &str, ip: Option<IpAddr>) -> String {
        let (token, _) = self.admin.login(username, password, ip).await.unwrap();
        token
    }
}

async fn world() -> World {
    let db = TestDb::new();
    let (users, auth, admin) = build(&db);
    users.warm().await.unwrap();
    auth.warm().await.unwrap();
    admin.warm(Some(BOOT)).await.unwrap();
    World {
        db,
        users,
        auth,
        admin,
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_is_idempotent_and_never_overwrites_a_password() {
    let w = world().await;
    for i in 0..3 {
        let (u, a, ad) = build(&w.db);
        u.warm().await.unwrap();
        a.warm().await.unwrap();
        ad.warm(Some(("root", "another-password-456")))
            .await
            .unwrap();
        assert!(matches!(
            ad.login("root", "another-password-456", ip("10.0.0.1"))
                .await,
            Err(AdminError::BadCredentials)
        ));
        assert!(ad.login("root", BOOT.1, ip("10.0.0.1")).await.is_ok());
        // Failures are counted in the database, shared by every instance
        // (per username 2 here): forget them before the next "restart".
        if i < 2 {
            count(&w.db, "WITH d AS (DELETE FROM admin_login_attempts RETURNING 1) SELECT count(*) AS n FROM d").await;
        }
    }
    assert_eq!(
        count(&w.db, "SELECT count(*) AS n FROM admin_login_attempts").await,
        1,
        "the failure of the last round counted, the successes released"
    );
    assert_eq!(count(&w.db, "SELECT count(*) AS n FROM admins").await, 1);
    let mut conn = w.db.pool().get().await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Hash {
        #[diesel(sql_type = Text)]
        password_hash: String,
    }
    let h: Hash = diesel::sql_query("SELECT password_hash FROM admins")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(h.password_hash.starts_with("$argon2id$"));
}

#[tokio::test(flavor = "multi_thread")]
async fn login_resolve_logout_and_token_kinds_never_cross() {
    let w = world().await;
    let token = w.login("root", BOOT.1, ip("10.0.0.1")).await;
    assert!(token.starts_with("ga_"));
    let who = w.admin.resolve_admin(&token).unwrap();
    assert_eq!(who.username, "root");
    assert!(w.auth.resolve_user(&token, None).is_none());
    assert!(
        w.admin
            .resolve_admin(&token.replacen("ga_", "gu_", 1))
            .is_none()
    );

    // A restart keeps the session.
    let (u, a, ad) = build(&w.db);
    u.warm().await.unwrap();
    a.warm().await.unwrap();
    ad.warm(None).await.unwrap();
    assert!(ad.resolve_admin(&token).is_some());

    w.admin.logout(&who).await.unwrap();
    assert!(w.admin.resolve_admin(&token).is_none());
    assert!(matches!(
        w.admin
            .login("root", "wrong-password", ip("10.0.0.1"))
            .await,
        Err(AdminError::BadCredentials)
    ));
    assert!(matches!(
        w.admin
            .login("nobody", "wrong-password", ip("10.0.0.1"))
            .await,
        Err(AdminError::BadCredentials)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_limited_per_ip_and_half_that_per_username() {
    let w = world().await;
    // Per username: 2 failures (half of 4), from different addresses.
    for i in 0..2 {
        assert!(matches!(
            w.admin
                .login("root", "bad", ip(&format!("10.1.0.{i}")))
                .await,
            Err(AdminError::BadCredentials)
        ));
    }
    assert!(matches!(
        w.admin.login("root", BOOT.1, ip("10.1.0.9")).await,
        Err(AdminError::RateLimited(s)) if s > 0
    ));
    // Per address: 4 failures across usernames.
    for i in 0..4 {
        let _ = w.admin.login(&format!("u{i}"), "bad", ip("10.2.0.1")).await;
    }
    assert!(matches!(
        w.admin.login("other", "bad", ip("10.2.0.1")).await,
        Err(AdminError::RateLimited(_))
    ));
}

/// Issue 13: the attempt is reserved before the hash, so parallel wrong
/// logins cannot all reach argon2 while the first ones are still hashing.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_wrong_logins_reserve_their_attempt_before_hashing() {
    let w = world().await;
    w.admin
        .create_admin("root2", "second-password-456")
        .await
        .unwrap();
    let mut settings = admin_settings();
    settings.login_limit = "10/15m".parse().unwrap();
    let admin = Arc::new(PgAdminService::new(
        w.db.pool(),
        w.users.clone(),
        w.auth.clone(),
        settings,
    ));
    admin.warm(None).await.unwrap();

    let storm = |names: Vec<String>, ips: Vec<String>| {
        let admin = admin.clone();
        async move {
            let tasks: Vec<_> = names
                .into_iter()
                .zip(ips)
                .map(|(name, addr)| {
                    let admin = admin.clone();
                    tokio::spawn(async move { admin.login(&name, "wrong", ip(&addr)).await })
                })
                .collect();
            let (mut checked, mut limited) = (0, 0);
            for t in tasks {
                match t.await.unwrap() {
                    Err(AdminError::BadCredentials) => checked += 1,
                    Err(AdminError::RateLimited(secs)) => {
                        assert!(secs > 0);
                        limited += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            (checked, limited)
        }
    };
    // 40 at once from one address, each for another username: at most 10
    // reach the password check, the rest are 429.
    let (checked, limited) = storm(
        (0..40).map(|i| format!("nobody{i}")).collect(),
        vec!["10.9.0.1".to_owned(); 40],
    )
    .await;
    assert!(checked <= 10, "{checked} reached the password check");
    assert_eq!(checked + limited, 40);
    assert!(limited >= 30);
    // 40 at once for one username from 40 addresses: at most 5 (half).
    let (checked, limited) = storm(
        vec!["root".to_owned(); 40],
        (0..40).map(|i| format!("10.8.0.{i}")).collect(),
    )
    .await;
    assert!(checked <= 5, "{checked} reached the password check");
    assert!(limited >= 35);
    // Limits count failures: a correct password from a fresh address for a
    // username under its limit works, as often as it is used.
    for _ in 0..12 {
        admin
            .login("root2", "second-password-456", ip("10.7.0.1"))
            .await
            .map_or_else(|e| panic!("{e}"), drop);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn password_rotation_revokes_other_sessions_and_a_failed_commit_changes_nothing() {
    let w = world().await;
    let t1 = w.login("root", BOOT.1, ip("10.0.0.1")).await;
    let t2 = w.login("root", BOOT.1, ip("10.0.0.1")).await;
    let who = w.admin.resolve_admin(&t1).unwrap();
    assert!(matches!(
        w.admin
            .change_password(&who, "wrong", "new-password-789")
            .await,
        Err(AdminError::WrongPassword)
    ));
    w.admin
        .change_password(&who, BOOT.1, "new-password-789")
        .await
        .unwrap();
    assert!(
        w.admin.resolve_admin(&t1).is_some(),
        "the caller's session stays"
    );
    assert!(w.admin.resolve_admin(&t2).is_none(), "others are revoked");
    w.login("root", "new-password-789", ip("10.0.0.2")).await;

    galaxy_db::testing::refuse_updates(&w.db.pool(), "admin_sessions")
        .await
        .unwrap();
    let t3 = w.login("root", "new-password-789", ip("10.0.0.3")).await;
    assert!(matches!(
        w.admin
            .change_password(&who, "new-password-789", "newer-password-000")
            .await,
        Err(AdminError::Db(_))
    ));
    // Rolled back as a whole: the old password and the other session stand.
    assert!(w.admin.resolve_admin(&t3).is_some());
    w.login("root", "new-password-789", ip("10.0.0.4")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_are_created_once_and_listed() {
    let w = world().await;
    let created = w
        .admin
        .create_admin("ops", "ops-password-123")
        .await
        .unwrap();
    assert_eq!(created.username, "ops");
    assert!(matches!(
        w.admin.create_admin("ops", "ops-password-123").await,
        Err(AdminError::UsernameTaken)
    ));
    let page = PageQuery::default().validate().unwrap();
    let list = w.admin.list_admins(page);
    assert_eq!(list.total, 2);
    assert_eq!(list.items[0].username, "root");
    w.login("ops", "ops-password-123", ip("10.0.0.1")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn block_revokes_sessions_and_detail_shows_them() {
    let w = world().await;
    w.auth.request_code("pat@example.test", None).await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Body {
        #[diesel(sql_type = Text)]
        body_text: String,
    }
    let mut conn = w.db.pool().get().await.unwrap();
    let mail: Body = diesel::sql_query("SELECT body_text FROM mail_deliveries")
        .get_result(&mut conn)
        .await
        .unwrap();
    let code: String = mail
        .body_text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();
    let challenge: Uuid = {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::Uuid)]
            id: Uuid,
        }
        diesel::sql_query("SELECT id FROM auth_challenges")
            .get_result::<Id>(&mut conn)
            .await
            .unwrap()
            .id
    };
    let s = w.auth.verify(challenge, &code, None, None).await.unwrap();
    let (account, counters, sessions) = w.admin.user_detail(s.account.id).await.unwrap();
    assert_eq!(account.id, s.account.id);
    assert!(counters.is_empty());
    assert_eq!(sessions.len(), 1);

    let blocked = w.admin.set_blocked(s.account.id, true).await.unwrap();
    assert_eq!(blocked.status, AccountStatus::Blocked);
    assert!(w.auth.resolve_user(&s.token, None).is_none());
    assert!(w.auth.sessions_of(s.account.id).is_empty());
    let listed = w.admin.list_users(
        &AccountFilter {
            q: None,
            status: Some(AccountStatus::Blocked),
        },
        PageQuery::default().validate().unwrap(),
    );
    assert_eq!(listed.total, 1);
    w.admin.set_blocked(s.account.id, false).await.unwrap();
    assert!(w.users.is_active(s.account.id));
    assert!(w.admin.user_detail(Uuid::now_v7()).await.is_err());
    assert!(w.admin.revoke_user_sessions(Uuid::now_v7()).await.is_err());
    assert_eq!(w.admin.revoke_user_sessions(s.account.id).await.unwrap(), 0);
}
