//! Who is connected: every open player socket by account, and the fan-out
//! of one push event to all of an account's sockets.
//!
//! An event is serialised once into the text of its frame and shared by
//! every socket it goes to. Each socket has a bounded queue; a socket whose
//! queue is full is a slow consumer and is told to close (4008) — the
//! others never wait for it. Sessions are tracked by token hash so that one
//! revalidation covers every socket opened with the same token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::ws::Utf8Bytes;
use galaxy_core::env::Secret;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::metrics;

/// Close codes of SYSTEM.md §11.
pub mod close {
    /// The gateway is shutting down; reconnect (to another gateway).
    pub const GOING_AWAY: u16 = 1001;
    /// The socket's session is no longer valid; sign in again.
    pub const SESSION_INVALID: u16 = 4001;
    /// The socket fell behind; reconnect with `?since=`.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The account has too many sockets on this gateway.
    pub const TOO_MANY_SOCKETS: u16 = 4029;
}

/// One event frame, ready to write.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The route id (the inbox item id): the key for de-duplication.
    pub id: Uuid,
    pub text: Utf8Bytes,
}

/// A request to close, shared by the hub and the socket's task.
#[derive(Default)]
pub struct Closer {
    code: AtomicU16,
    notify: Notify,
}

impl Closer {
    /// Asks the socket to close with `code`; the first request wins.
    pub fn request(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_one();
        }
    }

    pub fn requested(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Resolves once a close was requested.
    pub async fn wait(&self) -> u16 {
        loop {
            let notified = self.notify.notified();
            if let Some(code) = self.requested() {
                return code;
            }
            notified.await;
        }
    }
}

/// The SHA-256 of a session token: sessions are tracked without keeping
/// one token copy per socket.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

struct Slot {
    socket: u64,
    token: TokenKey,
    queue: mpsc::Sender<Frame>,
    closer: Arc<Closer>,
}

/// A session some sockets were opened with.
pub struct Session {
    pub token: Secret,
    /// The client address that opened it (sent on revalidation).
    pub client_ip: IpAddr,
    sockets: usize,
}

/// What a new socket gets from [`Hub::register`]; dropping it removes the
/// socket from the hub (also when an upgrade fails half-way).
pub struct Registration {
    pub socket: u64,
    pub account: Uuid,
    pub queue: mpsc::Receiver<Frame>,
    pub closer: Arc<Closer>,
    token: TokenKey,
    hub: Arc<Hub>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.socket, self.account, self.token);
    }
}

const SHARDS: usize = 16;

pub struct Hub {
    shards: Vec<Mutex<HashMap<Uuid, Vec<Slot>>>>,
    sessions: Mutex<HashMap<TokenKey, Session>>,
    next_socket: AtomicU64,
    open: AtomicUsize,
    queue_len: usize,
    max_per_account: usize,
}

