//! Field validation shared by every module: the collecting [`Validator`],
//! the one rule for human-facing names ([`name_problem`]) and the check that
//! JSON can be stored in PostgreSQL `jsonb` ([`json_problem`]).

use serde_json::Value;

use crate::problem::{ApiError, FieldError};

/// Characters a name other people read must not contain although they are
/// not `char::is_control`: Unicode format characters (general category Cf:
/// soft hyphen, bidi marks and isolates, zero-width characters, word
/// joiner, invisible operators, Arabic letter mark U+061C, Mongolian vowel
/// separator U+180E, interlinear annotation U+FFF9–FFFB, tags, …), the line
/// and paragraph separators U+2028/U+2029, and the blank fillers that
/// render as nothing (Hangul fillers, combining grapheme joiner, Khmer
/// inherent vowels, Mongolian free variation selectors, braille blank).
/// One table, so the check and the OpenAPI pattern ([`name_pattern`]) agree.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` is one of the invisible characters of [`INVISIBLE`].
pub fn is_invisible(c: char) -> bool {
    INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The regular expression (as an OpenAPI `pattern`) that accepts exactly the
/// names [`name_problem`] accepts, apart from their length (`minLength` /
/// `maxLength` say that), also refusing each character of `also_refused`.
/// Written with `\uXXXX`/`\UXXXXXXXX` escapes, which Python's and Rust's
/// regular expressions read alike.
pub fn name_pattern(also_refused: &str) -> String {
    let escape = |c: char| {
        let n = u32::from(c);
        if n > 0xFFFF {
            format!("\\U{n:08x}")
        } else {
            format!("\\u{n:04x}")
        }
    };
    // Control characters (C0, DEL, C1), the invisible ones, then the extras.
    let mut class = String::from("\\x00-\\x1f\\x7f-\\x9f");
    for &(lo, hi) in INVISIBLE {
        if lo == hi {
            class.push_str(&escape(lo));
        } else {
            class.push_str(&format!("{}-{}", escape(lo), escape(hi)));
        }
    }
    for c in also_refused.chars() {
        class.push_str(&escape(c));
    }
    // First and last characters are not whitespace; one character is both.
    format!("^[^\\s{class}](?:[^{class}]*[^\\s{class}])?$")
}

/// The one rule for every human-facing name (display names, game names,
/// race names): 1 to `max` characters, no control or invisible characters,
/// not blank, no surrounding whitespace. `None` when `value` passes, else
/// the first rule it breaks.
pub fn name_problem(value: &str, max: usize) -> Option<String> {
    let len = value.chars().count();
    if !(1..=max).contains(&len) {
        Some(format!("must be 1 to {max} characters"))
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters".to_owned())
    } else if value.chars().any(is_invisible) {
        Some("must not contain invisible formatting characters".to_owned())
    } else if value.trim().is_empty() {
        Some("must not be blank".to_owned())
    } else if value.trim() != value {
        Some("must not start or end with whitespace".to_owned())
    } else {
        None
    }
}

/// `None` when `value` can be stored in PostgreSQL `jsonb`, else why not:
/// `jsonb` (like `text`) refuses the NUL character, in keys and in strings
/// at any depth. The message names where the first NUL is (`a.b[2]`).
pub fn json_problem(value: &Value) -> Option<String> {
    let mut stack: Vec<(&Value, String)> = vec![(value, String::new())];
    while let Some((v, path)) = stack.pop() {
        let at = |path: &str| {
            let where_ = if path.is_empty() {
                "the top level"
            } else {
                path
            };
            format!("must not contain the NUL character (\\u0000) in a key or string (at {where_})")
        };
        match v {
            Value::String(s) if s.contains('\0') => return Some(at(&path)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((item, format!("{path}[{i}]")));
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    let child = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    if k.contains('\0') {
                        return Some(at(&child.replace('\0', "\\u0000")));
                    }
                    stack.push((item, child));
                }
            }
            _ => {}
        }
    }
    None
}

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

    /// A human-facing name ([`name_problem`]): one message, the first rule
    /// broken.
    pub fn name(&mut self, field: &str, value: &str, max: usize) -> &mut Self {
        match name_problem(value, max) {
            Some(message) => self.check(false, field, message),
            None => self,
        }
    }

    /// JSON bound for a `jsonb` column ([`json_problem`]).
    pub fn json(&mut self, field: &str, value: &Value) -> &mut Self {
        match json_problem(value) {
            Some(message) => self.check(false, field, message),
            None => self,
        }
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
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names_refuse_invisible_and_control_characters() {
        assert_eq!(name_problem("Captain Nemo", 32), None);
        assert_eq!(name_problem(&"é".repeat(32), 32), None);
        assert_eq!(name_problem("🚀 Rocket", 32), None);
        for bad in [
            "",
            " ",
            "a\u{0}b",
            "tab\there",
            " lead",
            "trail ",
            "zero\u{200B}width",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{061C}b",
            "a\u{180E}b",
            "a\u{FFF9}b",
            "a\u{FFFA}b",
            "a\u{FFFB}b",
            "a\u{2066}b",
            "a\u{E0041}b",
            "\u{3164}",
            "a\u{85}b",
        ] {
            assert!(name_problem(bad, 32).is_some(), "{bad:?} accepted");
        }
        assert!(name_problem(&"a".repeat(33), 32).is_some());
    }

    #[test]
    fn json_with_nul_is_refused_and_located() {
        assert_eq!(
            json_problem(&serde_json::json!({"a": [1, "x", {"b": null}]})),
            None
        );
        let msg = json_problem(&serde_json::json!({"a": [1, {"b": "x\u{0}"}]})).unwrap();
        assert!(msg.contains("a[1].b"), "{msg}");
        let msg = json_problem(&serde_json::json!({"k\u{0}": 1})).unwrap();
        assert!(msg.contains("k\\u0000"), "{msg}");
        assert!(json_problem(&Value::String("\u{0}".into())).is_some());
        let err = Validator::new()
            .json("settings", &serde_json::json!({"a": "\u{0}"}))
            .finish()
            .unwrap_err();
        assert_eq!(err.field_errors()[0].field, "settings");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[a\u{0}\u{1}]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner.clone(), 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[k\u{0}]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(a) => a.iter().any(has_nul),
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }

    /// Strings made of the characters the name rule cares about.
    fn arb_name_like() -> impl Strategy<Value = String> {
        let interesting = prop::sample::select(vec![
            'a',
            'Z',
            'é',
            '🚀',
            ' ',
            '\t',
            '\n',
            '\u{a0}',
            '\u{3000}',
            '\u{0}',
            '\u{7f}',
            '\u{85}',
            '\u{9f}',
            '\u{ad}',
            '\u{200b}',
            '\u{2028}',
            '\u{2029}',
            '\u{61c}',
            '\u{180e}',
            '\u{fff9}',
            '\u{fffb}',
            '\u{feff}',
            '\u{110bd}',
            '\u{e0001}',
            '/',
            '\\',
        ]);
        prop::collection::vec(prop_oneof![interesting, any::<char>()], 0..6)
            .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        /// The OpenAPI pattern and the check agree on every string.
        #[test]
        fn name_pattern_accepts_exactly_what_name_problem_accepts(s in arb_name_like()) {
            let pattern = regex::Regex::new(&name_pattern("")).unwrap();
            let within_length = (1..=64).contains(&s.chars().count());
            prop_assert_eq!(
                name_problem(&s, 64).is_none(),
                within_length && pattern.is_match(&s),
                "{:?}", s
            );
            let without_slashes = regex::Regex::new(&name_pattern("/\\")).unwrap();
            prop_assert_eq!(
                without_slashes.is_match(&s),
                pattern.is_match(&s) && !s.contains(['/', '\\'])
            );
        }

        /// Never panics; refuses exactly the values with a NUL somewhere.
        #[test]
        fn json_validator_refuses_exactly_nul(v in arb_json()) {
            prop_assert_eq!(json_problem(&v).is_some(), has_nul(&v));
        }

        /// Never panics; whatever it accepts is a storable, visible name.
        #[test]
        fn name_validator_accepts_only_storable_visible_names(s in any::<String>()) {
            if name_problem(&s, 32).is_none() {
                prop_assert!(!s.contains('\0'));
                prop_assert!(!s.chars().any(|c| c.is_control() || is_invisible(c)));
                prop_assert_eq!(s.trim(), s.as_str());
                prop_assert!((1..=32).contains(&s.chars().count()));
            }
        }
    }

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
