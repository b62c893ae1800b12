//! The create and join rules the derive attributes cannot state, added to
//! the lobby's OpenAPI document so that every request the schema allows is
//! one the handlers accept, and every request it refuses they refuse too
//! (schemathesis checks both ways). Each rule comes from the code that
//! enforces it.

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type,
};
use utoipa::openapi::{OpenApi, Ref, RefOr};

use crate::validate::{NAME_MAX, PLAYERS_MAX, RACE_NAME_MAX, RACE_REFUSED};

/// Any JSON value without a NUL character in a key or string (what `jsonb`
/// stores); referenced by `CreateGame.settings`.
const SETTINGS_VALUE: &str = "SettingsValue";

/// A string with no NUL character.
fn no_nul() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[^\x00]*$"))
}

fn settings_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(no_nul()))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::Ref(
            Ref::from_schema_name(SETTINGS_VALUE),
        ))))
}

fn settings_value() -> Schema {
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(no_nul())
        .item(ArrayBuilder::new().items(Ref::from_schema_name(SETTINGS_VALUE)))
        .item(settings_object())
        .description(Some(
            "Any JSON value with no NUL character in a key or string",
        ))
        .into()
}

/// `min_players ≤ max_players`, which JSON Schema cannot compare directly:
/// one branch per allowed `max_players`.
fn players_ordered() -> Schema {
    let mut any = AnyOfBuilder::new();
    for max in 1..=PLAYERS_MAX {
        any = any.item(
            ObjectBuilder::new()
                .property(
                    "max_players",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([max])),
                )
                .property(
                    "min_players",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .maximum(Some(max)),
                ),
        );
    }
    any.description(Some("min_players must not exceed max_players"))
        .into()
}

/// Adds the rules to `doc` (the lobby's own document).
pub fn state(doc: &mut OpenApi) {
    use galaxy_core::schema_rules::{name_rule, property_mut};
    let named = [
        name_rule(doc, "CreateGame", "name", NAME_MAX, ""),
        name_rule(doc, "CreateGame", "race_name", RACE_NAME_MAX, RACE_REFUSED),
        name_rule(doc, "JoinGame", "race_name", RACE_NAME_MAX, RACE_REFUSED),
    ];
    debug_assert!(named.iter().all(|n| *n), "a named lobby field is missing");
    if let Some(version) = property_mut(doc, "CreateGame", "engine_version") {
        // `Validator::text`: 1–64 characters, no control characters.
        version.min_length = Some(1);
        version.max_length = Some(64);
        version.pattern = Some(r"^[^\x00-\x1f\x7f-\x9f]*$".to_owned());
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    components
        .schemas
        .insert(SETTINGS_VALUE.to_owned(), RefOr::T(settings_value()));
    if let Some(RefOr::T(Schema::Object(create))) = components.schemas.get_mut("CreateGame") {
        let settings: Schema = AnyOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(settings_object())
            .description(Some(
                "A JSON object of at most 16 KiB, handed to the engine; default `{}`",
            ))
            .into();
        create
            .properties
            .insert("settings".to_owned(), RefOr::T(settings));
        let base = Schema::Object(create.clone());
        let ordered = AllOfBuilder::new().item(base).item(players_ordered());
        components
            .schemas
            .insert("CreateGame".to_owned(), RefOr::T(ordered.into()));
    }
}
