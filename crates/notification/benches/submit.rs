//! Submit throughput: intents/second for a 10-recipient player intent
//! (10 push + 10 email routes + 10 mail deliveries, one gateway subscribed),
//! beside the raw rate of inserting the same rows in one transaction.
//!
//! `cargo bench -p galaxy-notification --bench submit` (uses the test
//! PostgreSQL harness: `GALAXY_TEST_DATABASE_URL` or a throwaway server).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, RunQueryDsl};
use galaxy_notification::{
    Intent, NotificationService, NotificationSettings, PgNotificationService, PushHub,
    RecipientDirectory,
};
use galaxy_testdb::TestDb;
use serde_json::json;
use uuid::Uuid;

const RECIPIENTS: usize = 10;

struct Emails(Vec<(Uuid, String)>);

impl RecipientDirectory for Emails {
    fn email(&self, account_id: Uuid) -> Option<String> {
        self.0
            .iter()
            .find(|(id, _)| *id == account_id)
            .map(|(_, e)| e.clone())
    }
}

fn intent(n: usize, recipients: &[Uuid]) -> Intent {
    Intent {
        kind: "runtime.turn_generated".to_owned(),
        idempotency_key: format!("bench-{n}"),
        payload: json!({"game_id": Uuid::now_v7().to_string(), "game_name": "Bench", "turn": n}),
        recipients: recipients.to_vec(),
    }
}

/// The same rows submit writes, with one multi-row statement per table.
async fn raw_insert(
    conn: &mut diesel_async::AsyncPgConnection,
    n: usize,
    recipients: &[Uuid],
    emails: &[String],
) -> diesel::QueryResult<()> {
    conn.transaction(async |c| {
        let intent_id = Uuid::now_v7();
        galaxy_db::sql(
            "INSERT INTO notification_intents (id, kind, idempotency_key, payload) \
             VALUES ($1, 'runtime.turn_generated', $2, $3::jsonb)",
        )
        .bind::<SqlUuid, _>(intent_id)
        .bind::<Text, _>(format!("raw-{n}"))
        .bind::<Text, _>(
            json!({"game_id": Uuid::now_v7().to_string(), "game_name": "Bench", "turn": n})
                .to_string(),
        )
        .execute(c)
        .await?;
        let push: Vec<Uuid> = recipients.iter().map(|_| Uuid::now_v7()).collect();
        let email: Vec<Uuid> = recipients.iter().map(|_| Uuid::now_v7()).collect();
        let ids: Vec<Uuid> = push.iter().chain(&email).copied().collect();
        let channels: Vec<&str> = push.iter().map(|_| "push").chain(email.iter().map(|_| "email")).collect();
        let accounts: Vec<Uuid> = recipients.iter().chain(recipients).copied().collect();
        let addresses: Vec<Option<&str>> = push
            .iter()
            .map(|_| None)
            .chain(emails.iter().map(|e| Some(e.as_str())))
            .collect();
        diesel::sql_query(
            "INSERT INTO notification_routes (id, intent_id, channel, account_id, address) \
             SELECT r.id, $2, r.channel, r.account_id, r.address \
             FROM unnest($1::uuid[], $3::text[], $4::uuid[], $5::text[]) AS r(id, channel, account_id, address)",
        )
        .bind::<Array<SqlUuid>, _>(&ids)
        .bind::<SqlUuid, _>(intent_id)
        .bind::<Array<Text>, _>(&channels)
        .bind::<Array<SqlUuid>, _>(&accounts)
        .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(&addresses)
        .execute(c)
        .await?;
        let mail_ids: Vec<Uuid> = email.iter().map(|_| Uuid::now_v7()).collect();
        diesel::sql_query(
            "INSERT INTO mail_deliveries (id, kind, to_address, subject, body_text, notification_route_id) \
             SELECT m.id, 'runtime.turn_generated', m.to_address, 'Galaxy: turn ready', 'Turn generated.', m.route_id \
             FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS m(id, to_address, route_id)",
        )
        .bind::<Array<SqlUuid>, _>(&mail_ids)
        .bind::<Array<Text>, _>(emails)
        .bind::<Array<SqlUuid>, _>(&email)
        .execute(c)
        .await?;
        Ok(())
    })
    .await
}

