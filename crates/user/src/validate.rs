use galaxy_core::{ApiError, Validator};

/// Invisible formatting characters that are not `char::is_control` but would
/// let two display names look identical or break layout.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A display name: 1–32 printable characters, not blank, no surrounding
/// whitespace.
pub fn validate_display_name(name: &str) -> Result<(), ApiError> {
    Validator::new()
        .text("display_name", name, 1, 32)
        .check(
            !name.chars().any(is_invisible),
            "display_name",
            "must not contain invisible formatting characters",
        )
        .check(
            name.trim() == name && !name.trim().is_empty(),
            "display_name",
            "must not be blank or start or end with whitespace",
        )
        .finish()
}

/// Trims and lower-cases an address and checks its shape (one `@`, a local
/// part of at most 64 safe characters, a dotted domain, at most 254 in all).
/// Returns the canonical form used as the account key and for rate limits.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let bad = || ApiError::invalid_field("email", "must be a valid email address");
    if email.is_empty() || email.len() > 254 {
        return Err(bad());
    }
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
        Ok(email)
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
