//! The catalog: every notification kind, who receives it, on which channels,
//! the payload fields it requires and how its mail reads.
//! `docs/notifications.md` documents the same table for callers.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::NotificationError;

/// Longest accepted idempotency key (the column's CHECK says the same).
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Upper bound on recipients of one intent (a game has far fewer members).
pub const MAX_RECIPIENTS: usize = 1000;
/// Longest text field: room for an engine or Docker error message.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Upper bound on a serialised payload; it travels in every push event.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// Who a kind is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Accounts named in the intent: one push and one email route each.
    Players,
    /// The operator: one email route to `BACKEND_NOTIFICATION_ADMIN_EMAIL`.
    Admin,
}

/// The type a payload field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A UUID in its canonical string form.
    Uuid,
    /// A non-empty string of at most 2000 characters.
    Text,
    /// A non-negative integer.
    Count,
}

impl FieldType {
    fn describe(self) -> &'static str {
        match self {
            Self::Uuid => "a UUID string",
            Self::Text => "a non-empty string of at most 2000 characters",
            Self::Count => "a non-negative integer",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::Uuid => value.as_str().is_some_and(|s| Uuid::parse_str(s).is_ok()),
            Self::Text => value
                .as_str()
                .is_some_and(|s| !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_CHARS),
            Self::Count => value.as_u64().is_some(),
        }
    }
}

/// One catalog entry.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    pub kind: &'static str,
    pub audience: Audience,
    /// Required payload fields; other fields are kept and delivered as sent.
    pub fields: &'static [(&'static str, FieldType)],
}

use FieldType::{Count, Text, Uuid as Id};

pub const LOBBY_GAME_STARTED: &str = "lobby.game_started";
pub const LOBBY_MEMBER_JOINED: &str = "lobby.member_joined";
pub const RUNTIME_TURN_GENERATED: &str = "runtime.turn_generated";
pub const RUNTIME_IMAGE_PULL_FAILED: &str = "runtime.image_pull_failed";
pub const RUNTIME_CONTAINER_START_FAILED: &str = "runtime.container_start_failed";
pub const RUNTIME_START_CONFIG_INVALID: &str = "runtime.start_config_invalid";

/// The payload of an image-pull or container-start failure alert.
const ENGINE_FAILURE_FIELDS: &[(&str, FieldType)] = &[
    ("game_id", Id),
    ("engine_version", Text),
    ("image", Text),
    ("reason", Text),
];

/// Every kind the backend accepts.
pub const CATALOG: &[KindSpec] = &[
    KindSpec {
        kind: LOBBY_GAME_STARTED,
        audience: Audience::Players,
        fields: &[("game_id", Id), ("game_name", Text)],
    },
    KindSpec {
        kind: LOBBY_MEMBER_JOINED,
        audience: Audience::Players,
        fields: &[
            ("game_id", Id),
            ("game_name", Text),
            ("account_id", Id),
            ("race_name", Text),
        ],
    },
    KindSpec {
        kind: RUNTIME_TURN_GENERATED,
        audience: Audience::Players,
        fields: &[("game_id", Id), ("game_name", Text), ("turn", Count)],
    },
    KindSpec {
        kind: RUNTIME_IMAGE_PULL_FAILED,
        audience: Audience::Admin,
        fields: ENGINE_FAILURE_FIELDS,
    },
    KindSpec {
        kind: RUNTIME_CONTAINER_START_FAILED,
        audience: Audience::Admin,
        fields: ENGINE_FAILURE_FIELDS,
    },
    KindSpec {
        kind: RUNTIME_START_CONFIG_INVALID,
        audience: Audience::Admin,
        fields: &[("game_id", Id), ("engine_version", Text), ("reason", Text)],
    },
];

/// The entry for `kind`, if it is in the catalog.
pub fn spec(kind: &str) -> Option<&'static KindSpec> {
    CATALOG.iter().find(|s| s.kind == kind)
}

