//! One typed constructor per catalog kind. The kind, the payload's shape and
//! the idempotency key of each notification are decided here, beside the
//! catalog that validates them; a module that raises a notification only
//! passes its facts.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::catalog::{
    Intent, LOBBY_GAME_STARTED, LOBBY_MEMBER_JOINED, MAX_IDEMPOTENCY_KEY, MAX_TEXT_CHARS,
    RUNTIME_START_CONFIG_INVALID, RUNTIME_TURN_GENERATED,
};

/// The parts joined with `:`, cut to the catalog's key limit.
fn key(parts: &[&str]) -> String {
    parts.join(":").chars().take(MAX_IDEMPOTENCY_KEY).collect()
}

/// Catalog text fields must be non-empty; an engine that failed without
/// saying why still raises its alert.
fn non_empty(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        "no reason given".to_owned()
    } else {
        t.chars().take(MAX_TEXT_CHARS).collect()
    }
}

/// A moment as a key part: its microseconds, empty when unknown.
fn micros(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.timestamp_micros().to_string())
        .unwrap_or_default()
}

impl Intent {
    fn new(kind: &str, key_parts: &[&str], payload: Value, recipients: Vec<Uuid>) -> Self {
        Self {
            kind: kind.to_owned(),
            idempotency_key: key(key_parts),
            payload,
            recipients,
        }
    }

    /// `lobby.member_joined`, to the game's other members. The join's time
    /// is in the key: leaving and joining again is a new notification.
    pub fn member_joined(
        game_id: Uuid,
        game_name: &str,
        account_id: Uuid,
        race_name: &str,
        joined_at: Option<DateTime<Utc>>,
        recipients: Vec<Uuid>,
    ) -> Self {
        Self::new(
            LOBBY_MEMBER_JOINED,
            &[
                &game_id.to_string(),
                &account_id.to_string(),
                &micros(joined_at),
            ],
            json!({
                "game_id": game_id,
                "game_name": game_name,
                "account_id": account_id,
                "race_name": race_name,
            }),
            recipients,
        )
    }

    /// `lobby.game_started`, to every member; once per start.
    pub fn game_started(
        game_id: Uuid,
        game_name: &str,
        started_at: Option<DateTime<Utc>>,
        recipients: Vec<Uuid>,
    ) -> Self {
        Self::new(
            LOBBY_GAME_STARTED,
            &[&game_id.to_string(), &micros(started_at)],
            json!({ "game_id": game_id, "game_name": game_name }),
            recipients,
        )
    }

    /// `runtime.turn_generated`, to every member; once per turn.
    pub fn turn_generated(
        game_id: Uuid,
        game_name: &str,
        turn: u32,
        recipients: Vec<Uuid>,
    ) -> Self {
        Self::new(
            RUNTIME_TURN_GENERATED,
            &[&game_id.to_string(), &turn.to_string()],
            json!({ "game_id": game_id, "game_name": game_name, "turn": turn }),
            recipients,
        )
    }

    /// An engine failure alert to the admins: `kind` is one of the
    /// `runtime.*_failed` / `runtime.start_config_invalid` kinds. The same
    /// failure repeated by the reconciler is one alert (same key).
    pub fn engine_failed(
        kind: &str,
        game_id: Uuid,
        engine_version: &str,
        image: &str,
        reason: &str,
    ) -> Self {
        let mut payload = json!({
            "game_id": game_id,
            "engine_version": non_empty(engine_version),
            "reason": non_empty(reason),
        });
        // An invalid start config never got as far as an image.
        if kind != RUNTIME_START_CONFIG_INVALID {
            payload["image"] = json!(non_empty(image));
        }
        Self::new(
            kind,
            &[&game_id.to_string(), engine_version, reason],
            payload,
            Vec::new(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RUNTIME_IMAGE_PULL_FAILED, validate};

    #[test]
    fn every_constructor_builds_an_intent_the_catalog_accepts() {
        let game = Uuid::now_v7();
        let member = Uuid::now_v7();
        for intent in [
            Intent::member_joined(
                game,
                "Andromeda",
                member,
                "Zorg",
                Some(Utc::now()),
                vec![Uuid::now_v7()],
            ),
            Intent::game_started(game, "Andromeda", Some(Utc::now()), vec![member]),
            Intent::turn_generated(game, "Andromeda", 3, vec![member]),
            Intent::engine_failed(
                RUNTIME_IMAGE_PULL_FAILED,
                game,
                "1.0.0",
                "galaxy/game:1",
                "",
            ),
            Intent::engine_failed(RUNTIME_START_CONFIG_INVALID, game, "1.0.0", "", "bad"),
        ] {
            validate(&intent).unwrap_or_else(|e| panic!("{}: {e}", intent.kind));
        }
    }

    #[test]
    fn keys_are_cut_to_the_limit_and_a_repeat_has_the_same_key() {
        let game = Uuid::now_v7();
        let long = "x".repeat(MAX_TEXT_CHARS + 500);
        let a = Intent::engine_failed(RUNTIME_IMAGE_PULL_FAILED, game, "1.0.0", "img", &long);
        let b = Intent::engine_failed(RUNTIME_IMAGE_PULL_FAILED, game, "1.0.0", "img", &long);
        assert_eq!(a.idempotency_key.chars().count(), MAX_IDEMPOTENCY_KEY);
        assert_eq!(a.idempotency_key, b.idempotency_key);
        assert_eq!(
            a.payload["reason"].as_str().map(str::len),
            Some(MAX_TEXT_CHARS)
        );
        let c = Intent::engine_failed(RUNTIME_START_CONFIG_INVALID, game, "1.0.0", "img", "r");
        assert!(c.payload.get("image").is_none());
    }
}
