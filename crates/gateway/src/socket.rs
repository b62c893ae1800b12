//! One player's socket, after the upgrade: the welcome, the resume replay,
//! then live frames from its queue; pings, the pong deadline, and the
//! close codes of SYSTEM.md §11.
//!
//! The task owns the socket, so it can always give up on it: a close is
//! attempted within a grace period (a slow consumer that starts reading
//! again drains what was sent and then reads its 4008) and the connection
//! is dropped after it, so a client that never reads cannot pin memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use uuid::Uuid;

use crate::hub::{Closer, Frame, Registration, close};
use crate::metrics;
use crate::settings::SocketSettings;

/// How many recent ids a socket remembers to drop repeats (a re-push by the
/// backend's worker, or a live event already sent by the resume replay).
const RECENT_IDS: usize = 64;

/// Ids this socket has just written.
#[derive(Default)]
struct Recent(VecDeque<Uuid>);

impl Recent {
    /// False when `id` was among the recent ones.
    fn insert(&mut self, id: Uuid) -> bool {
        if self.0.contains(&id) {
            return false;
        }
        if self.0.len() == RECENT_IDS {
            self.0.pop_front();
        }
        self.0.push_back(id);
        true
    }
}

/// Why the loop ended.
enum End {
    /// Close with this code (then drop).
    Close(u16),
    /// The client closed, vanished or stopped answering pings: just drop.
    Drop,
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Sends unless a close is requested meanwhile (a slow consumer's send may
/// wait on a full socket buffer; the close must not wait behind it).
async fn send(sink: &mut Sink, closer: &Closer, msg: Message) -> Result<(), End> {
    tokio::select! {
        sent = sink.send(msg) => sent.map_err(|_| End::Drop),
        code = closer.wait() => Err(End::Close(code)),
    }
}

/// Writes the close frame within `grace`, then lets the connection go.
async fn close_within(mut sink: Sink, code: u16, reason: &'static str, grace: Duration) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let closing = async {
        sink.send(Message::Close(Some(frame))).await?;
        sink.close().await
    };
    if tokio::time::timeout(grace, closing).await.is_err() {
        tracing::debug!(
            code,
            "close frame not flushed within the grace period; dropping"
        );
    }
    metrics::socket_closed(code);
}

fn reason(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "gateway shutting down",
        close::SESSION_INVALID => "session no longer valid",
        close::SLOW_CONSUMER => "slow consumer",
        close::TOO_MANY_SOCKETS => "too many sockets for this account",
        _ => "",
    }
}

/// A socket refused after the upgrade (too many for the account).
pub async fn refuse(ws: WebSocket, code: u16, settings: SocketSettings) {
    let (sink, _stream) = ws.split();
    close_within(sink, code, reason(code), settings.pong_timeout).await;
}

/// Serves one registered socket until it closes, then unregisters it.
pub async fn serve(
    ws: WebSocket,
    mut reg: Registration,
    welcome: Utf8Bytes,
    replay: Vec<Frame>,
    settings: SocketSettings,
) {
    let (mut sink, mut stream) = ws.split();
    let closer = Arc::clone(&reg.closer);
    let end: Result<std::convert::Infallible, End> = async {
        let mut recent = Recent::default();
        send(&mut sink, &closer, Message::Text(welcome)).await?;
        for frame in replay {
            recent.insert(frame.id);
            send(&mut sink, &closer, Message::Text(frame.text)).await?;
            metrics::frame_sent();
        }
        let start = tokio::time::Instant::now() + settings.ping_interval;
        let mut ping = tokio::time::interval_at(start, settings.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                biased;
                code = closer.wait() => return Err(End::Close(code)),
                frame = reg.queue.recv() => {
                    let Some(frame) = frame else { return Err(End::Close(close::GOING_AWAY)) };
                    if recent.insert(frame.id) {
                        send(&mut sink, &closer, Message::Text(frame.text)).await?;
                        metrics::frame_sent();
                    } else {
                        metrics::frame_dropped("repeat");
                    }
                }
                incoming = stream.next() => match incoming {
                    // Pongs, pings (answered by the protocol layer) and
                    // anything else a client sends all prove it is there.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Err(End::Drop),
                    Some(Ok(_)) => last_heard = Instant::now(),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > settings.pong_timeout {
                        tracing::debug!(socket = reg.socket, "no pong within the timeout; dropping");
                        return Err(End::Drop);
                    }
                    send(&mut sink, &closer, Message::Ping(bytes::Bytes::new())).await?;
                }
            }
        }
    }
    .await;
    // Out of the hub first: nothing more is queued for a closing socket.
    drop(reg);
    if let Err(End::Close(code)) = end {
        close_within(sink, code, reason(code), settings.pong_timeout).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_drop_repeats_within_the_window() {
        let mut r = Recent::default();
        assert!(r.insert(Uuid::from_u128(1)));
        assert!(!r.insert(Uuid::from_u128(1)));
        for n in 2..=(RECENT_IDS as u128 + 1) {
            assert!(r.insert(Uuid::from_u128(n)));
        }
        // 1 has left the window.
        assert!(r.insert(Uuid::from_u128(1)));
    }
}
