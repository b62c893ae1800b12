//! Field rules added to a generated OpenAPI document where the derive
//! attributes cannot carry them: the name pattern is computed from the same
//! table as the check ([`crate::name_pattern`]), so the two cannot drift.

use utoipa::openapi::schema::{Object, Schema};
use utoipa::openapi::{OpenApi, RefOr};

/// The object schema `schema.property` of `doc`'s components, if it is one.
pub fn property_mut<'a>(
    doc: &'a mut OpenApi,
    schema: &str,
    property: &str,
) -> Option<&'a mut Object> {
    let component = doc.components.as_mut()?.schemas.get_mut(schema)?;
    let RefOr::T(Schema::Object(object)) = component else {
        return None;
    };
    match object.properties.get_mut(property)? {
        RefOr::T(Schema::Object(field)) => Some(field),
        _ => None,
    }
}

/// States the name rule ([`crate::name_problem`]) on `schema.property`:
/// `1..=max` characters matching [`crate::name_pattern`]`(also_refused)`.
/// `false` when the document has no such property (a test catches it).
pub fn name_rule(
    doc: &mut OpenApi,
    schema: &str,
    property: &str,
    max: usize,
    also_refused: &str,
) -> bool {
    let Some(field) = property_mut(doc, schema, property) else {
        return false;
    };
    field.min_length = Some(1);
    field.max_length = Some(max);
    field.pattern = Some(crate::name_pattern(also_refused));
    true
}

#[cfg(test)]
mod tests {
    use utoipa::{OpenApi, ToSchema};

    #[derive(ToSchema)]
    #[allow(dead_code)]
    struct Named {
        name: String,
        count: u32,
    }

    #[derive(OpenApi)]
    #[openapi(components(schemas(Named)))]
    struct Doc;

    #[test]
    fn the_rule_lands_on_the_property_and_nowhere_else() {
        let mut doc = Doc::openapi();
        assert!(super::name_rule(&mut doc, "Named", "name", 32, "/"));
        assert!(!super::name_rule(&mut doc, "Named", "missing", 32, ""));
        assert!(!super::name_rule(&mut doc, "Missing", "name", 32, ""));
        let field = super::property_mut(&mut doc, "Named", "name").unwrap();
        assert_eq!(field.max_length, Some(32));
        assert_eq!(
            field.pattern.as_deref(),
            Some(crate::name_pattern("/").as_str())
        );
        let count = super::property_mut(&mut doc, "Named", "count").unwrap();
        assert_eq!(count.pattern, None);
    }
}
