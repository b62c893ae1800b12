//! The gateway's own instruments (SYSTEM.md §11): push frames sent and
//! dropped, slow-consumer closes, rate-limit refusals and Redis fallbacks.
//! Request count and latency by route and status come from the shared
//! `http.server.*` instruments; open sockets are a gauge registered at start.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

struct Instruments {
    frames_sent: Counter<u64>,
    frames_dropped: Counter<u64>,
    socket_closes: Counter<u64>,
    rate_limited: Counter<u64>,
    limiter_fallbacks: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        let m = galaxy_telemetry::meter();
        Instruments {
            frames_sent: m
                .u64_counter("gateway.push.frames_sent")
                .with_description("Event frames written to player sockets")
                .build(),
            frames_dropped: m
                .u64_counter("gateway.push.frames_dropped")
                .with_description(
                    "Event frames not written, by reason (repeat, slow_consumer, no_socket)",
                )
                .build(),
            socket_closes: m
                .u64_counter("gateway.push.socket_closes")
                .with_description("Player sockets closed by the gateway, by close code")
                .build(),
            rate_limited: m
                .u64_counter("gateway.rate_limited")
                .with_description("Requests refused with 429, by scope (auth, push)")
                .build(),
            limiter_fallbacks: m
                .u64_counter("gateway.rate_limit.fallbacks")
                .with_description(
                    "Rate-limit decisions made in process because Redis was unreachable",
                )
                .build(),
        }
    })
}

pub fn frame_sent() {
    instruments().frames_sent.add(1, &[]);
}

pub fn frame_dropped(reason: &'static str) {
    instruments()
        .frames_dropped
        .add(1, &[KeyValue::new("reason", reason)]);
}

pub fn socket_closed(code: u16) {
    instruments()
        .socket_closes
        .add(1, &[KeyValue::new("code", i64::from(code))]);
}

pub fn rate_limited(scope: &'static str) {
    instruments()
        .rate_limited
        .add(1, &[KeyValue::new("scope", scope)]);
}

pub fn limiter_fallback() {
    instruments().limiter_fallbacks.add(1, &[]);
}
