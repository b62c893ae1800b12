//! The mail outbox. Modules enqueue mail with [`enqueue`] inside their own
//! transaction, so a business write and its mail commit or fail together;
//! the delivery [`Worker`] sends what is due over SMTP (a batch shared out
//! over `connections` parallel sessions), records every try in `mail_attempts`, retries transient failures
//! with backoff and dead-letters after the cycle's maximum or on a permanent
//! 5xx. Operators inspect and resend through [`configure`]'s admin routes
//! ([`MailService`]). Crash safety: see the `store` module (claim with a lease).
//! The owner of a delivery follows its state through [`DeliveryOutcomes`],
//! called inside the transaction that writes it.

mod http;
mod outbox;
mod outcomes;
mod recorder;
mod retention;
pub mod schema;
mod service;
mod session;
mod settings;
mod smtp;
mod store;
pub mod templates;
mod worker;

pub use http::{configure, openapi};
pub use outbox::{NewMail, enqueue, enqueue_many, enqueue_many_as};
pub use outcomes::{DeliveryChange, DeliveryOutcomes, DeliveryState, NoOutcomes};
pub use service::{Attempt, Delivery, MailError, MailService, PgMailService};
pub use settings::{
    MAX_SMTP_CONNECTIONS, Settings, SmtpSettings, TlsMode, VARIABLES, WorkerSettings,
};
pub use smtp::{Mailer, Outgoing, SendFailure, SmtpSetupError};
pub use store::{StatusCounts, status_counts};
pub use templates::TemplateError;
pub use worker::{Worker, WorkerError, WorkerStats};
