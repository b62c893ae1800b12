use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A key drawn once per process: hashes correlate lines of one process but
/// cannot be reversed by a dictionary of addresses without the key.
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// HMAC-SHA256 of the lower-cased, trimmed address, hex, 16 characters.
/// Log this (as `email_hash`) instead of an email address, always.
pub fn email_hash(email: &str) -> String {
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(process_key()).expect("any key length works");
    mac.update(email.trim().to_lowercase().as_bytes());
    let digest = mac.finalize().into_bytes();
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::email_hash;

    #[test]
    fn stable_within_a_process_and_case_insensitive() {
        let a = email_hash("Player@Example.com");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, email_hash(" player@example.com "));
        assert_ne!(a, email_hash("other@example.com"));
        assert!(!a.contains("example"));
    }
}