/// What one measurement runs against: a database with ten recipients, a
/// service with one gateway subscribed and draining (as in production).
struct Setup {
    pool: galaxy_db::Pool,
    service: Arc<PgNotificationService>,
    recipients: Arc<Vec<Uuid>>,
    emails: Arc<Vec<String>>,
}

async fn setup(db: &TestDb) -> Setup {
    let pool = db.pool();
    let mut conn = pool.get().await.unwrap();
    let mut accounts = Vec::new();
    for i in 0..RECIPIENTS {
        let id = Uuid::now_v7();
        let email = format!("player{i}-{}@bench.test", id.simple());
        diesel::sql_query("INSERT INTO accounts (id, email, display_name) VALUES ($1, $2, 'p')")
            .bind::<SqlUuid, _>(id)
            .bind::<Text, _>(&email)
            .execute(&mut conn)
            .await
            .unwrap();
        accounts.push((id, email));
    }
    drop(conn);
    let recipients = Arc::new(accounts.iter().map(|a| a.0).collect());
    let emails = Arc::new(accounts.iter().map(|a| a.1.clone()).collect());
    let hub = PushHub::new();
    let mut gateway = hub.subscribe("bench");
    tokio::spawn(async move { while gateway.recv().await.is_some() {} });
    let service = Arc::new(PgNotificationService::new(
        pool.clone(),
        hub,
        Arc::new(Emails(accounts)),
        NotificationSettings::new(Duration::from_secs(5), 8, None),
    ));
    Setup {
        pool,
        service,
        recipients,
        emails,
    }
}

/// Intents per second through `submit`, `tasks` submitters at once.
async fn submit_rate(s: &Setup, tasks: usize, per_task: usize, first_key: usize) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (service, recipients) = (s.service.clone(), s.recipients.clone());
            tokio::spawn(async move {
                for i in 0..per_task {
                    let key = first_key + t * per_task + i;
                    let done = service.submit(intent(key, &recipients)).await.unwrap();
                    assert!(done.created);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * per_task) as f64 / started.elapsed().as_secs_f64()
}

/// Intents per second of the raw inserts, `tasks` connections at once.
async fn raw_rate(s: &Setup, tasks: usize, per_task: usize, first_key: usize) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (pool, recipients, emails) =
                (s.pool.clone(), s.recipients.clone(), s.emails.clone());
            tokio::spawn(async move {
                let mut conn = pool.get().await.unwrap();
                for i in 0..per_task {
                    let key = first_key + t * per_task + i;
                    raw_insert(&mut conn, key, &recipients, &emails)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (tasks * per_task) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const ROUNDS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (tasks, per_task) in [(1, 200), (8, 100)] {
            let db = TestDb::new();
            let s = setup(&db).await;
            // Warm the pools and the prepared-statement caches.
            submit_rate(&s, tasks, 10, 0).await;
            raw_rate(&s, tasks, 10, 0).await;
            // Alternate the two so drift on a shared machine hits both alike.
            let (mut submit, mut raw) = (Vec::new(), Vec::new());
            for round in 1..=ROUNDS {
                let first_key = round * 1_000_000;
                submit.push(submit_rate(&s, tasks, per_task, first_key).await);
                raw.push(raw_rate(&s, tasks, per_task, first_key).await);
            }
            let (submit, raw) = (median(submit), median(raw));
            println!(
                "{tasks} submitter(s), {RECIPIENTS}-recipient intents (20 routes + 10 mails), \
                 median of {ROUNDS} rounds of {} intents: submit {submit:>5.0} intents/s | \
                 raw insert of the same rows {raw:>5.0} intents/s ({:.0}% of raw)",
                tasks * per_task,
                100.0 * submit / raw
            );
        }
    });
}