/// What a caller asks to be notified.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    /// A catalog kind, e.g. `lobby.member_joined`.
    pub kind: String,
    /// Unique per kind: a repeat with the same key creates nothing. 1–200 characters.
    pub idempotency_key: String,
    /// A JSON object with the kind's required fields.
    pub payload: Value,
    /// Account ids for player kinds (at least one); empty for admin kinds.
    pub recipients: Vec<Uuid>,
}

/// Checks `intent` against the catalog; returns its entry and its
/// recipients without duplicates (first occurrence order kept).
pub fn validate(intent: &Intent) -> Result<(&'static KindSpec, Vec<Uuid>), NotificationError> {
    let spec = spec(&intent.kind).ok_or_else(|| NotificationError::UnknownKind {
        kind: intent.kind.clone(),
    })?;
    let key_len = intent.idempotency_key.chars().count();
    if intent.idempotency_key.contains('\0') {
        return Err(NotificationError::InvalidIdempotencyKey {
            reason: "must not contain the NUL character".to_owned(),
        });
    }
    if key_len == 0 || key_len > MAX_IDEMPOTENCY_KEY {
        return Err(NotificationError::InvalidIdempotencyKey {
            reason: format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters (got {key_len})"),
        });
    }
    let object = intent
        .payload
        .as_object()
        .ok_or_else(|| NotificationError::InvalidPayload {
            kind: spec.kind,
            field: "payload".to_owned(),
            problem: "must be a JSON object".to_owned(),
        })?;
    check_fields(spec, object)?;
    // Payloads are stored as `jsonb`, keys are `text`: no NUL anywhere.
    if let Some(problem) = galaxy_core::json_problem(&intent.payload) {
        return Err(NotificationError::InvalidPayload {
            kind: spec.kind,
            field: "payload".to_owned(),
            problem,
        });
    }
    let size = serde_json::to_vec(&intent.payload).map_or(usize::MAX, |b| b.len());
    if size > MAX_PAYLOAD_BYTES {
        return Err(NotificationError::InvalidPayload {
            kind: spec.kind,
            field: "payload".to_owned(),
            problem: format!("must serialise to at most {MAX_PAYLOAD_BYTES} bytes"),
        });
    }
    let mut recipients = Vec::with_capacity(intent.recipients.len());
    for id in &intent.recipients {
        if !recipients.contains(id) {
            recipients.push(*id);
        }
    }
    match spec.audience {
        Audience::Players if recipients.is_empty() => {
            Err(NotificationError::NoRecipients { kind: spec.kind })
        }
        Audience::Players if recipients.len() > MAX_RECIPIENTS => {
            Err(NotificationError::TooManyRecipients {
                kind: spec.kind,
                max: MAX_RECIPIENTS,
            })
        }
        Audience::Admin if !recipients.is_empty() => {
            Err(NotificationError::RecipientsNotAllowed { kind: spec.kind })
        }
        _ => Ok((spec, recipients)),
    }
}

fn check_fields(spec: &KindSpec, object: &Map<String, Value>) -> Result<(), NotificationError> {
    for (name, ty) in spec.fields {
        let problem = match object.get(*name) {
            None | Some(Value::Null) => Some(format!("is required ({})", ty.describe())),
            Some(v) if !ty.accepts(v) => Some(format!("must be {}", ty.describe())),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(NotificationError::InvalidPayload {
                kind: spec.kind,
                field: (*name).to_owned(),
                problem,
            });
        }
    }
    Ok(())
}

