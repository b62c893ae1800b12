//! The create and join rules: bounds (also stated in the OpenAPI schema,
//! see `schema_rules`), the shared name rule, and settings for `jsonb`.

use galaxy_core::Validator;

use crate::error::LobbyError;
use crate::model::CreateGame;

/// Bounds of the create-game fields (also stated in the OpenAPI schema).
pub const NAME_MAX: usize = 64;
pub const RACE_NAME_MAX: usize = 32;
/// A race is a segment of the engine's URL path (`/v1/players/{race}/…`).
pub const RACE_REFUSED: &str = "/\\";
pub const PLAYERS_MAX: i64 = 16;
pub const TURN_INTERVAL_MIN: i64 = 10;
pub const TURN_INTERVAL_MAX: i64 = 7 * 24 * 3600;
pub const SETTINGS_MAX_BYTES: usize = 16 * 1024;

/// One message per bad field: the shared rule for human-facing names, and
/// for race names no path separators.
pub(crate) fn check_display_text(v: &mut Validator, field: &str, value: &str, max: usize) {
    if let Some(message) = galaxy_core::name_problem(value, max) {
        v.check(false, field, message);
    } else if field == "race_name" && value.contains(|c| RACE_REFUSED.contains(c)) {
        v.check(false, field, "must not contain / or \\");
    }
}

pub(crate) fn validate_create(req: &CreateGame) -> Result<serde_json::Value, LobbyError> {
    let mut v = Validator::new();
    check_display_text(&mut v, "name", &req.name, NAME_MAX);
    check_display_text(&mut v, "race_name", &req.race_name, RACE_NAME_MAX);
    v.check(
        (1..=PLAYERS_MAX).contains(&req.min_players),
        "min_players",
        format!("must be between 1 and {PLAYERS_MAX}"),
    );
    v.check(
        (1..=PLAYERS_MAX).contains(&req.max_players),
        "max_players",
        format!("must be between 1 and {PLAYERS_MAX}"),
    );
    // Only meaningful when both are in range (one message per bad field).
    let in_range = |n: i64| (1..=PLAYERS_MAX).contains(&n);
    v.check(
        !(in_range(req.min_players) && in_range(req.max_players))
            || req.min_players <= req.max_players,
        "max_players",
        "must not be less than min_players",
    );
    v.check(
        (TURN_INTERVAL_MIN..=TURN_INTERVAL_MAX).contains(&req.turn_interval_seconds),
        "turn_interval_seconds",
        format!("must be between {TURN_INTERVAL_MIN} and {TURN_INTERVAL_MAX}"),
    );
    if let Some(version) = &req.engine_version {
        v.text("engine_version", version, 1, 64);
    }
    let settings = match &req.settings {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(s) => s.clone(),
    };
    v.check(settings.is_object(), "settings", "must be a JSON object");
    v.json("settings", &settings);
    v.check(
        serde_json::to_vec(&settings).is_ok_and(|b| b.len() <= SETTINGS_MAX_BYTES),
        "settings",
        format!("must be at most {SETTINGS_MAX_BYTES} bytes of JSON"),
    );
    v.finish().map_err(LobbyError::Invalid)?;
    Ok(settings)
}

pub(crate) fn validate_race(race_name: &str) -> Result<(), LobbyError> {
    let mut v = Validator::new();
    check_display_text(&mut v, "race_name", race_name, RACE_NAME_MAX);
    v.finish().map_err(LobbyError::Invalid)
}

