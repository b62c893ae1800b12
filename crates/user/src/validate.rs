use galaxy_core::{ApiError, Validator};

/// The longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 32;

/// A display name: the one rule for human-facing names
/// ([`galaxy_core::name_problem`]) with at most [`DISPLAY_NAME_MAX`] characters.
pub fn validate_display_name(name: &str) -> Result<(), ApiError> {
    Validator::new()
        .name("display_name", name, DISPLAY_NAME_MAX)
        .finish()
}

/// The longest address accepted, in characters, surrounding whitespace
/// included (an address is at most 254 characters; padding is not an
/// excuse to send more).
pub const EMAIL_MAX: usize = 254;

/// The address rule as an OpenAPI `pattern`, equal to [`normalize_email`]'s
/// (a test holds them equal): optional ASCII whitespace around; a local part
/// of 1–64 characters from the safe set, dots only between them; `@`; two or
/// more labels of 1–63 letters, digits and inner hyphens.
pub const EMAIL_PATTERN: &str = concat!(
    r"^[ \t\n\x0c\r]*",
    // The local part's length; a lookahead, read by Python and ECMAScript
    // regular expressions (not by Rust's `regex`, hence the test's split).
    r"(?=[^@]{1,64}@)",
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*",
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+",
    r"[ \t\n\x0c\r]*$",
);

/// Trims ASCII whitespace, checks the shape ([`EMAIL_PATTERN`], at most
/// [`EMAIL_MAX`] characters in all) and lower-cases the ASCII letters.
/// Returns the canonical form used as the account key and for rate limits.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid_field("email", "must be a valid email address");
    if raw.chars().count() > EMAIL_MAX {
        return Err(bad());
    }
    let email = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(email.to_ascii_lowercase())
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// `EMAIL_PATTERN` without its lookahead, which Rust's `regex` cannot
    /// read; the test checks the local part's length beside it.
    fn pattern_without_lookahead() -> regex::Regex {
        regex::Regex::new(&EMAIL_PATTERN.replace("(?=[^@]{1,64}@)", "")).unwrap()
    }

    fn arb_address() -> impl Strategy<Value = String> {
        let part = "[a-zA-Z0-9.+_-]{0,3}|[a-z]{60,66}|.{0,3}";
        (part, part, part, "[ \t]{0,2}|\u{3000}")
            .prop_map(|(local, d1, d2, pad)| format!("{pad}{local}@{d1}.{d2}{pad}"))
    }

    proptest! {
        /// The documented pattern and the check agree on every address.
        #[test]
        fn pattern_accepts_exactly_what_normalize_accepts(s in arb_address()) {
            let trimmed = s.trim_matches(|c: char| c.is_ascii_whitespace());
            let local_len_ok = trimmed
                .split_once('@')
                .is_some_and(|(l, _)| (1..=64).contains(&l.chars().count()));
            let by_schema = s.chars().count() <= EMAIL_MAX
                && local_len_ok
                && pattern_without_lookahead().is_match(&s);
            prop_assert_eq!(normalize_email(&s).is_ok(), by_schema, "{:?}", s);
        }
    }

    #[test]
    fn display_names() {
        assert!(validate_display_name("Captain Nemo").is_ok());
        assert!(validate_display_name(&"é".repeat(32)).is_ok());
        for bad in [
            "",
            " ",
            &"a".repeat(33),
            "a\u{7}b",
            "tab\there",
            " lead",
            "zero\u{200B}width",
            "line\u{2028}break",
            "a\u{FFF9}b",
        ] {
            let e = validate_display_name(bad).unwrap_err();
            assert_eq!(e.code(), "validation_failed", "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email("  Player@Example.COM ").unwrap(),
            "player@example.com"
        );
        assert!(normalize_email("a+tag@sub.example.org").is_ok());
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a\n@b.com",
            &format!("{}@b.com", "a".repeat(65)),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
