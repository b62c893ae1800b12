//! Admins and live admin sessions in memory. Written only after a commit.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{AdminRow, SessionRow};

#[derive(Debug, Clone)]
pub(crate) struct CachedSession {
    pub id: Uuid,
    pub admin_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub(crate) struct AdminCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    admins: HashMap<Uuid, AdminRow>,
    by_username: HashMap<String, Uuid>,
    sessions: HashMap<[u8; 32], CachedSession>,
    digest_of: HashMap<Uuid, [u8; 32]>,
}

impl Inner {
    fn put_admin(&mut self, a: AdminRow) {
        self.by_username.insert(a.username.clone(), a.id);
        self.admins.insert(a.id, a);
    }

    fn put_session(&mut self, digest: [u8; 32], s: CachedSession) {
        self.digest_of.insert(s.id, digest);
        self.sessions.insert(digest, s);
    }

    fn remove_session(&mut self, id: Uuid) {
        if let Some(d) = self.digest_of.remove(&id) {
            self.sessions.remove(&d);
        }
    }
}

pub(crate) fn digest_from_hex(h: &str) -> Option<[u8; 32]> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(h, &mut d).ok().map(|()| d)
}

impl AdminCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        galaxy_core::sync::read(&self.inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        galaxy_core::sync::write(&self.inner)
    }

    pub fn replace_all(&self, admins: Vec<AdminRow>, sessions: Vec<SessionRow>) {
        let mut inner = Inner::default();
        for a in admins {
            inner.put_admin(a);
        }
        for s in sessions {
            if let Some(d) = digest_from_hex(&s.token_hash) {
                inner.put_session(
                    d,
                    CachedSession {
                        id: s.id,
                        admin_id: s.admin_id,
                        expires_at: s.expires_at,
                    },
                );
            }
        }
        *self.write() = inner;
    }

    pub fn put_admin(&self, a: AdminRow) {
        self.write().put_admin(a);
    }

    pub fn admin(&self, id: Uuid) -> Option<AdminRow> {
        self.read().admins.get(&id).cloned()
    }

    pub fn by_username(&self, username: &str) -> Option<AdminRow> {
        let inner = self.read();
        inner
            .by_username
            .get(username)
            .and_then(|id| inner.admins.get(id))
            .cloned()
    }

    pub fn admins(&self) -> Vec<AdminRow> {
        let mut all: Vec<AdminRow> = self.read().admins.values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        all
    }

    pub fn put_session(&self, digest: [u8; 32], s: CachedSession) {
        self.write().put_session(digest, s);
    }

    pub fn remove_sessions(&self, ids: &[Uuid]) {
        let mut inner = self.write();
        for id in ids {
            inner.remove_session(*id);
        }
    }

    /// (session, admin username) for a live session of an enabled admin.
    pub fn resolve(
        &self,
        digest: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Option<(CachedSession, String)> {
        let inner = self.read();
        let s = inner.sessions.get(digest)?;
        if s.expires_at <= now {
            return None;
        }
        let admin = inner.admins.get(&s.admin_id)?;
        if admin.disabled_at.is_some() {
            return None;
        }
        Some((s.clone(), admin.username.clone()))
    }

    pub fn counts(&self) -> (usize, usize) {
        let inner = self.read();
        (inner.admins.len(), inner.sessions.len())
    }
}
