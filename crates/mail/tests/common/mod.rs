//! Shared helpers: a real PostgreSQL (TestDb), a real SMTP server on loopback
//! (galaxy-testsmtp, mailin-embedded), and the worker configured for them.
#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use galaxy_db::Pool;
use galaxy_mail::schema::{mail_attempts, mail_deliveries};
use galaxy_mail::{
    Delivery, NewMail, Settings, SmtpSettings, TlsMode, Worker, WorkerSettings, templates,
};
use galaxy_testsmtp::SmtpServer;
use uuid::Uuid;

pub const FROM: &str = "Galaxy <galaxy@galaxy.test>";

pub fn smtp_for(server: &SmtpServer, tls: TlsMode) -> SmtpSettings {
    let mut s = SmtpSettings::new("localhost", server.port(), tls, FROM);
    s.timeout = Duration::from_secs(5);
    if let Some(der) = server.cert_der() {
        s.extra_roots.push(der.to_vec());
    }
    s
}

pub fn fast_worker() -> WorkerSettings {
    WorkerSettings {
        interval: Duration::from_millis(50),
        max_attempts: 3,
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        batch_size: 50,
        connections: 1,
        lease: Duration::from_secs(30),
        record_every: 10,
    }
}

pub fn worker(pool: &Pool, smtp: SmtpSettings, w: WorkerSettings) -> Worker {
    Worker::new(pool.clone(), Settings { smtp, worker: w }).expect("worker settings")
}

pub async fn enqueue(pool: &Pool, to: &str, code: &str) -> Uuid {
    let mut c = pool.get().await.unwrap();
    galaxy_mail::enqueue(&mut c, &templates::login_code(to, code, 10))
        .await
        .unwrap()
}

pub async fn enqueue_many(pool: &Pool, n: usize) -> Vec<Uuid> {
    let mut c = pool.get().await.unwrap();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let m = NewMail {
            kind: "test.bulk".into(),
            to: format!("player{i}@galaxy.test"),
            subject: format!("bulk {i}"),
            body_text: format!("body {i}"),
            ..NewMail::default()
        };
        ids.push(galaxy_mail::enqueue(&mut c, &m).await.unwrap());
    }
    ids
}

pub async fn row(pool: &Pool, id: Uuid) -> Delivery {
    let mut c = pool.get().await.unwrap();
    mail_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(&mut c)
        .await
        .unwrap()
}

/// (attempt_no, outcome, smtp_code, error) in attempt order.
pub async fn attempts(
    pool: &Pool,
    id: Uuid,
) -> Vec<(i32, Option<String>, Option<i32>, Option<String>)> {
    let mut c = pool.get().await.unwrap();
    mail_attempts::table
        .filter(mail_attempts::delivery_id.eq(id))
        .order(mail_attempts::attempt_no)
        .select((
            mail_attempts::attempt_no,
            mail_attempts::outcome,
            mail_attempts::smtp_code,
            mail_attempts::error,
        ))
        .load(&mut c)
        .await
        .unwrap()
}

pub async fn sent_count(pool: &Pool) -> i64 {
    let mut c = pool.get().await.unwrap();
    galaxy_mail::status_counts(&mut c).await.unwrap().sent
}

/// Sleeps until the row's `next_attempt_at` has passed.
pub async fn wait_due(pool: &Pool, id: Uuid) {
    let due = row(pool, id).await.next_attempt_at;
    let wait = (due - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
}
