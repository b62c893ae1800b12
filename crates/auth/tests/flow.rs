//! The auth service against a real PostgreSQL and the project's GeoIP
//! fixture: code flow, limits, sessions, cache write-through and restart.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use galaxy_auth::{AuthError, AuthService, AuthSettings, PgAuthService};
use galaxy_core::UserSessionResolver;
use galaxy_core::env::RateLimit;
use galaxy_geo::CountryCounters;
use galaxy_testdb::{TestDb, count};
use galaxy_user::{PgUserService, UserEvents, UserService};
use uuid::Uuid;

fn settings() -> AuthSettings {
    AuthSettings {
        session_ttl: Duration::from_secs(3600),
        code_ttl: Duration::from_secs(600),
        email_code_limit: "3/15m".parse::<RateLimit>().unwrap(),
        ip_code_limit: "5/15m".parse::<RateLimit>().unwrap(),
        challenge_retention: Duration::from_secs(86400),
        session_retention: Duration::from_secs(86400),
    }
}

struct World {
    db: TestDb,
    users: Arc<PgUserService>,
    auth: Arc<PgAuthService>,
}

async fn world_with(db: TestDb, settings: AuthSettings) -> World {
    let users = Arc::new(PgUserService::new(db.pool()));
    let auth = Arc::new(PgAuthService::new(
        db.pool(),
        users.clone(),
        CountryCounters::new(galaxy_geo::fixture::open()),
        settings,
    ));
    users.add_listener(auth.clone());
    users.warm().await.unwrap();
    auth.warm().await.unwrap();
    World { db, users, auth }
}

async fn world() -> World {
    world_with(TestDb::new(), settings()).await
}

#[derive(diesel::QueryableByName)]
struct Mail {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    to_address: String,
    #[diesel(sql_type = Text)]
    body_text: String,
}

/// The code of the newest login mail to `email`, read from the outbox.
async fn code_for(db: &TestDb, email: &str) -> String {
    let mut conn = db.pool().get().await.unwrap();
    let mail: Mail = diesel::sql_query(
        "SELECT kind, to_address, body_text FROM mail_deliveries WHERE to_address = $1 \
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind::<Text, _>(email)
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(mail.kind, "auth.login_code");
    assert_eq!(mail.to_address, email);
    six_digits(&mail.body_text)
}

fn six_digits(text: &str) -> String {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5))
        .map(|i| &text[i..i + 6])
        .find(|w| w.bytes().all(|b| b.is_ascii_digit()))
        .expect("a 6-digit code in the mail")
        .to_owned()
}

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

