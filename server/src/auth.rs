//! API keys: generated at random, handed to the app once, stored on the server only as a
//! SHA-256 hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of a key, as stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `sk_` and 32 random bytes in hex.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sk_{}", hex::encode(bytes))
}

/// The bearer token of an `Authorization` header value.
pub(crate) fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashes_stable() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_tokens_are_parsed() {
        assert_eq!(bearer("Bearer sk_1"), Some("sk_1"));
        assert_eq!(bearer("bearer  sk_1 "), Some("sk_1"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("sk_1"), None);
    }
}
