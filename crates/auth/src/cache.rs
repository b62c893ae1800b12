//! The whole table of live sessions in memory, keyed by the token's SHA-256.
//!
//! Compact, because it holds every live session: the entries sit in slots
//! of one vector and the indexes (by digest, by id, by account) map to a
//! slot; an account's sessions are chained through their slots, so an
//! account needs no set of its own.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::session::Entry;

/// No slot (the end of an account's chain).
const NONE: u32 = u32::MAX;

struct Slot {
    entry: Arc<Entry>,
    digest: [u8; 32],
    /// The account's previous and next sessions.
    prev: u32,
    next: u32,
}

/// The cache's contents; a warm-up fills a new one and swaps it in.
#[derive(Default)]
pub(crate) struct Sessions {
    slots: Vec<Option<Slot>>,
    /// Emptied slots, reused before the vector grows.
    free: Vec<u32>,
    by_digest: HashMap<[u8; 32], u32>,
    by_id: HashMap<Uuid, u32>,
    /// The first slot of each account's chain.
    by_account: HashMap<Uuid, u32>,
}

impl Sessions {
    /// Room for `n` sessions, so a warm-up never grows (and copies) its
    /// tables midway.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            slots: Vec::with_capacity(n),
            free: Vec::new(),
            by_digest: HashMap::with_capacity(n),
            by_id: HashMap::with_capacity(n),
            by_account: HashMap::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    fn slot(&self, at: u32) -> Option<&Slot> {
        self.slots.get(at as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, at: u32) -> Option<&mut Slot> {
        self.slots.get_mut(at as usize).and_then(Option::as_mut)
    }

    /// Places a session (replacing one with the same id or digest).
    pub fn insert(&mut self, digest: [u8; 32], entry: Arc<Entry>) {
        self.remove(entry.id);
        if let Some(other) = self.by_digest.get(&digest).and_then(|&at| self.slot(at)) {
            let other = other.entry.id;
            self.remove(other);
        }
        let head = self.by_account.get(&entry.account_id).copied();
        let slot = Slot {
            entry,
            digest,
            prev: NONE,
            next: head.unwrap_or(NONE),
        };
        let at = match self.free.pop() {
            Some(at) => at,
            // Slots are u32 (half the index size of usize); four billion
            // sessions would not fit in memory anyway.
            None => match u32::try_from(self.slots.len()) {
                Ok(at) if at != NONE => {
                    self.slots.push(None);
                    at
                }
                _ => return,
            },
        };
        if let Some(h) = head.and_then(|h| self.slot_mut(h)) {
            h.prev = at;
        }
        self.by_digest.insert(slot.digest, at);
        self.by_id.insert(slot.entry.id, at);
        self.by_account.insert(slot.entry.account_id, at);
        self.slots[at as usize] = Some(slot);
    }

    pub fn remove(&mut self, id: Uuid) -> Option<Arc<Entry>> {
        let at = self.by_id.remove(&id)?;
        let slot = self.slots.get_mut(at as usize)?.take()?;
        self.free.push(at);
        self.by_digest.remove(&slot.digest);
        match self.slot_mut(slot.prev) {
            Some(p) => p.next = slot.next,
            None if slot.next == NONE => {
                self.by_account.remove(&slot.entry.account_id);
            }
            None => {
                self.by_account.insert(slot.entry.account_id, slot.next);
            }
        }
        if let Some(n) = self.slot_mut(slot.next) {
            n.prev = slot.prev;
        }
        Some(slot.entry)
    }

    fn of_account(&self, account_id: Uuid) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        let mut at = self.by_account.get(&account_id).copied().unwrap_or(NONE);
        while let Some(slot) = self.slot(at) {
            out.push(Arc::clone(&slot.entry));
            at = slot.next;
        }
        out
    }
}

#[derive(Default)]
pub(crate) struct SessionCache {
    inner: RwLock<Sessions>,
}

