//! The whole `accounts` table in memory. Written only after a commit.

use std::collections::HashMap;
use std::sync::RwLock;

use bytes::Bytes;
use uuid::Uuid;

use crate::model::{Account, AccountFilter, AccountStatus};

/// An account and its JSON, serialised once per write so `GET /user/me`
/// (the hottest authenticated route) copies bytes instead of formatting.
struct Cached {
    account: Account,
    json: Bytes,
}

impl Cached {
    fn new(account: Account) -> Self {
        let json = Bytes::from(serde_json::to_vec(&account).unwrap_or_default());
        Self { account, json }
    }
}

#[derive(Default)]
pub(crate) struct AccountCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<Uuid, Cached>,
    by_email: HashMap<String, Uuid>,
}

impl AccountCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        galaxy_core::sync::read(&self.inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        galaxy_core::sync::write(&self.inner)
    }

    pub fn replace_all(&self, accounts: Vec<Account>) {
        let mut inner = Inner::default();
        for a in accounts {
            inner.by_email.insert(a.email.clone(), a.id);
            inner.by_id.insert(a.id, Cached::new(a));
        }
        *self.write() = inner;
    }

    pub fn put(&self, account: Account) {
        let cached = Cached::new(account);
        let mut inner = self.write();
        inner
            .by_email
            .insert(cached.account.email.clone(), cached.account.id);
        inner.by_id.insert(cached.account.id, cached);
    }

    /// [`Self::put`] unless the account is cached already.
    pub fn put_if_absent(&self, account: Account) {
        if self.read().by_id.contains_key(&account.id) {
            return;
        }
        self.put(account);
    }

    pub fn get(&self, id: Uuid) -> Option<Account> {
        self.read().by_id.get(&id).map(|c| c.account.clone())
    }

    pub fn json(&self, id: Uuid) -> Option<(AccountStatus, Bytes)> {
        self.read()
            .by_id
            .get(&id)
            .map(|c| (c.account.status, c.json.clone()))
    }

    pub fn status(&self, id: Uuid) -> Option<AccountStatus> {
        self.read().by_id.get(&id).map(|c| c.account.status)
    }

    pub fn by_email(&self, email: &str) -> Option<Account> {
        let inner = self.read();
        inner
            .by_email
            .get(email)
            .and_then(|id| inner.by_id.get(id))
            .map(|c| c.account.clone())
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Matching accounts, newest first.
    pub fn filtered(&self, filter: &AccountFilter) -> Vec<Account> {
        let mut out: Vec<Account> = self
            .read()
            .by_id
            .values()
            .filter(|c| filter.matches(&c.account))
            .map(|c| c.account.clone())
            .collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out
    }
}