pub(crate) fn to_i32(v: i64) -> i32 {
    // Only called after validation bounded the value.
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::same_race;
    use proptest::prelude::*;

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-zA-Z /\\\u{0}\u{200b}]{0,70}"]
    }

    proptest! {
        /// Any create request: no panic, and what passes is storable (no
        /// NUL reaches jsonb) and within every bound.
        #[test]
        fn create_validation_never_panics_and_passes_only_storable_games(
            name in arb_text(),
            race in arb_text(),
            min in -3i64..20,
            max in -3i64..20,
            interval in prop_oneof![Just(9i64), Just(10), Just(604_800), Just(604_801), any::<i64>()],
            key in arb_text(),
            value in arb_text(),
        ) {
            let req = CreateGame {
                name: name.clone(),
                race_name: race.clone(),
                min_players: min,
                max_players: max,
                turn_interval_seconds: interval,
                engine_version: None,
                settings: Some(serde_json::json!({ key: value })),
            };
            if let Ok(settings) = validate_create(&req) {
                prop_assert!(galaxy_core::json_problem(&settings).is_none());
                prop_assert!(galaxy_core::name_problem(&name, NAME_MAX).is_none());
                prop_assert!(galaxy_core::name_problem(&race, RACE_NAME_MAX).is_none());
                prop_assert!(!race.contains(['/', '\\']));
                prop_assert!(1 <= min && min <= max && max <= PLAYERS_MAX);
                prop_assert!((TURN_INTERVAL_MIN..=TURN_INTERVAL_MAX).contains(&interval));
            }
            prop_assert_eq!(
                validate_race(&race).is_ok(),
                galaxy_core::name_problem(&race, RACE_NAME_MAX).is_none()
                    && !race.contains(['/', '\\'])
            );
        }
    }

    fn req() -> CreateGame {
        CreateGame {
            name: "Andromeda".into(),
            race_name: "Zorgons".into(),
            min_players: 2,
            max_players: 4,
            turn_interval_seconds: 60,
            engine_version: None,
            settings: None,
        }
    }

    fn fields(r: CreateGame) -> Vec<String> {
        match validate_create(&r) {
            Err(LobbyError::Invalid(e)) => {
                e.field_errors().iter().map(|f| f.field.clone()).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn create_validation_names_every_bad_field() {
        assert_eq!(validate_create(&req()).unwrap(), serde_json::json!({}));
        let mut r = req();
        r.name = String::new();
        r.race_name = "x".repeat(33);
        r.min_players = 5;
        r.turn_interval_seconds = 9;
        r.settings = Some(serde_json::json!([1]));
        let f = fields(r);
        for want in [
            "name",
            "race_name",
            "max_players",
            "turn_interval_seconds",
            "settings",
        ] {
            assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
        }
        let mut r = req();
        r.max_players = 17;
        r.min_players = 0;
        assert_eq!(fields(r), ["min_players", "max_players"]);
        let mut r = req();
        r.settings = Some(serde_json::json!({ "x": "y".repeat(SETTINGS_MAX_BYTES) }));
        assert_eq!(fields(r), ["settings"]);
    }

    #[test]
    fn settings_with_nul_anywhere_are_refused_by_field() {
        for settings in [
            serde_json::json!({ "a": "\u{0}" }),
            serde_json::json!({ "a\u{0}": 1 }),
            serde_json::json!({ "deep": { "list": [1, { "x": "ok\u{0}" }] } }),
        ] {
            let mut r = req();
            r.settings = Some(settings.clone());
            assert_eq!(fields(r), ["settings"], "{settings}");
        }
    }

    #[test]
    fn game_and_race_names_refuse_what_display_names_refuse() {
        for bad in [
            "Zo\u{2028}rg",
            "Zo\u{2029}rg",
            "Zo\u{061C}rg",
            "Zo\u{180E}rg",
            "Zo\u{FFF9}rg",
            "Zo\u{FFFA}rg",
            "Zo\u{FFFB}rg",
            "Zo\u{2066}rg",
            "Zo\u{E0001}rg",
            "Zo\u{0}rg",
        ] {
            assert!(validate_race(bad).is_err(), "race {bad:?} accepted");
            let mut r = req();
            r.name = bad.to_owned();
            assert_eq!(fields(r), ["name"], "game name {bad:?}");
        }
    }

    #[test]
    fn race_names_are_printable_and_trimmed() {
        assert!(validate_race("Zorg Empire").is_ok());
        assert!(validate_race(&"é".repeat(32)).is_ok());
        for bad in [
            "",
            " ",
            " Zorg",
            "Zorg ",
            "Zo\u{7}rg",
            "Zo\u{200B}rg",
            "Zo/rg",
            &"a".repeat(33),
        ] {
            assert!(validate_race(bad).is_err(), "{bad:?} accepted");
        }
        assert!(same_race("Zorg", "zORG"));
    }
}