/// The mail for one recipient of a validated intent: subject and text body.
pub fn render_mail(kind: &str, payload: &Value) -> (String, String) {
    let s = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or("");
    let n = |name: &str| payload.get(name).and_then(Value::as_u64).unwrap_or(0);
    let footer = "\n-- \nGalaxy. You receive this because you play in this game.\n";
    let admin_footer = "\n-- \nGalaxy backend. Sent to BACKEND_NOTIFICATION_ADMIN_EMAIL.\n";
    match kind {
        LOBBY_GAME_STARTED => (
            format!("Galaxy: {} has started", s("game_name")),
            format!(
                "The game \"{}\" has started. Your empire awaits your orders.\n\nGame id: {}\n{footer}",
                s("game_name"),
                s("game_id")
            ),
        ),
        LOBBY_MEMBER_JOINED => (
            format!("Galaxy: {} joined {}", s("race_name"), s("game_name")),
            format!(
                "The race \"{}\" joined the game \"{}\".\n\nGame id: {}\n{footer}",
                s("race_name"),
                s("game_name"),
                s("game_id")
            ),
        ),
        RUNTIME_TURN_GENERATED => (
            format!("Galaxy: turn {} of {} is ready", n("turn"), s("game_name")),
            format!(
                "Turn {} of the game \"{}\" has been generated. Read your report and send your orders.\n\nGame id: {}\n{footer}",
                n("turn"),
                s("game_name"),
                s("game_id")
            ),
        ),
        RUNTIME_IMAGE_PULL_FAILED => (
            format!(
                "[galaxy] engine image pull failed for game {}",
                s("game_id")
            ),
            format!(
                "The engine image could not be pulled.\n\nGame: {}\nEngine version: {}\nImage: {}\nReason: {}\n{admin_footer}",
                s("game_id"),
                s("engine_version"),
                s("image"),
                s("reason")
            ),
        ),
        RUNTIME_CONTAINER_START_FAILED => (
            format!(
                "[galaxy] engine container failed to start for game {}",
                s("game_id")
            ),
            format!(
                "The engine container could not be started or never became healthy.\n\nGame: {}\nEngine version: {}\nImage: {}\nReason: {}\n{admin_footer}",
                s("game_id"),
                s("engine_version"),
                s("image"),
                s("reason")
            ),
        ),
        RUNTIME_START_CONFIG_INVALID => (
            format!(
                "[galaxy] engine rejected the start config of game {}",
                s("game_id")
            ),
            format!(
                "The engine exited with code 78: it rejected its start configuration.\n\nGame: {}\nEngine version: {}\nReason: {}\n{admin_footer}",
                s("game_id"),
                s("engine_version"),
                s("reason")
            ),
        ),
        other => (
            format!("Galaxy notification: {other}"),
            format!("{payload}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn intent(kind: &str, payload: Value, recipients: Vec<Uuid>) -> Intent {
        Intent {
            kind: kind.to_owned(),
            idempotency_key: "k-1".to_owned(),
            payload,
            recipients,
        }
    }

    fn joined() -> Value {
        json!({"game_id": Uuid::nil().to_string(), "game_name": "Andromeda",
               "account_id": Uuid::nil().to_string(), "race_name": "Zorgons"})
    }

    #[test]
    fn nul_anywhere_in_a_payload_or_key_is_refused() {
        let a = Uuid::now_v7();
        let mut p = joined();
        p["extra"] = json!({"deep": ["x\u{0}"]});
        assert!(matches!(
            validate(&intent(LOBBY_MEMBER_JOINED, p, vec![a])),
            Err(NotificationError::InvalidPayload { .. })
        ));
        let mut i = intent(LOBBY_MEMBER_JOINED, joined(), vec![a]);
        i.idempotency_key = "k\u{0}".to_owned();
        assert!(matches!(
            validate(&i),
            Err(NotificationError::InvalidIdempotencyKey { .. })
        ));
    }

    #[test]
    fn accepts_a_valid_player_intent_and_dedupes_recipients() {
        let a = Uuid::now_v7();
        let (spec, recipients) =
            validate(&intent(LOBBY_MEMBER_JOINED, joined(), vec![a, a])).unwrap();
        assert_eq!(spec.audience, Audience::Players);
        assert_eq!(recipients, vec![a]);
    }

    #[test]
    fn rejects_each_kind_of_bad_intent_with_a_typed_error() {
        let a = vec![Uuid::now_v7()];
        assert!(matches!(
            validate(&intent("lobby.nope", joined(), a.clone())),
            Err(NotificationError::UnknownKind { .. })
        ));
        let mut missing = joined();
        missing.as_object_mut().unwrap().remove("race_name");
        match validate(&intent(LOBBY_MEMBER_JOINED, missing, a.clone())) {
            Err(NotificationError::InvalidPayload { field, .. }) => assert_eq!(field, "race_name"),
            other => panic!("{other:?}"),
        }
        let mut bad_uuid = joined();
        bad_uuid["game_id"] = json!("not-a-uuid");
        match validate(&intent(LOBBY_MEMBER_JOINED, bad_uuid, a.clone())) {
            Err(NotificationError::InvalidPayload { field, .. }) => assert_eq!(field, "game_id"),
            other => panic!("{other:?}"),
        }
        let turn_as_string =
            json!({"game_id": Uuid::nil().to_string(), "game_name": "G", "turn": "3"});
        match validate(&intent(RUNTIME_TURN_GENERATED, turn_as_string, a.clone())) {
            Err(NotificationError::InvalidPayload { field, .. }) => assert_eq!(field, "turn"),
            other => panic!("{other:?}"),
        }
        let negative = json!({"game_id": Uuid::nil().to_string(), "game_name": "G", "turn": -1});
        assert!(validate(&intent(RUNTIME_TURN_GENERATED, negative, a.clone())).is_err());
        assert!(matches!(
            validate(&intent(LOBBY_MEMBER_JOINED, json!([1]), a.clone())),
            Err(NotificationError::InvalidPayload { .. })
        ));
        assert!(matches!(
            validate(&intent(LOBBY_MEMBER_JOINED, joined(), vec![])),
            Err(NotificationError::NoRecipients { .. })
        ));
        let admin = json!({"game_id": Uuid::nil().to_string(), "engine_version": "1.0", "reason": "exit 78"});
        assert!(validate(&intent(RUNTIME_START_CONFIG_INVALID, admin.clone(), vec![])).is_ok());
        assert!(matches!(
            validate(&intent(RUNTIME_START_CONFIG_INVALID, admin, a.clone())),
            Err(NotificationError::RecipientsNotAllowed { .. })
        ));
        for key in [String::new(), "k".repeat(201)] {
            let mut i = intent(LOBBY_MEMBER_JOINED, joined(), a.clone());
            i.idempotency_key = key;
            assert!(matches!(
                validate(&i),
                Err(NotificationError::InvalidIdempotencyKey { .. })
            ));
        }
        let mut i = intent(LOBBY_MEMBER_JOINED, joined(), a.clone());
        i.idempotency_key = "k".repeat(200);
        assert!(validate(&i).is_ok());
        let mut big = joined();
        big["extra"] = json!("x".repeat(MAX_PAYLOAD_BYTES));
        assert!(validate(&intent(LOBBY_MEMBER_JOINED, big, a)).is_err());
    }

    #[test]
    fn every_kind_renders_a_mail_naming_its_subject() {
        let payload = json!({"game_id": "g-1", "game_name": "Andromeda", "turn": 7,
            "race_name": "Zorgons", "engine_version": "1.2", "image": "galaxy/game:1.2", "reason": "boom"});
        for spec in CATALOG {
            let (subject, body) = render_mail(spec.kind, &payload);
            assert!(!subject.is_empty() && body.contains("g-1"), "{}", spec.kind);
        }
        let (subject, _) = render_mail(RUNTIME_TURN_GENERATED, &payload);
        assert!(subject.contains("turn 7") && subject.contains("Andromeda"));
        let (_, body) = render_mail(RUNTIME_IMAGE_PULL_FAILED, &payload);
        assert!(body.contains("galaxy/game:1.2") && body.contains("boom"));
    }
}
