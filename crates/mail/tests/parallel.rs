//! A batch sent over several SMTP sessions at once
//! (`BACKEND_MAIL_SMTP_CONNECTIONS`), against a real PostgreSQL and a real
//! SMTP server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use galaxy_mail::TlsMode;
use galaxy_testdb::TestDb;
use galaxy_testsmtp::{SmtpServer, closed_port};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Sessions inside the server's end-of-message handler right now, and the
/// most seen at once.
#[derive(Default)]
struct Gauge {
    /// (inside now, most at once, gave up waiting)
    state: Mutex<(usize, usize, bool)>,
    changed: Condvar,
}

impl Gauge {
    /// Holds each message until `want` sessions are inside at once (or a
    /// generous bound passes, so a serial sender fails the assertion below
    /// instead of hanging); once that was seen, messages pass straight on.
    fn hold(&self, want: usize) {
        let mut s = self.state.lock().unwrap();
        s.0 += 1;
        s.1 = s.1.max(s.0);
        self.changed.notify_all();
        let (mut s, waited) = self
            .changed
            .wait_timeout_while(s, Duration::from_secs(5), |s| s.1 < want && !s.2)
            .unwrap();
        s.2 |= waited.timed_out();
        s.0 -= 1;
    }

    fn most(&self) -> usize {
        self.state.lock().unwrap().1
    }
}

fn server_holding_for(want: usize) -> (SmtpServer, Arc<Gauge>) {
    let gauge = Arc::new(Gauge::default());
    let g = Arc::clone(&gauge);
    let server = SmtpServer::builder()
        .threads(16)
        .on_message(move |_| g.hold(want))
        .start()
        .unwrap();
    (server, gauge)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_goes_out_over_n_sessions_at_once_and_every_mail_once() {
    const N: usize = 4;
    let db = TestDb::new();
    let pool = db.pool();
    let (server, gauge) = server_holding_for(N);
    let mut settings = fast_worker();
    settings.connections = N;
    settings.batch_size = 50;
    settings.record_every = 7;
    let w = worker(&pool, smtp_for(&server, TlsMode::None), settings);
    let ids = enqueue_many(&pool, 40).await;

    let out = w.run_batch(&CancellationToken::new()).await.unwrap();
    assert_eq!((out.processed, out.full), (40, false));

    assert_eq!(gauge.most(), N, "the server saw N sessions at once");
    assert_eq!(server.greetings(), N, "one session per connection");
    let msgs = server.messages();
    assert_eq!(msgs.len(), 40, "every mail once");
    let got: HashSet<String> = msgs
        .iter()
        .filter_map(galaxy_testsmtp::Received::message_id)
        .collect();
    let want: HashSet<String> = ids.iter().map(|id| format!("{id}@galaxy.test")).collect();
    assert_eq!(got, want);
    for id in &ids {
        assert_eq!(row(&pool, *id).await.status, "sent");
        assert_eq!(
            attempts(&pool, *id).await,
            vec![(1, Some("sent".into()), Some(250), None)]
        );
    }
    assert_eq!(w.stats().sent(), 40);
    // Nothing left to claim: a second batch sends nothing again.
    assert_eq!(
        w.run_batch(&CancellationToken::new())
            .await
            .unwrap()
            .processed,
        0
    );
    assert_eq!(server.message_count(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn more_connections_than_rows_opens_one_session_per_row() {
    let db = TestDb::new();
    let pool = db.pool();
    let server = SmtpServer::accepting().unwrap();
    let mut settings = fast_worker();
    settings.connections = 8;
    let w = worker(&pool, smtp_for(&server, TlsMode::None), settings);
    let ids = enqueue_many(&pool, 3).await;
    assert_eq!(
        w.run_batch(&CancellationToken::new())
            .await
            .unwrap()
            .processed,
        3
    );
    assert_eq!(server.greetings(), 3);
    assert_eq!(server.message_count(), 3);
    for id in ids {
        assert_eq!(row(&pool, id).await.status, "sent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_relay_fails_every_row_once_across_sessions() {
    let db = TestDb::new();
    let pool = db.pool();
    let mut smtp =
        galaxy_mail::SmtpSettings::new("127.0.0.1", closed_port().unwrap(), TlsMode::None, FROM);
    smtp.timeout = Duration::from_secs(2);
    let mut settings = fast_worker();
    settings.connections = 4;
    let w = worker(&pool, smtp, settings);
    let ids = enqueue_many(&pool, 20).await;
    let out = w.run_batch(&CancellationToken::new()).await.unwrap();
    assert_eq!(out.processed, 20);
    assert_eq!(w.stats().failed(), 20);
    for id in ids {
        assert_eq!(row(&pool, id).await.status, "retrying");
        let a = attempts(&pool, id).await;
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].1.as_deref(), Some("failed"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_mid_batch_releases_only_the_untried_rows() {
    const N: usize = 3;
    let db = TestDb::new();
    let pool = db.pool();
    let stop = CancellationToken::new();
    // The server stops the worker once the first N mails are in; those are
    // recorded as sent, nothing else is sent, the rest is handed back.
    let seen = Arc::new(Mutex::new(0usize));
    let (s, t) = (Arc::clone(&seen), stop.clone());
    let server = SmtpServer::builder()
        .on_message(move |_| {
            let mut n = s.lock().unwrap();
            *n += 1;
            if *n == N {
                t.cancel();
            }
        })
        .start()
        .unwrap();
    let mut settings = fast_worker();
    settings.connections = N;
    let w = worker(&pool, smtp_for(&server, TlsMode::None), settings);
    let ids: Vec<Uuid> = enqueue_many(&pool, 30).await;
    let out = w.run_batch(&stop).await.unwrap();

    let sent = server.message_count();
    assert!(
        (N..=2 * N).contains(&sent),
        "at most one more mail per session after the stop: {sent}"
    );
    assert_eq!(out.processed, sent);
    assert_eq!(sent_count(&pool).await, i64::try_from(sent).unwrap());
    let mut released = 0;
    for id in ids {
        let r = row(&pool, id).await;
        let a = attempts(&pool, id).await;
        if r.status == "pending" {
            released += 1;
            assert!(a.is_empty(), "a released row keeps no attempt: {a:?}");
            assert_eq!(r.cycle_attempts, 0);
        } else {
            assert_eq!(r.status, "sent");
            assert_eq!(a.len(), 1);
        }
    }
    assert_eq!(released, 30 - sent);
}
