//! The outbox against a real PostgreSQL and a real SMTP server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, test as at, web};
use common::*;
use galaxy_core::AdminSessionResolver;
use galaxy_core::testing::{ADMIN_TOKEN, TestSessions};
use galaxy_mail::{PgMailService, TlsMode, templates};
use galaxy_testdb::TestDb;
use galaxy_testsmtp::{Reply, SmtpServer, closed_port};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn go() -> CancellationToken {
    CancellationToken::new()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_code_mail_reaches_the_server_with_headers_and_code() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let id = enqueue(&pool, "Player.One@example.test", "493817").await;

    let out = w.run_batch(&go()).await.unwrap();
    assert_eq!(out.processed, 1);
    assert!(!out.full);

    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.from, "galaxy@galaxy.test");
    assert_eq!(m.to, vec!["Player.One@example.test".to_owned()]);
    let from = m.header("From").unwrap();
    assert!(
        from.contains("Galaxy") && from.contains("<galaxy@galaxy.test>"),
        "{from}"
    );
    assert!(m.header("To").unwrap().contains("Player.One@example.test"));
    assert_eq!(
        m.header("Subject").unwrap(),
        templates::login_code("x@y.z", "493817", 10).subject
    );
    assert!(m.body().contains("493817"), "body: {}", m.body());
    assert_eq!(m.message_id().unwrap(), format!("{id}@galaxy.test"));
    assert!(m.header("Date").is_some());

    let r = row(&pool, id).await;
    assert_eq!(r.status, "sent");
    assert!(r.sent_at.is_some());
    let a = attempts(&pool, id).await;
    assert_eq!(a, vec![(1, Some("sent".into()), Some(250), None)]);
    let counts = galaxy_mail::status_counts(&mut pool.get().await.unwrap())
        .await
        .unwrap();
    assert_eq!((counts.sent, counts.pending), (1, 0));
    assert_eq!(w.stats().sent(), 1);
    assert_eq!(w.stats().batches(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_reuses_one_connection_and_reports_full_batches() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let mut settings = fast_worker();
    settings.batch_size = 20;
    let w = worker(&pool, smtp_for(&server, TlsMode::None), settings);
    enqueue_many(&pool, 30).await;

    let first = w.run_batch(&go()).await.unwrap();
    assert_eq!((first.processed, first.full), (20, true));
    assert_eq!(server.message_count(), 20);
    assert_eq!(
        server.greetings(),
        1,
        "one SMTP session for the whole batch"
    );
    // A full batch is followed at once by the next: it keeps the session.
    let second = w.run_batch(&go()).await.unwrap();
    assert_eq!((second.processed, second.full), (10, false));
    assert_eq!(server.greetings(), 1);
    // A batch that was not full closed it: the next one opens its own.
    enqueue_many(&pool, 1).await;
    w.run_batch(&go()).await.unwrap();
    assert_eq!(server.greetings(), 2);
    assert_eq!(sent_count(&pool).await, 31);
}

#[tokio::test(flavor = "multi_thread")]
async fn answer_451_retries_with_growing_delay_then_dead_letters() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::builder()
        .reply(Reply::reject(451))
        .start()
        .unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let id = enqueue(&pool, "a@example.test", "111111").await;

    let mut last_next = None;
    for try_no in 1..=3 {
        wait_due(&pool, id).await;
        let out = w.run_batch(&go()).await.unwrap();
        assert_eq!(out.processed, 1, "try {try_no}");
        let r = row(&pool, id).await;
        assert_eq!(r.cycle_attempts, try_no);
        assert_eq!(
            attempts(&pool, id).await.len(),
            usize::try_from(try_no).unwrap(),
            "one attempt row per try"
        );
        if try_no < 3 {
            assert_eq!(r.status, "retrying");
            if let Some(prev) = last_next {
                assert!(r.next_attempt_at > prev, "next_attempt_at grows");
            }
            last_next = Some(r.next_attempt_at);
        } else {
            assert_eq!(r.status, "dead_lettered");
        }
        assert!(r.last_error.unwrap().starts_with("451"));
    }
    for (no, outcome, code, error) in attempts(&pool, id).await {
        assert!(no >= 1);
        assert_eq!(outcome.as_deref(), Some("failed"));
        assert_eq!(code, Some(451));
        assert!(error.is_some());
    }
    assert_eq!(server.message_count(), 0);
    // A dead letter is not claimed again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.run_batch(&go()).await.unwrap().processed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn answer_550_dead_letters_after_one_attempt() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::builder()
        .reply(Reply::reject(550))
        .start()
        .unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let id = enqueue(&pool, "gone@example.test", "222222").await;
    let ok = enqueue(&pool, "other@example.test", "333333").await;
    server.set_reply(Reply::reject(550));

    w.run_batch(&go()).await.unwrap();
    let r = row(&pool, id).await;
    assert_eq!(r.status, "dead_lettered");
    assert_eq!(r.cycle_attempts, 1);
    let a = attempts(&pool, id).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].2, Some(550));
    assert_eq!(row(&pool, ok).await.status, "dead_lettered");
    assert_eq!(w.stats().permanent_failures(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_leaves_the_session_usable_for_the_next_mail() {
    // The server rejects one recipient (at RCPT TO) and accepts the next
    // mail on the same session after RSET.
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::builder()
        .reply(Reply::reject(452))
        .start()
        .unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let first = enqueue(&pool, "a@example.test", "1").await;
    w.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, first).await.status, "retrying");
    server.set_reply(Reply::Accept);
    wait_due(&pool, first).await;
    let second = enqueue(&pool, "b@example.test", "2").await;
    w.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, first).await.status, "sent");
    assert_eq!(row(&pool, second).await.status, "sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connection_is_transient_for_the_whole_batch() {
    let db = TestDb::new();
    let pool = db.pool();
    let mut smtp =
        galaxy_mail::SmtpSettings::new("127.0.0.1", closed_port().unwrap(), TlsMode::None, FROM);
    smtp.timeout = Duration::from_secs(2);
    let w = worker(&pool, smtp, fast_worker());
    let ids = enqueue_many(&pool, 3).await;
    let out = w.run_batch(&go()).await.unwrap();
    assert_eq!(out.processed, 3);
    for id in ids {
        let r = row(&pool, id).await;
        assert_eq!(r.status, "retrying");
        let a = attempts(&pool, id).await;
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].2, None, "no SMTP code for a refused connection");
        assert!(
            a[0].3
                .as_deref()
                .unwrap()
                .to_lowercase()
                .contains("refused"),
            "{:?}",
            a[0].3
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_with_auth_delivers_and_bad_credentials_retry() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::builder()
        .auth("galaxy", "s3cret-pass")
        .start()
        .unwrap();

    let mut good = smtp_for(&server, TlsMode::StartTls);
    good.username = Some("galaxy".into());
    good.password = "s3cret-pass".into();
    let mut bad = good.clone();
    bad.password = "wrong".into();

    let id = enqueue(&pool, "tls@example.test", "444444").await;
    let w_bad = worker(&pool, bad, fast_worker());
    w_bad.run_batch(&go()).await.unwrap();
    let r = row(&pool, id).await;
    assert_eq!(
        r.status, "retrying",
        "an AUTH failure is an operator problem, not the mail's"
    );
    assert_eq!(attempts(&pool, id).await[0].2, Some(535));
    assert_eq!(server.message_count(), 0);

    wait_due(&pool, id).await;
    let w = worker(&pool, good, fast_worker());
    w.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, id).await.status, "sent");
    let m = &server.messages()[0];
    assert!(m.body().contains("444444"));
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_mode_never_falls_back_to_plaintext() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap(); // offers no STARTTLS
    let w = worker(&pool, smtp_for(&server, TlsMode::StartTls), fast_worker());
    let id = enqueue(&pool, "a@example.test", "555555").await;
    w.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, id).await.status, "retrying");
    assert_eq!(server.message_count(), 0);
    assert!(
        attempts(&pool, id).await[0]
            .3
            .as_deref()
            .unwrap()
            .contains("STARTTLS")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_delivers() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::builder().implicit_tls().start().unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::Tls), fast_worker());
    let id = enqueue(&pool, "smtps@example.test", "666666").await;
    w.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, id).await.status, "sent");
    assert!(server.messages()[0].body().contains("666666"));

    // The same server does not speak plaintext: a client in `none` mode fails.
    let plain = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let other = enqueue(&pool, "x@example.test", "1").await;
    plain.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, other).await.status, "retrying");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_on_separate_connections_never_send_a_row_twice() {
    let db = TestDb::new();
    let pool_a = db.pool();
    let pool_b = galaxy_db::build_pool(db.url(), galaxy_db::PoolSettings::default());
    // Slow enough that one worker cannot drain the outbox (two batches at
    // a time, one claimed ahead) before the other has its first connection.
    let server = SmtpServer::builder()
        .delay_per_message(Duration::from_millis(2))
        .threads(4)
        .start()
        .unwrap();
    let mut settings = fast_worker();
    settings.batch_size = 20;
    let a = worker(&pool_a, smtp_for(&server, TlsMode::None), settings.clone());
    let b = worker(&pool_b, smtp_for(&server, TlsMode::None), settings);
    let ids = enqueue_many(&pool_a, 240).await;

    let run = |w: galaxy_mail::Worker| async move {
        let mut processed = 0;
        loop {
            let out = w.run_batch(&go()).await.unwrap();
            processed += out.processed;
            if out.processed == 0 {
                return processed;
            }
        }
    };
    let (pa, pb) = tokio::join!(tokio::spawn(run(a)), tokio::spawn(run(b)));
    let (pa, pb) = (pa.unwrap(), pb.unwrap());
    assert_eq!(pa + pb, 240);
    assert!(pa > 0 && pb > 0, "both workers took part: {pa} + {pb}");

    let msgs = server.messages();
    assert_eq!(msgs.len(), 240, "no duplicate, no loss");
    let unique: HashSet<String> = msgs.iter().map(|m| m.message_id().unwrap()).collect();
    assert_eq!(unique.len(), 240);
    assert_eq!(sent_count(&pool_a).await, 240);
    for id in ids.iter().take(20) {
        assert_eq!(attempts(&pool_a, *id).await.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_before_sending_releases_the_claimed_rows() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let ids = enqueue_many(&pool, 5).await;
    let stopped = CancellationToken::new();
    stopped.cancel();
    let out = w.run_batch(&stopped).await.unwrap();
    assert_eq!(out.processed, 0);
    assert_eq!(server.message_count(), 0);
    for id in &ids {
        let r = row(&pool, *id).await;
        assert_eq!((r.status.as_str(), r.cycle_attempts), ("pending", 0));
        assert!(r.next_attempt_at <= chrono::Utc::now());
        assert!(
            attempts(&pool, *id).await.is_empty(),
            "an untried row leaves no attempt"
        );
    }
    // And the next batch sends them.
    w.run_batch(&go()).await.unwrap();
    assert_eq!(server.message_count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_abandoned_by_a_dead_worker_is_due_again_after_the_lease() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let id = enqueue(&pool, "a@example.test", "777777").await;
    // What a worker that claimed the row (lease 3s) and was killed before
    // recording leaves behind: the pushed-forward lease and an open attempt.
    {
        let mut c = pool.get().await.unwrap();
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query(
                "WITH c AS (UPDATE mail_deliveries SET next_attempt_at = now() + interval '3 seconds',
                 cycle_attempts = cycle_attempts + 1 WHERE id = $1 RETURNING id)
                 INSERT INTO mail_attempts (delivery_id, attempt_no, started_at) SELECT id, 1, now() FROM c",
            )
            .bind::<diesel::sql_types::Uuid, _>(id),
            &mut c,
        )
        .await
        .unwrap();
    }
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    assert_eq!(
        w.run_batch(&go()).await.unwrap().processed,
        0,
        "leased: invisible"
    );
    wait_due(&pool, id).await;
    assert_eq!(w.run_batch(&go()).await.unwrap().processed, 1, "due again");
    assert_eq!(row(&pool, id).await.status, "sent");
    let a = attempts(&pool, id).await;
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].1.as_deref(), Some("failed"));
    assert!(a[0].3.as_deref().unwrap().starts_with("interrupted"));
    assert_eq!(a[1].1.as_deref(), Some("sent"));
}

