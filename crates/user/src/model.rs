use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An account's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Blocked,
    Deleted,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "blocked" => Some(Self::Blocked),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A player account as every module and client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: Uuid,
    /// Lower-cased. Only the owner and admins are ever shown it.
    pub email: String,
    pub display_name: String,
    /// ISO 3166-1 alpha-2 from GeoIP of the address the account signed up
    /// from; set once, never changed.
    pub declared_country: Option<String>,
    pub status: AccountStatus,
    pub created_at: DateTime<Utc>,
}

/// Admin listing filter: `q` matches email or display name
/// (case-insensitive substring), `status` an exact state.
#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub q: Option<String>,
    pub status: Option<AccountStatus>,
}

impl AccountFilter {
    /// A test of an account's parts against this filter, the query
    /// lowercased once for a whole listing (the cache tests its compact
    /// entries without building an `Account` for each).
    pub(crate) fn matcher(&self) -> impl Fn(AccountStatus, &str, &str) -> bool + '_ {
        let q = self.q.as_ref().map(|q| q.to_lowercase());
        move |status: AccountStatus, email: &str, display_name: &str| {
            if self.status.is_some_and(|s| s != status) {
                return false;
            }
            q.as_deref()
                .is_none_or(|q| email.contains(q) || display_name.to_lowercase().contains(q))
        }
    }
}
