//! Secrets: session tokens and login codes. Only hashes are stored.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// User session tokens start with this; admin tokens use another prefix and
/// another table, so neither kind resolves as the other.
pub const USER_TOKEN_PREFIX: &str = "gu_";

/// A new session token: the prefix and 256 random bits (hex).
pub(crate) fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{USER_TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// True when `token` has the shape of a user token (cheap pre-check).
pub(crate) fn well_formed(token: &str) -> bool {
    token
        .strip_prefix(USER_TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// SHA-256 of the whole token: what the table and the cache key hold. A
/// fast hash is enough because the token carries 256 bits of entropy.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A 6-digit code from the thread-local CSPRNG (ChaCha, OS-seeded).
pub(crate) fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// SHA-256 over the challenge id and the code: the id salts the hash so
/// equal codes of different challenges never share a stored value.
pub(crate) fn code_hash(challenge_id: Uuid, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(challenge_id.as_bytes());
    h.update(b":");
    h.update(code.as_bytes());
    hex::encode(h.finalize())
}

/// Constant-time comparison of the stored hash with the hash of `code`.
pub(crate) fn code_matches(challenge_id: Uuid, code: &str, stored_hash: &str) -> bool {
    let candidate = code_hash(challenge_id, code);
    candidate.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_codes() {
        let t = new_token();
        assert!(well_formed(&t));
        assert_eq!(t.len(), 3 + 64);
        assert_ne!(t, new_token());
        assert!(!well_formed("ga_00"));
        assert!(!well_formed(&t.replace("gu_", "ga_")));
        for _ in 0..100 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        let id = Uuid::now_v7();
        let h = code_hash(id, "123456");
        assert!(code_matches(id, "123456", &h));
        assert!(!code_matches(id, "123457", &h));
        assert!(!code_matches(Uuid::now_v7(), "123456", &h));
    }
}