impl Hub {
    pub fn new(queue_len: usize, max_per_account: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            sessions: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            queue_len,
            max_per_account,
        }
    }

    fn shard(&self, account: Uuid) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Slot>>> {
        let i = (account.as_u128() % SHARDS as u128) as usize;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Open sockets on this gateway.
    pub fn open_sockets(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Adds a socket for `account`; `None` when the account already holds
    /// `GATEWAY_WS_MAX_PER_ACCOUNT` sockets here (the new one is refused,
    /// the existing ones are untouched).
    pub fn register(
        self: &Arc<Self>,
        account: Uuid,
        token: &str,
        client_ip: IpAddr,
    ) -> Option<Registration> {
        let key = TokenKey::of(token);
        let (tx, rx) = mpsc::channel(self.queue_len);
        let closer = Arc::new(Closer::default());
        let socket = self.next_socket.fetch_add(1, Ordering::Relaxed);
        {
            let mut shard = self.shard(account);
            let slots = shard.entry(account).or_default();
            if slots.len() >= self.max_per_account {
                return None;
            }
            slots.push(Slot {
                socket,
                token: key,
                queue: tx,
                closer: Arc::clone(&closer),
            });
        }
        self.sessions()
            .entry(key)
            .or_insert_with(|| Session {
                token: Secret::new(token),
                client_ip,
                sockets: 0,
            })
            .sockets += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        Some(Registration {
            socket,
            account,
            queue: rx,
            closer,
            token: key,
            hub: Arc::clone(self),
        })
    }

    fn unregister(&self, socket: u64, account: Uuid, token: TokenKey) {
        let removed = {
            let mut shard = self.shard(account);
            let mut removed = false;
            if let Some(slots) = shard.get_mut(&account) {
                let before = slots.len();
                slots.retain(|s| s.socket != socket);
                removed = slots.len() < before;
                if slots.is_empty() {
                    shard.remove(&account);
                }
            }
            removed
        };
        if !removed {
            return;
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        let mut sessions = self.sessions();
        if let Some(session) = sessions.get_mut(&token) {
            session.sockets = session.sockets.saturating_sub(1);
            if session.sockets == 0 {
                sessions.remove(&token);
            }
        }
    }

    /// Queues `frame` on every socket of `account`.
    pub fn dispatch(&self, account: Uuid, frame: &Frame) {
        let shard = self.shard(account);
        let Some(slots) = shard.get(&account) else {
            metrics::frame_dropped("no_socket");
            return;
        };
        for slot in slots {
            match slot.queue.try_send(frame.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::frame_dropped("slow_consumer");
                    slot.closer.request(close::SLOW_CONSUMER);
                }
                // The socket is on its way out; unregister follows.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Every distinct session with open sockets (for revalidation).
    pub fn sessions_snapshot(&self) -> Vec<(TokenKey, Secret, IpAddr)> {
        self.sessions()
            .iter()
            .map(|(k, s)| (*k, s.token.clone(), s.client_ip))
            .collect()
    }

    /// Closes every socket opened with `token` with `code`.
    pub fn close_session(&self, token: TokenKey, code: u16) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in shard.values().flatten().filter(|s| s.token == token) {
                slot.closer.request(code);
            }
        }
    }

    /// Closes every socket (shutdown).
    pub fn close_all(&self, code: u16) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in shard.values().flatten() {
                slot.closer.request(code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u128) -> Frame {
        Frame {
            id: Uuid::from_u128(n),
            text: Utf8Bytes::from_static("{}"),
        }
    }

    #[test]
    fn fan_out_cap_and_slow_consumer() {
        let hub = Arc::new(Hub::new(2, 2));
        let account = Uuid::from_u128(7);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut a = hub.register(account, "t1", ip).unwrap();
        let mut b = hub.register(account, "t1", ip).unwrap();
        assert!(
            hub.register(account, "t2", ip).is_none(),
            "third socket refused"
        );
        assert_eq!(hub.open_sockets(), 2);
        assert_eq!(hub.sessions_snapshot().len(), 1);

        hub.dispatch(account, &frame(1));
        assert_eq!(a.queue.try_recv().unwrap().id, Uuid::from_u128(1));
        assert_eq!(b.queue.try_recv().unwrap().id, Uuid::from_u128(1));

        // b stops reading: its queue (2) overflows, a keeps receiving.
        for n in 2..=4 {
            hub.dispatch(account, &frame(n));
            assert_eq!(a.queue.try_recv().unwrap().id, Uuid::from_u128(n));
        }
        assert_eq!(b.closer.requested(), Some(close::SLOW_CONSUMER));
        assert_eq!(a.closer.requested(), None);

        hub.close_session(TokenKey::of("t1"), close::SESSION_INVALID);
        assert_eq!(a.closer.requested(), Some(close::SESSION_INVALID));
        drop(a);
        drop(b);
        assert_eq!(hub.open_sockets(), 0);
        assert!(hub.sessions_snapshot().is_empty());
    }
}
