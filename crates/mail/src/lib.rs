//! The mail outbox. Modules enqueue mail with [`enqueue`] inside their own
//! transaction, so a business write and its mail commit or fail together;
//! the delivery worker sends what is due over SMTP.

mod outbox;
pub mod schema;
pub mod templates;

pub use outbox::{NewMail, enqueue};
pub use templates::TemplateError;
