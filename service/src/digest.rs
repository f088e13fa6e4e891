//! Keyed digests of secrets — HMAC-SHA-256 under a key derived from the cluster secret, in hex —
//! what the cluster stores instead of a secret (business credentials, admin API keys): a copy of
//! the data reveals no secret, and a digest cannot be checked without the cluster's key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Digests secrets under one key.
#[derive(Clone)]
pub struct KeyedDigest {
    key: [u8; 32],
}

impl std::fmt::Debug for KeyedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedDigest(..)")
    }
}

impl KeyedDigest {
    pub fn new(key: [u8; 32]) -> KeyedDigest {
        KeyedDigest { key }
    }

    fn mac(&self, secret: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(secret.as_bytes());
        mac
    }

    /// The digest (hex) `secret` is stored as.
    pub fn digest(&self, secret: &str) -> String {
        self.mac(secret)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `secret` is the one stored as `digest_hex` (compared in constant time).
    pub fn matches(&self, secret: &str, digest_hex: &str) -> bool {
        let Some(expected) = decode_hex(digest_hex) else {
            return false;
        };
        self.mac(secret).verify_slice(&expected).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_matches_only_its_secret_under_its_key() {
        let digest = KeyedDigest::new([7; 32]);
        let stored = digest.digest("s3cret");
        assert_eq!(stored.len(), 64);
        assert!(digest.matches("s3cret", &stored));
        assert!(!digest.matches("s3cret!", &stored));
        assert!(!KeyedDigest::new([8; 32]).matches("s3cret", &stored));
        for garbage in ["", "abc", "zz", "é1"] {
            assert!(!digest.matches("s3cret", garbage));
        }
    }
}