impl SessionCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Sessions> {
        galaxy_core::sync::read(&self.inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Sessions> {
        galaxy_core::sync::write(&self.inner)
    }

    /// Replaces everything with a warm-up's result.
    pub fn install(&self, sessions: Sessions) {
        let old = std::mem::replace(&mut *self.write(), sessions);
        // Freed outside the lock: a million entries take a while.
        drop(old);
    }

    /// Applies a reload of `ids`: those in `rows` are (re)placed, the others
    /// (revoked, expired, deleted) removed.
    pub fn apply(&self, ids: &[Uuid], rows: Vec<([u8; 32], Entry)>) {
        let mut inner = self.write();
        for id in ids {
            inner.remove(*id);
        }
        for (digest, e) in rows {
            inner.insert(digest, Arc::new(e));
        }
    }

    pub fn insert(&self, digest: [u8; 32], e: Entry) {
        self.write().insert(digest, Arc::new(e));
    }

    pub fn by_digest(&self, digest: &[u8; 32]) -> Option<Arc<Entry>> {
        let inner = self.read();
        let at = *inner.by_digest.get(digest)?;
        inner.slot(at).map(|s| Arc::clone(&s.entry))
    }

    pub fn by_id(&self, id: Uuid) -> Option<Arc<Entry>> {
        let inner = self.read();
        let at = *inner.by_id.get(&id)?;
        inner.slot(at).map(|s| Arc::clone(&s.entry))
    }

    pub fn of_account(&self, account_id: Uuid) -> Vec<Arc<Entry>> {
        let mut out = self.read().of_account(account_id);
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        out
    }

    pub fn remove(&self, ids: &[Uuid]) {
        let mut inner = self.write();
        for id in ids {
            inner.remove(*id);
        }
    }

    /// Drops sessions past their expiry (they no longer resolve anyway).
    pub fn evict_expired(&self, now: DateTime<Utc>) -> usize {
        let expired: Vec<Uuid> = self
            .read()
            .slots
            .iter()
            .flatten()
            .filter(|s| s.entry.expires_at <= now)
            .map(|s| s.entry.id)
            .collect();
        self.remove(&expired);
        expired.len()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;

    fn entry(id: u128, account: u128, created_s: i64) -> Entry {
        let at = DateTime::from_timestamp(created_s, 0).unwrap();
        Entry {
            id: Uuid::from_u128(id),
            account_id: Uuid::from_u128(account),
            created_at: at,
            expires_at: at + chrono::Duration::hours(1),
            source_ip: None,
            user_agent: None,
            last_seen_ms: AtomicI64::new(0),
        }
    }

    fn ids(cache: &SessionCache, account: u128) -> Vec<u128> {
        let sessions = cache.of_account(Uuid::from_u128(account));
        sessions.iter().map(|e| e.id.as_u128()).collect()
    }

    #[test]
    fn an_accounts_chain_survives_removals_from_any_place() {
        let cache = SessionCache::default();
        for (id, account) in [(1, 10), (2, 10), (3, 20), (4, 10), (5, 10)] {
            let created = i64::try_from(id).unwrap();
            cache.insert([u8::try_from(id).unwrap(); 32], entry(id, account, created));
        }
        assert_eq!(ids(&cache, 10), [5, 4, 2, 1]);
        // The chain's head, middle and tail.
        cache.remove(&[Uuid::from_u128(5)]);
        assert_eq!(ids(&cache, 10), [4, 2, 1]);
        cache.remove(&[Uuid::from_u128(2)]);
        assert_eq!(ids(&cache, 10), [4, 1]);
        cache.remove(&[Uuid::from_u128(1)]);
        assert_eq!(ids(&cache, 10), [4]);
        // A freed slot is reused by another account without crossing chains.
        cache.insert([6; 32], entry(6, 20, 6));
        assert_eq!(ids(&cache, 20), [6, 3]);
        assert_eq!(ids(&cache, 10), [4]);
        cache.remove(&[Uuid::from_u128(4)]);
        assert!(ids(&cache, 10).is_empty());
        assert_eq!(cache.len(), 2);
        assert!(cache.by_digest(&[4; 32]).is_none());
        assert_eq!(cache.by_digest(&[6; 32]).map(|e| e.id.as_u128()), Some(6));
    }

    #[test]
    fn a_session_placed_again_replaces_itself() {
        let cache = SessionCache::default();
        cache.insert([1; 32], entry(1, 10, 1));
        cache.insert([1; 32], entry(1, 10, 2));
        assert_eq!(ids(&cache, 10), [1]);
        assert_eq!(cache.len(), 1);
        let created = cache
            .by_id(Uuid::from_u128(1))
            .map(|e| e.created_at.timestamp());
        assert_eq!(created, Some(2));
    }
}