/// A resend that races a claim must not make the claimed row due again
/// (a second worker would send it while the first is still sending).
#[tokio::test(flavor = "multi_thread")]
async fn a_resend_racing_a_claim_keeps_the_claims_lease() {
    use diesel_async::RunQueryDsl;
    use galaxy_mail::MailService;
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let id = enqueue(&pool, "race@example.test", "424242").await;
    // A claim in progress: the row locked and leased, an open attempt, not
    // yet committed.
    let mut claimer = pool.get().await.unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut claimer)
        .await
        .unwrap();
    diesel::sql_query(
        "WITH c AS (UPDATE mail_deliveries SET next_attempt_at = now() + interval '30 seconds',
         cycle_attempts = cycle_attempts + 1 WHERE id = $1 RETURNING id)
         INSERT INTO mail_attempts (delivery_id, attempt_no, started_at) SELECT id, 1, now() FROM c",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut claimer)
    .await
    .unwrap();
    let svc = PgMailService::new(pool.clone());
    let resend = tokio::spawn(async move { svc.resend(id).await.map(|d| d.status) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    diesel::sql_query("COMMIT")
        .execute(&mut claimer)
        .await
        .unwrap();
    assert_eq!(resend.await.unwrap().unwrap(), "pending");
    assert!(
        row(&pool, id).await.next_attempt_at > chrono::Utc::now() + chrono::Duration::seconds(20),
        "the resend cut the running try's lease short"
    );
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    assert_eq!(
        w.run_batch(&go()).await.unwrap().processed,
        0,
        "a second worker would send the row again"
    );
}

/// A try whose lease ran out and was superseded by another worker's try
/// must not write its late outcome over the current try's state.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_outcome_of_a_superseded_try_changes_nothing() {
    let db = TestDb::new();
    let pool = db.pool();
    // Every message takes 3 s; worker A gives up after 1.5 s, its lease is 1 s.
    let server = SmtpServer::builder()
        .delay_per_message(Duration::from_secs(3))
        .threads(4)
        .start()
        .unwrap();
    let id = enqueue(&pool, "late@example.test", "515151").await;
    let mut slow = smtp_for(&server, TlsMode::None);
    slow.timeout = Duration::from_millis(1500);
    let mut short = fast_worker();
    short.lease = Duration::from_secs(1);
    let a = worker(&pool, slow, short);
    let b = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let c = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());

    let a_task = tokio::spawn(async move { a.run_batch(&go()).await.unwrap().processed });
    // A's lease is over: B claims the row (A's try is closed as interrupted).
    tokio::time::sleep(Duration::from_millis(1150)).await;
    let b_task = tokio::spawn(async move { b.run_batch(&go()).await.unwrap().processed });
    assert_eq!(
        a_task.await.unwrap(),
        1,
        "A timed out and recorded a failure"
    );
    // A's late failure must not make the row due while B is sending it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        c.run_batch(&go()).await.unwrap().processed,
        0,
        "the row was claimed again while B was still sending it"
    );
    assert_eq!(b_task.await.unwrap(), 1);
    let r = row(&pool, id).await;
    assert_eq!(r.status, "sent");
    let a = attempts(&pool, id).await;
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(
        a[0].3.as_deref().unwrap_or("").starts_with("interrupted"),
        "{a:?}"
    );
    assert_eq!(a[1].1.as_deref(), Some("sent"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_loop_delivers_and_stops_on_shutdown() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let shutdown = CancellationToken::new();
    let task = w.spawn(shutdown.clone());
    enqueue(&pool, "loop@example.test", "888888").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.message_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered within 5s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

// ---- admin routes ----------------------------------------------------------

macro_rules! app {
    ($pool:expr) => {{
        let svc: Arc<dyn galaxy_mail::MailService> = Arc::new(PgMailService::new($pool.clone()));
        let resolver: Arc<dyn AdminSessionResolver> = Arc::new(TestSessions);
        at::init_service(
            App::new()
                .app_data(web::Data::from(resolver))
                .configure(galaxy_core::http::configure_extractors)
                .configure(move |cfg| galaxy_mail::configure(cfg, svc)),
        )
        .await
    }};
}

async fn call<S>(app: &S, method: &str, path: &str, token: Option<&str>) -> (u16, Value)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
        >,
{
    let mut req = match method {
        "POST" => at::TestRequest::post(),
        "DELETE" => at::TestRequest::delete(),
        _ => at::TestRequest::get(),
    }
    .uri(path);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let resp = at::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let body = at::read_body(resp).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[actix_web::test]
async fn dead_letter_resend_sent_then_conflict_with_monotonic_attempts() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::builder()
        .reply(Reply::reject(451))
        .start()
        .unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let app = app!(pool);
    let tok = Some(ADMIN_TOKEN);
    let id = enqueue(&pool, "dl@example.test", "999999").await;

    for _ in 0..3 {
        wait_due(&pool, id).await;
        w.run_batch(&go()).await.unwrap();
    }
    assert_eq!(row(&pool, id).await.status, "dead_lettered");

    let (s, body) = call(&app, "GET", "/api/v1/admin/mail/dead-letters", tok).await;
    assert_eq!(s, 200);
    assert_eq!(body["total"], 1);
    assert_eq!(body["page"], 1);
    assert_eq!(body["page_size"], 50);
    assert_eq!(body["items"][0]["id"], id.to_string());
    assert_eq!(body["items"][0]["status"], "dead_lettered");
    assert!(
        body["items"][0].get("subject").is_none(),
        "content (codes) is not exposed"
    );

    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/mail/deliveries/{id}/resend"),
        tok,
    )
    .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["cycle_attempts"], 0);

    server.set_reply(Reply::Accept);
    w.run_batch(&go()).await.unwrap();
    assert_eq!(row(&pool, id).await.status, "sent");
    assert_eq!(server.message_count(), 1);

    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/mail/deliveries/{id}/resend"),
        tok,
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(body["code"], "already_sent");

    let (s, body) = call(
        &app,
        "GET",
        &format!("/api/v1/admin/mail/deliveries/{id}/attempts"),
        tok,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["total"], 4);
    let nos: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt_no"].as_i64().unwrap())
        .collect();
    assert_eq!(
        nos,
        vec![4, 3, 2, 1],
        "newest first, strictly increasing across cycles"
    );
    assert_eq!(body["items"][0]["outcome"], "sent");
    assert_eq!(body["items"][1]["smtp_code"], 451);

    let (s, body) = call(
        &app,
        "GET",
        &format!("/api/v1/admin/mail/deliveries/{id}"),
        tok,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(body["status"], "sent");
    assert!(body["sent_at"].is_string());

    let (s, body) = call(&app, "GET", "/api/v1/admin/mail/dead-letters", tok).await;
    assert_eq!((s, body["total"].as_i64()), (200, Some(0)));
}

#[actix_web::test]
async fn resend_of_pending_and_retrying_is_accepted() {
    let db = TestDb::new();
    let pool = db.pool();
    let app = app!(pool);
    let tok = Some(ADMIN_TOKEN);
    let pending = enqueue(&pool, "p@example.test", "1").await;
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/mail/deliveries/{pending}/resend"),
        tok,
    )
    .await;
    assert_eq!(s, 202);

    let mut smtp =
        galaxy_mail::SmtpSettings::new("127.0.0.1", closed_port().unwrap(), TlsMode::None, FROM);
    smtp.timeout = Duration::from_secs(2);
    let w = worker(&pool, smtp, fast_worker());
    w.run_batch(&go()).await.unwrap();
    let r = row(&pool, pending).await;
    assert_eq!((r.status.as_str(), r.cycle_attempts), ("retrying", 1));
    let (s, body) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/mail/deliveries/{pending}/resend"),
        tok,
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(body["cycle_attempts"], 0);
    assert!(row(&pool, pending).await.next_attempt_at <= chrono::Utc::now());
}

