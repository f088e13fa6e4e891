//! Business credentials without secrets at rest, and access tokens any node can check.
//!
//! Consumer secrets and passkeys are stored (replicated, in the business's account record) as
//! keyed digests: HMAC-SHA256 under a key derived from the cluster secret, so a copy of the
//! data — a backup, a snapshot — reveals neither, and a digest cannot be checked without the
//! cluster's key. M-Pesa Express's `Password` is `base64(shortcode + passkey + timestamp)`: the
//! passkey is cut out of it and its digest compared.
//!
//! An access token names its business and its expiry and carries an HMAC over both under a
//! second derived key: stateless, so every node verifies every token with no shared session
//! store, and a token expires by itself after [`TOKEN_LIFETIME_S`].

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tuma_actors::account::Shortcode;
use tuma_service::digest::KeyedDigest;

type HmacSha256 = Hmac<Sha256>;

/// An access token's lifetime (Daraja: 3600 s).
pub const TOKEN_LIFETIME_S: u64 = 3_600;
/// Longest token accepted for decoding.
const TOKEN_LEN_MAX: usize = 200;

/// The keys the business API derives from the cluster secret (identical on every node).
#[derive(Clone)]
pub struct Keys {
    digest: KeyedDigest,
    token: [u8; 32],
    /// Seeds the initiator key (`initiator.rs`).
    initiator_seed: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn mac(key: &[u8; 32], message: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac
}

impl Keys {
    /// The keys for a cluster secret.
    pub fn derive(cluster_secret: &[u8]) -> Keys {
        let hkdf = Hkdf::<Sha256>::new(Some(b"tuma-daraja-v1"), cluster_secret);
        let mut digest = [0u8; 32];
        hkdf.expand(b"credential digests", &mut digest)
            .expect("32 bytes is a valid HKDF output length");
        let mut keys = Keys {
            digest: KeyedDigest::new(digest),
            token: [0; 32],
            initiator_seed: [0; 32],
        };
        hkdf.expand(b"access tokens", &mut keys.token)
            .expect("32 bytes is a valid HKDF output length");
        hkdf.expand(b"initiator key", &mut keys.initiator_seed)
            .expect("32 bytes is a valid HKDF output length");
        keys
    }

    /// The seed of the cluster's initiator key.
    pub(crate) fn initiator_seed(&self) -> [u8; 32] {
        self.initiator_seed
    }

    /// The keyed digest (hex) a secret is stored as.
    pub fn digest(&self, secret: &str) -> String {
        self.digest.digest(secret)
    }

    /// Whether `secret` is the one stored as `digest_hex` (compared in constant time).
    pub fn matches(&self, secret: &str, digest_hex: &str) -> bool {
        self.digest.matches(secret, digest_hex)
    }

    /// Whether an M-Pesa Express `Password` is `base64(shortcode + passkey + timestamp)` for
    /// this shortcode, this timestamp and the passkey stored as `passkey_digest`.
    pub fn password_matches(
        &self,
        password: &str,
        shortcode: &str,
        timestamp: &str,
        passkey_digest: &str,
    ) -> bool {
        let Ok(decoded) = STANDARD.decode(password.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let passkey = decoded
            .strip_prefix(shortcode)
            .and_then(|rest| rest.strip_suffix(timestamp));
        passkey.is_some_and(|p| !p.is_empty() && self.matches(p, passkey_digest))
    }

    /// A token for `business`, valid until `expires_unix_s`.
    pub fn issue_token(&self, business: &Shortcode, expires_unix_s: u64) -> String {
        let claims = format!("{}.{expires_unix_s}", business.as_str());
        let tag = mac(&self.token, claims.as_bytes()).finalize().into_bytes();
        let token = format!("{claims}.{}", URL_SAFE_NO_PAD.encode(tag));
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The business a token was issued to, if it is genuine and not expired at `now_unix_s`.
    pub fn verify_token(&self, token: &str, now_unix_s: u64) -> Option<Shortcode> {
        if token.len() > TOKEN_LEN_MAX {
            return None;
        }
        let token = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (claims, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        mac(&self.token, claims.as_bytes())
            .verify_slice(&tag)
            .ok()?;
        let (shortcode, expires) = claims.split_once('.')?;
        let expires: u64 = expires.parse().ok()?;
        if now_unix_s >= expires {
            return None;
        }
        Shortcode::parse(shortcode).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOX_PASSKEY: &str =
        "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

    #[test]
    fn secrets_are_kept_as_keyed_digests() {
        let keys = Keys::derive(b"a cluster secret of some length");
        let digest = keys.digest("s3cret");
        assert_eq!(digest.len(), 64);
        assert!(!digest.contains("s3cret"));
        assert!(keys.matches("s3cret", &digest));
        assert!(!keys.matches("s3creT", &digest));
        assert!(!keys.matches("s3cret", "not hex"));
        let other = Keys::derive(b"another cluster's secret......");
        assert!(
            !other.matches("s3cret", &digest),
            "a digest is useless without the cluster's key"
        );
    }

    #[test]
    fn the_express_password_is_checked_against_the_stored_passkey() {
        let keys = Keys::derive(b"a cluster secret of some length");
        let stored = keys.digest(SANDBOX_PASSKEY);
        // The reference's verified vector: 174379 + passkey + 20160216165627.
        let password = "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMTYwMjE2MTY1NjI3";
        assert!(keys.password_matches(password, "174379", "20160216165627", &stored));
        assert!(
            !keys.password_matches(password, "174379", "20160216165628", &stored),
            "the timestamp must be the one in the password"
        );
        assert!(!keys.password_matches(password, "600000", "20160216165627", &stored));
        assert!(!keys.password_matches("%%%", "174379", "20160216165627", &stored));
        let wrong = keys.digest("another passkey");
        assert!(!keys.password_matches(password, "174379", "20160216165627", &wrong));
    }

    #[test]
    fn tokens_name_their_business_expire_and_cannot_be_forged() {
        let keys = Keys::derive(b"a cluster secret of some length");
        let business = Shortcode::parse("174379").unwrap();
        let token = keys.issue_token(&business, 1_000 + TOKEN_LIFETIME_S);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(keys.verify_token(&token, 1_000), Some(business.clone()));
        assert_eq!(keys.verify_token(&token, 1_000 + TOKEN_LIFETIME_S), None);
        let other = Keys::derive(b"another cluster's secret......");
        assert_eq!(other.verify_token(&token, 1_000), None);
        // Another business's name over this token's tag does not verify.
        let forged = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(&token).unwrap())
                .unwrap()
                .replacen("174379", "600000", 1),
        );
        assert_eq!(keys.verify_token(&forged, 1_000), None);
        assert_eq!(keys.verify_token("", 1_000), None);
        assert_eq!(keys.verify_token(&"x".repeat(500), 1_000), None);
    }
}
