//! Mails that carry a live secret (sign-in codes) do not keep it: scrubbed
//! once sent, and a dead letter once its secret has expired; a scrubbed mail
//! cannot be resent.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use common::*;
use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl;
use galaxy_db::Pool;
use galaxy_mail::{MailError, MailService, PgMailService, TlsMode};
use galaxy_testdb::TestDb;
use galaxy_testsmtp::{SmtpServer, closed_port};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(diesel::QueryableByName)]
struct Content {
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    body_text: String,
}

async fn content(pool: &Pool, id: Uuid) -> String {
    let mut c = pool.get().await.unwrap();
    let r: Content = diesel::sql_query(
        "SELECT subject, body_text || coalesce(body_html, '') AS body_text \
         FROM mail_deliveries WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .get_result(&mut c)
    .await
    .unwrap();
    format!("{}\n{}", r.subject, r.body_text)
}

/// A login-code mail whose secret expires `expires_in` from now (a Postgres interval).
async fn secret_mail(pool: &Pool, to: &str, code: &str, expires_in: &str) -> Uuid {
    let id = enqueue(pool, to, code).await;
    let mut c = pool.get().await.unwrap();
    diesel::sql_query(
        "UPDATE mail_deliveries SET secret_until = now() + $2::interval WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(expires_in)
    .execute(&mut c)
    .await
    .unwrap();
    id
}

async fn dead_letter(pool: &Pool, id: Uuid) {
    let mut c = pool.get().await.unwrap();
    diesel::sql_query(
        "UPDATE mail_deliveries SET status = 'dead_lettered', last_error = 'x' WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .execute(&mut c)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sent_secret_mail_is_scrubbed_a_plain_one_is_not() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let w = worker(&pool, smtp_for(&server, TlsMode::None), fast_worker());
    let secret = secret_mail(&pool, "ann@example.test", "493817", "10 minutes").await;
    let plain = enqueue_many(&pool, 1).await[0];

    w.run_batch(&CancellationToken::new()).await.unwrap();
    assert_eq!(row(&pool, secret).await.status, "sent");
    assert!(
        server.messages()[0].body().contains("493817"),
        "sent with its code"
    );
    // The next batch (the worker's next tick) scrubs what was sent.
    w.run_batch(&CancellationToken::new()).await.unwrap();
    let left = content(&pool, secret).await;
    assert!(!left.contains("493817"), "the code is gone: {left}");
    assert!(
        content(&pool, plain).await.contains("body 0"),
        "plain mail kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_keeps_its_secret_until_it_expires_then_cannot_be_resent() {
    let db = TestDb::new();
    let pool = db.pool();
    // Nothing listens: every try fails, nothing is sent.
    let mut smtp =
        galaxy_mail::SmtpSettings::new("127.0.0.1", closed_port().unwrap(), TlsMode::None, FROM);
    smtp.timeout = std::time::Duration::from_secs(2);
    let w = worker(&pool, smtp, fast_worker());
    let service = PgMailService::new(pool.clone());

    let live = secret_mail(&pool, "bob@example.test", "111222", "10 minutes").await;
    let expired = secret_mail(&pool, "cy@example.test", "333444", "-1 second").await;
    dead_letter(&pool, live).await;
    dead_letter(&pool, expired).await;
    w.run_batch(&CancellationToken::new()).await.unwrap();

    assert!(
        content(&pool, live).await.contains("111222"),
        "still resendable"
    );
    assert!(
        !content(&pool, expired).await.contains("333444"),
        "expired code scrubbed"
    );
    let rearmed = service.resend(live).await.unwrap();
    assert_eq!(rearmed.status, "pending");
    let err = service.resend(expired).await.unwrap_err();
    assert!(matches!(err, MailError::Expired), "{err:?}");
    let api = galaxy_core::ApiError::from(err);
    assert_eq!(api.code(), "expired");
}
