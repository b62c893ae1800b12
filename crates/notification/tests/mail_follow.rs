//! An email route follows its mail: the mail worker (real SMTP test server)
//! and the mail service report each state they write through
//! `galaxy_mail::DeliveryOutcomes`, implemented by `RoutesFollowMail`, in
//! the same transaction.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Harness, RouteState, fast_settings, start_config_invalid};
use diesel::QueryResult;
use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use galaxy_mail::{
    DeliveryChange, DeliveryOutcomes, MailService, PgMailService, Settings, SmtpSettings, TlsMode,
    Worker, WorkerSettings,
};
use galaxy_notification::RoutesFollowMail;
use galaxy_testsmtp::{Reply, SmtpServer};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn worker(h: &Harness, server: &SmtpServer, max_attempts: u32) -> Worker {
    let mut smtp = SmtpSettings::new(
        "localhost",
        server.port(),
        TlsMode::None,
        "Galaxy <galaxy@galaxy.test>",
    );
    smtp.timeout = Duration::from_secs(5);
    let settings = Settings {
        smtp,
        worker: WorkerSettings {
            interval: Duration::from_millis(50),
            max_attempts,
            retry_base: Duration::from_millis(1),
            retry_max: Duration::from_millis(2),
            batch_size: 50,
            connections: 1,
            lease: Duration::from_secs(30),
            record_every: 10,
        },
    };
    Worker::new(h.db.pool(), settings)
        .expect("worker settings")
        .with_outcomes(Arc::new(RoutesFollowMail))
}

/// Submits an admin kind (one email route to the admin address).
async fn email_route(h: &Harness, key: &str) -> RouteState {
    let s = h.submit(start_config_invalid(key)).await;
    let mut routes = h.routes(s.intent_id).await;
    assert_eq!(routes.len(), 1);
    routes.remove(0)
}

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq)]
struct Mail {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
}

async fn mail(h: &Harness, id: Uuid) -> Mail {
    let mut c = h.db.pool().get().await.unwrap();
    diesel::sql_query("SELECT status, last_error FROM mail_deliveries WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .get_result(&mut c)
        .await
        .unwrap()
}

async fn route(h: &Harness, id: Uuid) -> RouteState {
    let mut c = h.db.pool().get().await.unwrap();
    diesel::sql_query(
        "SELECT id, channel, status, attempts, skip_reason, account_id, address, \
                mail_delivery_id, last_error \
         FROM notification_routes WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .get_result(&mut c)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_route_is_pending_until_its_mail_is_sent_then_delivered() {
    let h = Harness::new(fast_settings(8, Some("ops@example.test")));
    let server = SmtpServer::builder().start().unwrap();
    let r = email_route(&h, "sent").await;
    let delivery = r.mail_delivery_id.expect("linked to its mail");
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 0));
    assert_eq!(mail(&h, delivery).await.status, "pending");

    worker(&h, &server, 3)
        .run_batch(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(server.message_count(), 1);
    assert_eq!(mail(&h, delivery).await.status, "sent");
    let r = route(&h, r.id).await;
    assert_eq!((r.status.as_str(), r.attempts), ("delivered", 1));
    assert_eq!(r.mail_delivery_id, Some(delivery));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_mail_dead_letters_its_route_and_a_resend_rearms_both() {
    let h = Harness::new(fast_settings(8, Some("ops@example.test")));
    let server = SmtpServer::builder()
        .reply(Reply::Reject(550, "mailbox unavailable".into()))
        .start()
        .unwrap();
    let w = worker(&h, &server, 3);
    let r = email_route(&h, "dead").await;
    let delivery = r.mail_delivery_id.unwrap();

    w.run_batch(&CancellationToken::new()).await.unwrap();
    let m = mail(&h, delivery).await;
    assert_eq!(m.status, "dead_lettered");
    let error = m.last_error.expect("the mail says why");
    assert!(error.contains("mailbox unavailable"), "{error}");
    let dead = route(&h, r.id).await;
    assert_eq!(dead.status, "dead_lettered");
    assert_eq!(dead.last_error.as_deref(), Some(error.as_str()));

    // A resend re-arms the mail and, in the same transaction, the route.
    let service = PgMailService::new(h.db.pool()).with_outcomes(Arc::new(RoutesFollowMail));
    service.resend(delivery).await.unwrap();
    assert_eq!(mail(&h, delivery).await.status, "pending");
    assert_eq!(route(&h, r.id).await.status, "pending");

    // A transient failure: the route says `retrying` with the mail's error.
    server.set_reply(Reply::Reject(451, "try later".into()));
    w.run_batch(&CancellationToken::new()).await.unwrap();
    let m = mail(&h, delivery).await;
    assert_eq!(m.status, "retrying");
    let retrying = route(&h, r.id).await;
    assert_eq!(retrying.status, "retrying");
    assert_eq!(retrying.last_error, m.last_error);
    assert!(retrying.last_error.unwrap().contains("try later"));

    // … and follows it to `delivered` once sent.
    server.set_reply(Reply::Accept);
    tokio::time::sleep(Duration::from_millis(50)).await;
    w.run_batch(&CancellationToken::new()).await.unwrap();
    assert_eq!(mail(&h, delivery).await.status, "sent");
    assert_eq!(route(&h, r.id).await.status, "delivered");
}

/// Updates the route, then fails: the transaction that recorded the mail's
/// outcome must roll back with it.
struct FailsAfterUpdating;

#[async_trait]
impl DeliveryOutcomes for FailsAfterUpdating {
    async fn record(
        &self,
        conn: &mut AsyncPgConnection,
        changes: &[DeliveryChange],
    ) -> QueryResult<()> {
        RoutesFollowMail.record(conn, changes).await?;
        Err(diesel::result::Error::RollbackTransaction)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_after_the_updates_leaves_mail_and_route_unchanged() {
    let h = Harness::new(fast_settings(8, Some("ops@example.test")));
    let server = SmtpServer::builder().start().unwrap();
    let r = email_route(&h, "rollback").await;
    let delivery = r.mail_delivery_id.unwrap();

    let failing = worker(&h, &server, 3).with_outcomes(Arc::new(FailsAfterUpdating));
    assert!(failing.run_batch(&CancellationToken::new()).await.is_err());
    assert_eq!(server.message_count(), 1, "the try itself happened");
    assert_eq!(mail(&h, delivery).await.status, "pending");
    let after = route(&h, r.id).await;
    assert_eq!((after.status.as_str(), after.attempts), ("pending", 0));

    // Nor does a failing resend change either.
    let failing = PgMailService::new(h.db.pool()).with_outcomes(Arc::new(FailsAfterUpdating));
    let mut c = h.db.pool().get().await.unwrap();
    diesel::sql_query("UPDATE mail_deliveries SET status = 'dead_lettered' WHERE id = $1")
        .bind::<SqlUuid, _>(delivery)
        .execute(&mut c)
        .await
        .unwrap();
    assert!(failing.resend(delivery).await.is_err());
    assert_eq!(mail(&h, delivery).await.status, "dead_lettered");
    assert_eq!(route(&h, r.id).await.status, "pending");
}
