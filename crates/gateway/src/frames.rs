//! The JSON text frames of the push protocol (SYSTEM.md §11,
//! docs/gateway.md): a `welcome` first, then one `event` per notification.

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::hub::Frame;

#[derive(Serialize)]
struct Welcome<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    account_id: Uuid,
    gateway_id: &'a str,
}

pub fn welcome(account_id: Uuid, gateway_id: &str) -> Utf8Bytes {
    let text = serde_json::to_string(&Welcome {
        type_: "welcome",
        account_id,
        gateway_id,
    })
    .unwrap_or_default();
    Utf8Bytes::from(text)
}

/// The part of an event frame every recipient shares: an intent's kind,
/// payload and time. Rendered once per intent, so a fan-out to 10,000
/// players writes 10,000 short prefixes instead of 10,000 payloads.
#[derive(Serialize)]
struct Shared<'a> {
    kind: &'a str,
    payload: &'a serde_json::Value,
    created_at: String,
}

/// The shared part of an event frame, rendered: `"kind":…,"created_at":…}`.
#[derive(Clone, Debug)]
pub struct EventTail(String);

impl EventTail {
    /// `created_at` is normalised to RFC 3339 UTC with milliseconds whether
    /// it came from the push stream or the inbox.
    pub fn new(kind: &str, payload: &serde_json::Value, created_at: &str) -> Self {
        let created_at = DateTime::parse_from_rfc3339(created_at).map_or_else(
            |_| created_at.to_owned(),
            |t| {
                t.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            },
        );
        let object = serde_json::to_string(&Shared {
            kind,
            payload,
            created_at,
        })
        .unwrap_or_else(|_| "{}".to_owned());
        // Without its opening brace, to follow the per-recipient fields.
        Self(object[1..].to_owned())
    }
}

/// One event frame: `id` is the route id (the recipient's inbox item id),
/// `event_id` the intent id shared by every recipient.
pub fn event_with(id: Uuid, event_id: Uuid, tail: &EventTail) -> Frame {
    let mut text = String::with_capacity(96 + tail.0.len());
    text.push_str(r#"{"type":"event","id":""#);
    text.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    text.push_str(r#"","event_id":""#);
    text.push_str(
        event_id
            .hyphenated()
            .encode_lower(&mut Uuid::encode_buffer()),
    );
    text.push_str("\",");
    if tail.0 != "}" {
        text.push_str(&tail.0);
    } else {
        text.pop();
        text.push('}');
    }
    Frame {
        id,
        text: Utf8Bytes::from(text),
    }
}

/// One event frame (see [`EventTail::new`] and [`event_with`]).
pub fn event(
    id: Uuid,
    event_id: Uuid,
    kind: &str,
    payload: &serde_json::Value,
    created_at: &str,
) -> Frame {
    event_with(id, event_id, &EventTail::new(kind, payload, created_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_as_documented() {
        let w: serde_json::Value =
            serde_json::from_str(welcome(Uuid::nil(), "gw-1").as_str()).unwrap();
        assert_eq!(w["type"], "welcome");
        assert_eq!(w["gateway_id"], "gw-1");
        let f = event(
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            "lobby.member_joined",
            &serde_json::json!({"game_id": "g"}),
            "2026-12-01T17:18:22.123456+00:00",
        );
        let e: serde_json::Value = serde_json::from_str(f.text.as_str()).unwrap();
        assert_eq!(e["type"], "event");
        assert_eq!(e["id"], Uuid::from_u128(1).to_string());
        assert_eq!(e["event_id"], Uuid::from_u128(2).to_string());
        assert_eq!(e["payload"]["game_id"], "g");
        assert_eq!(e["created_at"], "2026-12-01T17:18:22.123Z");
        assert_eq!(e["kind"], "lobby.member_joined");
        assert_eq!(e.as_object().unwrap().len(), 6, "{e}");
        // The shared tail is reused verbatim for another recipient.
        let tail = EventTail::new("k", &serde_json::json!([1, "\"x"]), "not a time");
        let a: serde_json::Value = serde_json::from_str(
            event_with(Uuid::from_u128(3), Uuid::nil(), &tail)
                .text
                .as_str(),
        )
        .unwrap();
        assert_eq!(a["id"], Uuid::from_u128(3).to_string());
        assert_eq!(a["payload"][1], "\"x");
        assert_eq!(a["created_at"], "not a time");
    }
}
