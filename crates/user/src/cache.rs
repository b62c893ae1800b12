//! The whole `accounts` table in memory. Written only after a commit.
//!
//! Compact, because it holds every account: the entries sit in one vector
//! (accounts are never removed: `deleted` is a status) and both indexes map
//! to a position in it; the email is one shared string for the entry and
//! its index; countries are shared by every account that declared the same.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{Account, AccountFilter, AccountStatus};

/// One cached account.
pub(crate) struct Entry {
    id: Uuid,
    email: Arc<str>,
    display_name: Box<str>,
    declared_country: Option<Arc<str>>,
    status: AccountStatus,
    created_at: DateTime<Utc>,
    /// The account as `GET /user/me` returns it, serialised on its first
    /// read after each write (most accounts are never asked for it between
    /// two starts, so the warm-up does not build it).
    json: OnceLock<Bytes>,
}

impl Entry {
    /// `countries` shares one string per declared country (the warm-up's).
    pub fn new(account: Account, countries: Option<&mut HashSet<Arc<str>>>) -> Self {
        let declared_country = account.declared_country.map(|c| match countries {
            Some(set) => match set.get(c.as_str()) {
                Some(shared) => Arc::clone(shared),
                None => {
                    let shared: Arc<str> = Arc::from(c);
                    set.insert(Arc::clone(&shared));
                    shared
                }
            },
            None => Arc::from(c),
        });
        Self {
            id: account.id,
            email: Arc::from(account.email),
            display_name: account.display_name.into_boxed_str(),
            declared_country,
            status: account.status,
            created_at: account.created_at,
            json: OnceLock::new(),
        }
    }

    fn account(&self) -> Account {
        Account {
            id: self.id,
            email: self.email.to_string(),
            display_name: self.display_name.to_string(),
            declared_country: self.declared_country.as_deref().map(str::to_owned),
            status: self.status,
            created_at: self.created_at,
        }
    }

    fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| Bytes::from(serde_json::to_vec(&self.account()).unwrap_or_default()))
            .clone()
    }
}

#[derive(Default)]
pub(crate) struct AccountCache {
    inner: RwLock<Accounts>,
}

/// The cache's contents; a warm-up fills a new one and swaps it in.
#[derive(Default)]
pub(crate) struct Accounts {
    entries: Vec<Entry>,
    by_id: HashMap<Uuid, u32>,
    by_email: HashMap<Arc<str>, u32>,
}

impl Accounts {
    /// Room for `n` accounts, so a warm-up never grows (and copies) its
    /// tables midway.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            by_id: HashMap::with_capacity(n),
            by_email: HashMap::with_capacity(n),
        }
    }

    pub fn put(&mut self, entry: Entry) {
        if let Some(&at) = self.by_id.get(&entry.id) {
            let slot = &mut self.entries[at as usize];
            if slot.email != entry.email {
                self.by_email.remove(&slot.email);
                self.by_email.insert(Arc::clone(&entry.email), at);
            }
            *slot = entry;
            return;
        }
        // Positions are u32 (half the index size of usize); four billion
        // accounts would not fit in memory anyway.
        let Ok(at) = u32::try_from(self.entries.len()) else {
            return;
        };
        self.by_id.insert(entry.id, at);
        self.by_email.insert(Arc::clone(&entry.email), at);
        self.entries.push(entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn get(&self, id: &Uuid) -> Option<&Entry> {
        self.by_id
            .get(id)
            .and_then(|&at| self.entries.get(at as usize))
    }
}

impl AccountCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Accounts> {
        galaxy_core::sync::read(&self.inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Accounts> {
        galaxy_core::sync::write(&self.inner)
    }

    /// Replaces everything with a warm-up's result.
    pub fn install(&self, accounts: Accounts) {
        let old = std::mem::replace(&mut *self.write(), accounts);
        // Freed outside the lock: a million entries take a while.
        drop(old);
    }

    pub fn put(&self, account: Account) {
        let entry = Entry::new(account, None);
        self.write().put(entry);
    }

    /// [`Self::put`] unless the account is cached already.
    pub fn put_if_absent(&self, account: Account) {
        if self.read().by_id.contains_key(&account.id) {
            return;
        }
        self.put(account);
    }

    pub fn get(&self, id: Uuid) -> Option<Account> {
        self.read().get(&id).map(Entry::account)
    }

    pub fn json(&self, id: Uuid) -> Option<(AccountStatus, Bytes)> {
        self.read().get(&id).map(|e| (e.status, e.json()))
    }

    pub fn status(&self, id: Uuid) -> Option<AccountStatus> {
        self.read().get(&id).map(|e| e.status)
    }

    pub fn by_email(&self, email: &str) -> Option<Account> {
        let inner = self.read();
        inner
            .by_email
            .get(email)
            .and_then(|&at| inner.entries.get(at as usize))
            .map(Entry::account)
    }

    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Matching accounts, newest first.
    pub fn filtered(&self, filter: &AccountFilter) -> Vec<Account> {
        let matches = filter.matcher();
        let mut out: Vec<Account> = self
            .read()
            .entries
            .iter()
            .filter(|e| matches(e.status, &e.email, &e.display_name))
            .map(Entry::account)
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u128, name: &str) -> Account {
        Account {
            id: Uuid::from_u128(n),
            email: format!("p{n}@example.test"),
            display_name: name.to_owned(),
            declared_country: Some("GB".to_owned()),
            status: AccountStatus::Active,
            created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn the_json_is_the_accounts_and_follows_each_write() {
        let cache = AccountCache::default();
        let mut countries = HashSet::new();
        let mut filled = Accounts::with_capacity(2);
        filled.put(Entry::new(account(1, "One"), Some(&mut countries)));
        filled.put(Entry::new(account(2, "Two"), Some(&mut countries)));
        cache.install(filled);
        assert_eq!(countries.len(), 1, "one shared string per country");
        let json = |id| cache.json(Uuid::from_u128(id)).unwrap().1;
        assert_eq!(json(1), serde_json::to_vec(&account(1, "One")).unwrap());
        cache.put(account(1, "Renamed"));
        assert_eq!(json(1), serde_json::to_vec(&account(1, "Renamed")).unwrap());
        assert_eq!(cache.get(Uuid::from_u128(1)), Some(account(1, "Renamed")));
        assert_eq!(cache.by_email("p2@example.test"), Some(account(2, "Two")));
        assert_eq!(cache.len(), 2);
    }
}
