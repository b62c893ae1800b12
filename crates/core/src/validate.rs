use crate::problem::{ApiError, FieldError};

/// Collects field errors so a client learns about every bad field at once.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `message` against `field` when `ok` is false.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) -> &mut Self {
        if !ok {
            self.errors.push(FieldError {
                field: field.to_owned(),
                message: message.into(),
            });
        }
        self
    }

    /// Text of `min..=max` characters with no control characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> &mut Self {
        let len = value.chars().count();
        self.check(
            (min..=max).contains(&len),
            field,
            format!("must be {min} to {max} characters"),
        );
        self.check(
            !value.chars().any(char::is_control),
            field,
            "must not contain control characters",
        )
    }

    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let errors = std::mem::take(&mut self.errors);
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Err(ApiError::validation(detail, errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_error() {
        let err = Validator::new()
            .text("name", "", 1, 32)
            .text("race", "a\u{7}b", 1, 32)
            .text("ok", "fine", 1, 32)
            .finish()
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
        assert_eq!(err.field_errors().len(), 2);
        assert!(
            Validator::new()
                .text("x", &"a".repeat(32), 1, 32)
                .finish()
                .is_ok()
        );
        assert!(
            Validator::new()
                .text("x", &"a".repeat(33), 1, 32)
                .finish()
                .is_err()
        );
    }
}