#[actix_web::test]
async fn admin_routes_guard_validate_and_paginate() {
    let db = TestDb::new();
    let pool = db.pool();
    let app = app!(pool);
    let tok = Some(ADMIN_TOKEN);
    enqueue_many(&pool, 5).await;

    for path in [
        "/api/v1/admin/mail/deliveries",
        "/api/v1/admin/mail/dead-letters",
        &format!("/api/v1/admin/mail/deliveries/{}", Uuid::nil()),
    ] {
        let (s, body) = call(&app, "GET", path, None).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
        let (s, _) = call(&app, "GET", path, Some("user-token")).await;
        assert_eq!(s, 401, "{path}");
    }
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/mail/deliveries/{}/resend", Uuid::nil()),
        None,
    )
    .await;
    assert_eq!(s, 401);

    let (s, body) = call(
        &app,
        "GET",
        "/api/v1/admin/mail/deliveries?page=2&page_size=2",
        tok,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            body["total"].as_i64(),
            body["page"].as_i64(),
            body["page_size"].as_i64()
        ),
        (Some(5), Some(2), Some(2))
    );
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    let (_, all) = call(&app, "GET", "/api/v1/admin/mail/deliveries", tok).await;
    let created: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "newest first");
    assert_eq!(all["items"][0]["subject"], Value::Null);

    for bad in ["?page=0", "?page=abc", "?page_size=500"] {
        let (s, body) = call(
            &app,
            "GET",
            &format!("/api/v1/admin/mail/deliveries{bad}"),
            tok,
        )
        .await;
        assert_eq!(s, 400, "{bad}: {body}");
        assert_eq!(body["code"], "validation_failed");
    }
    let (s, _) = call(&app, "GET", "/api/v1/admin/mail/deliveries/not-a-uuid", tok).await;
    assert_eq!(s, 400);
    let unknown = Uuid::now_v7();
    for (m, p) in [
        ("GET", format!("/api/v1/admin/mail/deliveries/{unknown}")),
        (
            "GET",
            format!("/api/v1/admin/mail/deliveries/{unknown}/attempts"),
        ),
        (
            "POST",
            format!("/api/v1/admin/mail/deliveries/{unknown}/resend"),
        ),
    ] {
        let (s, body) = call(&app, m, &p, tok).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (404, Some("not_found")),
            "{m} {p}"
        );
    }
    let (s, _) = call(&app, "DELETE", "/api/v1/admin/mail/deliveries", tok).await;
    assert_eq!(s, 405);
}

#[test]
fn openapi_lists_every_admin_mail_route() {
    let doc = galaxy_mail::openapi();
    for p in [
        "/api/v1/admin/mail/deliveries",
        "/api/v1/admin/mail/deliveries/{delivery_id}",
        "/api/v1/admin/mail/deliveries/{delivery_id}/attempts",
        "/api/v1/admin/mail/dead-letters",
        "/api/v1/admin/mail/deliveries/{delivery_id}/resend",
    ] {
        assert!(doc.paths.paths.contains_key(p), "{p}");
    }
}