const GB: &str = "81.2.69.142";

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_creates_the_account_with_its_country_and_a_session() {
    let w = world().await;
    let ip: IpAddr = GB.parse().unwrap();
    let (challenge, _) = w
        .auth
        .request_code("ann@example.test", Some(ip))
        .await
        .unwrap();
    let code = code_for(&w.db, "ann@example.test").await;

    // The code is stored only hashed.
    assert_eq!(
        count(
            &w.db,
            &format!("SELECT count(*) AS n FROM auth_challenges WHERE code_hash LIKE '%{code}%'")
        )
        .await,
        0
    );

    let s = w
        .auth
        .verify(challenge, &code, Some(ip), Some("test-agent"))
        .await
        .unwrap();
    assert!(s.created);
    assert!(s.token.starts_with("gu_") && s.token.len() == 67);
    assert_eq!(s.account.declared_country.as_deref(), Some("GB"));
    assert_eq!(w.users.account(s.account.id).unwrap(), s.account);
    let who = w.auth.resolve_user(&s.token, Some(ip)).unwrap();
    assert_eq!(who.account_id, s.account.id);
    assert_eq!(w.auth.sessions_of(s.account.id).len(), 1);

    // The challenge is used up.
    assert!(matches!(
        w.auth.verify(challenge, &code, Some(ip), None).await,
        Err(AuthError::ChallengeInvalid)
    ));

    // A second sign-in from elsewhere finds the account; the country stays.
    let (c2, _) = w.auth.request_code("ann@example.test", None).await.unwrap();
    let code2 = code_for(&w.db, "ann@example.test").await;
    let s2 = w
        .auth
        .verify(c2, &code2, Some("2001:db8:2::1".parse().unwrap()), None)
        .await
        .unwrap();
    assert!(!s2.created);
    assert_eq!(s2.account.declared_country.as_deref(), Some("GB"));
    assert_eq!(w.auth.sessions_of(s.account.id).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_codes_kill_the_challenge() {
    let w = world().await;
    let (challenge, _) = w.auth.request_code("bob@example.test", None).await.unwrap();
    let code = code_for(&w.db, "bob@example.test").await;
    for _ in 0..5 {
        assert!(matches!(
            w.auth.verify(challenge, &wrong(&code), None, None).await,
            Err(AuthError::InvalidCode)
        ));
    }
    assert!(matches!(
        w.auth.verify(challenge, &code, None, None).await,
        Err(AuthError::ChallengeInvalid)
    ));
    assert_eq!(count(&w.db, "SELECT count(*) AS n FROM accounts").await, 0);
    assert!(matches!(
        w.auth.verify(Uuid::now_v7(), &code, None, None).await,
        Err(AuthError::ChallengeInvalid)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_challenges_are_refused() {
    let mut s = settings();
    s.code_ttl = Duration::from_millis(300);
    let w = world_with(TestDb::new(), s).await;
    let (challenge, _) = w.auth.request_code("cy@example.test", None).await.unwrap();
    let code = code_for(&w.db, "cy@example.test").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        w.auth.verify(challenge, &code, None, None).await,
        Err(AuthError::ChallengeInvalid)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn code_requests_are_limited_per_email_and_per_ip_even_when_concurrent() {
    let w = world().await;
    // Case and whitespace variants are one address (normalised by the route;
    // the service sees the canonical form).
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let auth = w.auth.clone();
        tasks.push(tokio::spawn(async move {
            auth.request_code("dee@example.test", None).await
        }));
    }
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(AuthError::RateLimited(secs)) => {
                assert!(secs > 0 && secs <= 900);
                limited += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(limited, 3, "exactly the limit passes, even concurrently");
    assert_eq!(
        count(&w.db, "SELECT count(*) AS n FROM auth_challenges").await,
        3
    );
    assert_eq!(
        count(&w.db, "SELECT count(*) AS n FROM mail_deliveries").await,
        3
    );

    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    for i in 0..5 {
        w.auth
            .request_code(&format!("p{i}@example.test"), Some(ip))
            .await
            .unwrap();
    }
    assert!(matches!(
        w.auth.request_code("p9@example.test", Some(ip)).await,
        Err(AuthError::RateLimited(_))
    ));
    // Another address is not affected.
    w.auth
        .request_code("p9@example.test", Some("192.0.2.8".parse().unwrap()))
        .await
        .unwrap();
}

async fn signed_in(w: &World, email: &str) -> (String, Uuid) {
    let (c, _) = w.auth.request_code(email, None).await.unwrap();
    let code = code_for(&w.db, email).await;
    let s = w.auth.verify(c, &code, None, None).await.unwrap();
    (s.token, s.account.id)
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_survive_a_restart_and_revocation_is_owner_only() {
    let w = world().await;
    let (t1, a1) = signed_in(&w, "eve@example.test").await;
    let (t2, _a2) = signed_in(&w, "fay@example.test").await;
    let s2 = w.auth.resolve_user(&t2, None).unwrap().session_id;

    // A user cannot revoke someone else's session.
    assert!(matches!(
        w.auth.revoke_session(a1, s2).await,
        Err(AuthError::SessionNotFound)
    ));
    assert!(w.auth.resolve_user(&t2, None).is_some());

    // A fresh service on the same database (a restart) resolves both tokens.
    let users = Arc::new(PgUserService::new(w.db.pool()));
    let restarted = PgAuthService::new(
        w.db.pool(),
        users.clone(),
        CountryCounters::new(galaxy_geo::fixture::open()),
        settings(),
    );
    users.warm().await.unwrap();
    restarted.warm().await.unwrap();
    assert_eq!(restarted.resolve_user(&t1, None).unwrap().account_id, a1);
    assert!(restarted.resolve_user(&t2, None).is_some());
    assert!(restarted.resolve_user("gu_nonsense", None).is_none());
    assert!(
        restarted
            .resolve_user(&t1.replace("gu_", "ga_"), None)
            .is_none()
    );

    // Deletion revokes every session through the listener.
    w.users.delete(a1).await.unwrap();
    assert!(w.auth.resolve_user(&t1, None).is_none());
    assert_eq!(
        count(
            &w.db,
            &format!(
                "SELECT count(*) AS n FROM auth_sessions WHERE account_id = '{a1}' AND revoked_at IS NULL"
            )
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_commit_leaves_the_session_cache_as_it_was() {
    let w = world().await;
    let (token, account) = signed_in(&w, "gus@example.test").await;
    let session = w.auth.resolve_user(&token, None).unwrap().session_id;
    galaxy_db::testing::refuse_updates(&w.db.pool(), "auth_sessions")
        .await
        .unwrap();
    assert!(matches!(
        w.auth.revoke_session(account, session).await,
        Err(AuthError::Db(_))
    ));
    assert!(
        w.auth.resolve_user(&token, None).is_some(),
        "the cache still holds the session the database still holds"
    );
    assert_eq!(w.auth.sessions_of(account).len(), 1);
}

#[derive(diesel::QueryableByName)]
struct Seen {
    #[diesel(sql_type = Timestamptz)]
    last_seen_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    source_ip: Option<String>,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[tokio::test(flavor = "multi_thread")]
async fn last_seen_is_written_in_batches_by_the_flusher() {
    let w = world().await;
    let (token, _) = signed_in(&w, "hal@example.test").await;
    let load = || async {
        let mut conn = w.db.pool().get().await.unwrap();
        diesel::sql_query(
            "SELECT last_seen_at, host(source_ip) AS source_ip, id FROM auth_sessions",
        )
        .get_result::<Seen>(&mut conn)
        .await
        .unwrap()
    };
    let before = load().await;
    assert_eq!(before.source_ip, None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let who = w.auth.resolve_user(&token, None).unwrap();
    assert_eq!(who.session_id, before.id);
    // Not written on the request path…
    assert_eq!(load().await.last_seen_at, before.last_seen_at);
    // …but by the flush.
    assert_eq!(w.auth.flush_last_seen().await.unwrap(), 1);
    assert!(load().await.last_seen_at > before.last_seen_at);
    assert_eq!(w.auth.flush_last_seen().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_mail_knows_when_its_code_dies() {
    let w = world().await;
    let (id, expires_at) = w.auth.request_code("sid@example.test", None).await.unwrap();
    let n = count(
        &w.db,
        &format!(
            "SELECT count(*) AS n FROM mail_deliveries m JOIN auth_challenges c ON c.id = '{id}' \
             WHERE m.to_address = 'sid@example.test' AND m.secret_until = c.expires_at"
        ),
    )
    .await;
    assert_eq!(n, 1, "secret_until is the code's expiry ({expires_at})");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_challenges_and_sessions_are_pruned_after_their_retention() {
    let mut s = settings();
    s.challenge_retention = Duration::from_secs(3600);
    s.session_retention = Duration::from_secs(3600);
    let w = world_with(TestDb::new(), s).await;
    let (_, kept_account) = signed_in(&w, "kim@example.test").await;
    let (_, old_account) = signed_in(&w, "lou@example.test").await;
    w.auth.request_code("mo@example.test", None).await.unwrap();
    // Age everything of lou's and mo's past the retention (and the limit windows).
    let mut c = w.db.pool().get().await.unwrap();
    for sql in [
        format!(
            "UPDATE auth_sessions SET expires_at = now() - interval '2 hours' \
             WHERE account_id = '{old_account}'"
        ),
        "UPDATE auth_challenges SET expires_at = now() - interval '2 hours', \
         created_at = now() - interval '3 hours' \
         WHERE email IN ('lou@example.test', 'mo@example.test')"
            .to_owned(),
        // Expired, but only just: kept.
        format!(
            "UPDATE auth_sessions SET revoked_at = now() - interval '10 minutes' \
             WHERE account_id = '{kept_account}'"
        ),
    ] {
        diesel::sql_query(sql).execute(&mut c).await.unwrap();
    }

    assert_eq!(w.auth.prune().await.unwrap(), (2, 1));
    assert_eq!(
        count(&w.db, "SELECT count(*) AS n FROM auth_challenges").await,
        1,
        "kim's challenge is inside its retention"
    );
    assert_eq!(
        count(
            &w.db,
            &format!("SELECT count(*) AS n FROM auth_sessions WHERE account_id = '{kept_account}'")
        )
        .await,
        1
    );
    assert_eq!(w.auth.prune().await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_completed_late_revokes_only_what_existed_at_the_block() {
    let w = world().await;
    let (old, a) = signed_in(&w, "gil@example.test").await;
    let blocked_at = chrono::Utc::now();
    // Unblocked meanwhile, the user signed in again before the block's
    // reaction ran (it is retried after a crash: decision HARD-15).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (new, _) = signed_in(&w, "gil@example.test").await;
    UserEvents::user_blocked(w.auth.as_ref(), a, blocked_at)
        .await
        .unwrap();
    assert!(w.auth.resolve_user(&old, None).is_none());
    assert!(w.auth.resolve_user(&new, None).is_some());
    // Run again, it changes nothing.
    UserEvents::user_blocked(w.auth.as_ref(), a, blocked_at)
        .await
        .unwrap();
    let live = format!(
        "SELECT count(*) AS n FROM auth_sessions WHERE account_id = '{a}' AND revoked_at IS NULL"
    );
    assert_eq!(count(&w.db, &live).await, 1);
}
