//! One module per console area; each handler is one call (or a few reads)
//! of the admin services, rendered with maud.

pub mod admins;
pub mod dashboard;
pub mod login;
pub mod mail;
pub mod notifications;
pub mod runtime;
pub mod users;

use galaxy_core::{Page, PageQuery};
use serde::Deserialize;

use crate::Console;
use crate::audit::Record;
use crate::error::{ConsoleError, OrPage};
use crate::session::ConsoleAdmin;

/// A form with only its CSRF value (one-button actions). A missing value is
/// empty, so it is refused as a mismatch (403), not as a malformed body.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// The query every list page accepts; each page reads the filters it has.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub status: Option<String>,
    pub kind: Option<String>,
    pub q: Option<String>,
}

impl ListQuery {
    /// The same bounds as the API's `?page=&page_size=`.
    pub fn page(&self) -> Result<Page, ConsoleError> {
        PageQuery {
            page: self.page,
            page_size: self.page_size,
        }
        .validate()
        .html()
    }

    /// A filter value, `None` when absent or empty.
    pub fn filter(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
}

/// Records a console action with its outcome and hands the result back.
pub async fn audited<T>(
    console: &Console,
    admin: &ConsoleAdmin,
    action: &str,
    target: Option<&str>,
    result: Result<T, ConsoleError>,
) -> Result<T, ConsoleError> {
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code().to_owned(),
    };
    console
        .audit
        .record(Record {
            admin_id: admin.principal.admin_id,
            admin_username: &admin.principal.username,
            channel: "console",
            action,
            target,
            outcome: &outcome,
        })
        .await;
    result
}
