//! Customer PINs: four digits, a salted digest, lockout after five wrong tries.
//!
//! A four-digit PIN has only 10,000 values, so no hash, however slow, protects it against
//! someone holding the database: 10,000 guesses of even a 50 ms argon2id take minutes. What
//! protects it is a **key the database does not hold** — the way banks encrypt PIN blocks under
//! an HSM key — together with the replicated lockout counter (online guessing stops at five).
//! New PINs are therefore stored as HMAC-SHA-256 digests under a cluster-wide [`PinKey`] (kept
//! outside the data directory), salted per PIN, verified in microseconds. argon2id hashes (PHC
//! strings, e.g. from an import) still verify, with the parameters they carry.
//!
//! The digest names its key by a 32-bit id; a node configured with another key refuses to
//! judge (`PinError::KeyMismatch`) instead of counting a wrong PIN, so a misconfigured node
//! cannot lock customers out.
//!
//! Hashing happens at the edge: the edge verifies a typed PIN against the stored digest and
//! submits the verdict, and the ledger applies it to [`PinState`] deterministically on every
//! replica.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Consecutive wrong PINs that lock an account until care unlocks or resets
/// it.
pub const PIN_MAX_ATTEMPTS: u8 = 5;

/// Digits in a PIN.
const PIN_LEN: usize = 4;
/// The PHC identifier of argon2id hashes.
const ARGON2ID: &str = "argon2id";
/// The identifier of keyed digests: `$tuma-hmac-sha256$v=1,k=<key id, 8 hex>$<salt, 32 hex>$<mac, 64 hex>`.
const KEYED: &str = "tuma-hmac-sha256";

/// Why a PIN, hash or hash configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not exactly four ASCII digits.
    #[error("PIN must be exactly 4 digits")]
    Format,
    /// Argon2 refused the memory or iteration cost.
    #[error("invalid PIN hash parameters: {0}")]
    BadParams(String),
    /// Neither an argon2id PHC string with a salt nor a keyed digest.
    #[error("stored PIN hash is neither an argon2id PHC string nor a keyed digest")]
    BadHash,
    /// The digest was made under another PIN key than this node's (or this node has none):
    /// the node cannot judge the PIN and must not count it wrong.
    #[error("the PIN digest was made with key {stored:08x}; this node's PIN key is {configured}")]
    KeyMismatch { stored: u32, configured: String },
}

/// A four-digit PIN as typed.
///
/// `Debug` and `Display` print `****` so a PIN can never reach a log, and it
/// is deliberately not `Serialize`: it exists only between the keypad and
/// [`PinHasher`].
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    /// Exactly four ASCII digits, nothing around them (a PIN with a stray
    /// space is a typing error to report, not to repair); else
    /// [`PinError::Format`].
    pub fn parse(text: &str) -> Result<Pin, PinError> {
        if text.len() == PIN_LEN && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Pin(text.to_string()))
        } else {
            Err(PinError::Format)
        }
    }

    /// The digits, to carry the PIN to the node that verifies it (the payer shard's leader,
    /// which may be another node). Never log or store them.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    /// Redacted: a PIN is never logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Pin {
    /// Redacted: a PIN is never logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// The secret key of keyed PIN digests, the same on every node. `Debug` shows only its id.
#[derive(Clone)]
pub struct PinKey {
    key: Arc<[u8; 32]>,
    id: u32,
}

impl PinKey {
    /// Derives the key from secret material (a key file's contents, or the cluster secret)
    /// with HKDF-SHA-256, so any length of secret gives a full-strength key.
    pub fn derive(secret: &[u8]) -> PinKey {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(b"tuma pin key"), secret)
            .expand(b"v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        let fingerprint = Sha256::digest([b"tuma pin key id".as_slice(), &key].concat());
        let id = u32::from_be_bytes(fingerprint[..4].try_into().expect("4 bytes"));
        PinKey {
            key: Arc::new(key),
            id,
        }
    }

    /// The key's public id (a fingerprint), stored in every digest made with it.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn mac(&self, salt: &[u8; 16], pin: &Pin) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes a key of any length");
        mac.update(salt);
        mac.update(pin.0.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for PinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinKey({:08x})", self.id)
    }
}

/// A stored PIN: a keyed digest, or an argon2id PHC string
/// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) carrying its own salt and parameters so old hashes
/// stay verifiable after the parameters are raised.
///
/// Serialized as its string form; deserializing validates it like [`PinHash::from_phc`].
/// `Debug` shows only the scheme, so snapshots and logs do not leak material for a guess.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PinHash(Stored);

#[derive(Clone, PartialEq, Eq)]
enum Stored {
    Argon2(Box<str>),
    /// Held as bytes: 52 bytes inline instead of a heap string per account.
    Keyed {
        key_id: u32,
        salt: [u8; 16],
        mac: [u8; 32],
    },
}

/// Appends `bytes` as lowercase hex. Every checkpoint writes every account's PIN digest in
/// this form: a `format!` per byte made encoding a million accounts' checkpoint take seconds.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl PinHash {
    /// The string form, for storage and exports.
    pub fn to_phc(&self) -> String {
        match &self.0 {
            Stored::Argon2(phc) => phc.to_string(),
            Stored::Keyed { key_id, salt, mac } => {
                let mut phc = String::with_capacity(KEYED.len() + 16 + 2 * (4 + 16 + 32));
                phc.push('$');
                phc.push_str(KEYED);
                phc.push_str("$v=1,k=");
                push_hex(&mut phc, &key_id.to_be_bytes());
                phc.push('$');
                push_hex(&mut phc, salt);
                phc.push('$');
                push_hex(&mut phc, mac);
                phc
            }
        }
    }

    /// Accepts an argon2id PHC string with a salt and an output, or a keyed digest; anything
    /// else is [`PinError::BadHash`].
    pub fn from_phc(s: String) -> Result<PinHash, PinError> {
        if let Some(rest) = s.strip_prefix(&format!("${KEYED}$")) {
            let parts: Vec<&str> = rest.split('$').collect();
            let [params, salt, mac] = parts[..] else {
                return Err(PinError::BadHash);
            };
            let key_id = params
                .strip_prefix("v=1,k=")
                .and_then(unhex::<4>)
                .map(u32::from_be_bytes)
                .ok_or(PinError::BadHash)?;
            let salt = unhex::<16>(salt).ok_or(PinError::BadHash)?;
            let mac = unhex::<32>(mac).ok_or(PinError::BadHash)?;
            return Ok(PinHash(Stored::Keyed { key_id, salt, mac }));
        }
        let parsed = PasswordHash::new(&s).map_err(|_| PinError::BadHash)?;
        let complete = parsed.salt.is_some() && parsed.hash.is_some();
        if parsed.algorithm.as_str() != ARGON2ID || !complete {
            return Err(PinError::BadHash);
        }
        Params::try_from(&parsed).map_err(|_| PinError::BadHash)?;
        Ok(PinHash(Stored::Argon2(s.into_boxed_str())))
    }

    /// The key a keyed digest was made with.
    pub fn key_id(&self) -> Option<u32> {
        match &self.0 {
            Stored::Keyed { key_id, .. } => Some(*key_id),
            Stored::Argon2(_) => None,
        }
    }
}

impl fmt::Debug for PinHash {
    /// Redacted: names the scheme only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Stored::Argon2(_) => f.write_str("PinHash(argon2id…)"),
            Stored::Keyed { key_id, .. } => write!(f, "PinHash(keyed {key_id:08x}…)"),
        }
    }
}

impl TryFrom<String> for PinHash {
    type Error = PinError;

    /// Same as [`PinHash::from_phc`]; used by serde.
    fn try_from(s: String) -> Result<PinHash, PinError> {
        PinHash::from_phc(s)
    }
}

impl From<PinHash> for String {
    /// The string form; used by serde.
    fn from(hash: PinHash) -> String {
        hash.to_phc()
    }
}

/// Makes and verifies PIN digests: keyed digests when it has a [`PinKey`] (see
/// [`PinHasher::keyed`]), argon2id hashes with its parameters otherwise.
#[derive(Clone, Debug)]
pub struct PinHasher {
    /// Memory cost in KiB of new argon2id hashes.
    memory_kib: u32,
    /// Passes over memory.
    iterations: u32,
    /// The validated argon2 parameters built from the two above (one lane).
    params: Params,
    /// Verifies keyed digests; also makes new PINs keyed when `keyed_new` is set.
    key: Option<PinKey>,
    keyed_new: bool,
}

/// m = 8 KiB (the least argon2 allows for one lane), t = 1: for tests only.
const FAST_PARAMS: Params = match Params::new(Params::MIN_M_COST, Params::MIN_T_COST, 1, None) {
    Ok(params) => params,
    Err(_) => panic!("argon2's own minimum parameters are valid"),
};

impl PinHasher {
    /// A hasher with `memory_kib` KiB and `iterations` passes, one lane;
    /// [`PinError::BadParams`] if argon2 refuses them.
    pub fn new(memory_kib: u32, iterations: u32) -> Result<PinHasher, PinError> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| PinError::BadParams(e.to_string()))?;
        Ok(PinHasher {
            memory_kib,
            iterations,
            params,
            key: None,
            keyed_new: false,
        })
    }

    /// This hasher with `key`: it verifies keyed digests made with it and, when `new_pins` is
    /// set, stores new PINs as keyed digests.
    pub fn keyed(mut self, key: PinKey, new_pins: bool) -> PinHasher {
        self.key = Some(key);
        self.keyed_new = new_pins;
        self
    }

    /// Whether new PINs become keyed digests.
    pub fn makes_keyed(&self) -> bool {
        self.keyed_new && self.key.is_some()
    }

    /// The id of this hasher's PIN key, if it has one.
    pub fn key_id(&self) -> Option<u32> {
        self.key.as_ref().map(PinKey::id)
    }

    /// OWASP's argon2id recommendation, m = 19,456 KiB, t = 2, p = 1: the
    /// production default.
    pub fn owasp() -> PinHasher {
        PinHasher::from_params(Params::DEFAULT)
    }

    /// The cheapest parameters argon2 allows (m = 8 KiB, t = 1): for tests
    /// and simulations that hash thousands of PINs, never for production.
    pub fn fast_for_tests() -> PinHasher {
        PinHasher::from_params(FAST_PARAMS)
    }

    /// Memory cost in KiB, for operators checking the configuration.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Iterations, for operators checking the configuration.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Hashes `pin` with a fresh random salt from the operating system, so two customers with
    /// the same PIN get different digests.
    pub fn hash(&self, pin: &Pin) -> PinHash {
        if let (true, Some(key)) = (self.keyed_new, &self.key) {
            let mut salt = [0u8; 16];
            OsRng.fill_bytes(&mut salt);
            let mac = key.mac(&salt, pin);
            return PinHash(Stored::Keyed {
                key_id: key.id(),
                salt,
                mac,
            });
        }
        let salt = SaltString::generate(&mut OsRng);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        // Cannot fail: the parameters were validated when the hasher was
        // built, and a generated salt and the default output length are
        // within argon2's limits.
        let phc = argon2
            .hash_password(pin.0.as_bytes(), &salt)
            .expect("argon2id with validated parameters and a generated salt")
            .to_string();
        PinHash(Stored::Argon2(phc.into_boxed_str()))
    }

    /// A keyed digest of `pin` with the given salt, or `None` for a hasher without a key. For
    /// simulations, whose runs must not depend on the OS's randomness; a real PIN always gets
    /// a fresh random salt ([`PinHasher::hash`]).
    pub fn keyed_with_salt(&self, pin: &Pin, salt: [u8; 16]) -> Option<PinHash> {
        let key = self.key.as_ref()?;
        Some(PinHash(Stored::Keyed {
            key_id: key.id(),
            salt,
            mac: key.mac(&salt, pin),
        }))
    }

    /// Whether `pin` is the PIN `hash` was made from. argon2id parameters are read from the
    /// hash, not from `self`, so hashes made before a parameter change still verify; a
    /// malformed argon2 hash verifies false. A keyed digest made under another key than this
    /// hasher's is [`PinError::KeyMismatch`]: not a wrong PIN, a misconfigured node.
    pub fn verify(&self, hash: &PinHash, pin: &Pin) -> Result<bool, PinError> {
        match &hash.0 {
            Stored::Keyed { key_id, salt, mac } => match &self.key {
                Some(key) if key.id() == *key_id => {
                    let expected = key.mac(salt, pin);
                    // Constant time: no early exit on the first differing byte.
                    let diff = expected
                        .iter()
                        .zip(mac)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
                    Ok(diff == 0)
                }
                other => Err(PinError::KeyMismatch {
                    stored: *key_id,
                    configured: other
                        .as_ref()
                        .map_or("not set".into(), |k| format!("{:08x}", k.id())),
                }),
            },
            Stored::Argon2(phc) => {
                let Ok(parsed) = PasswordHash::new(phc) else {
                    return Ok(false);
                };
                if parsed.algorithm.as_str() != ARGON2ID {
                    return Ok(false);
                }
                Ok(Argon2::default()
                    .verify_password(pin.0.as_bytes(), &parsed)
                    .is_ok())
            }
        }
    }

    /// A hasher for parameters known to be valid.
    fn from_params(params: Params) -> PinHasher {
        PinHasher {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            params,
            key: None,
            keyed_new: false,
        }
    }
}

/// Replicated PIN state of one account.
///
/// The ledger applies verdicts computed at the edge (hashing is slow and
/// random; applying a verdict is deterministic), so every replica agrees on
/// the counter and the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinState {
    /// Hash of the current PIN.
    pub hash: PinHash,
    /// Consecutive wrong PINs since the last success, unlock or reset;
    /// never above [`PIN_MAX_ATTEMPTS`].
    pub failed_attempts: u8,
    /// Set by the [`PIN_MAX_ATTEMPTS`]-th consecutive failure; only
    /// [`PinState::unlock`] or [`PinState::reset`] clear it.
    pub locked: bool,
}

impl PinState {
    /// A fresh, unlocked state for a newly set PIN.
    pub fn new(hash: PinHash) -> PinState {
        PinState {
            hash,
            failed_attempts: 0,
            locked: false,
        }
    }

    /// Counts a wrong PIN; the [`PIN_MAX_ATTEMPTS`]-th consecutive failure
    /// locks. Returns whether the account is now locked. A locked state stays
    /// locked and its counter saturates at the maximum.
    pub fn record_failure(&mut self) -> bool {
        self.failed_attempts = self.failed_attempts.saturating_add(1).min(PIN_MAX_ATTEMPTS);
        if self.failed_attempts >= PIN_MAX_ATTEMPTS {
            self.locked = true;
        }
        self.locked
    }

    /// A correct PIN resets the counter. Ignored while locked: a locked
    /// account does not accept PINs at all, so a success cannot unlock it.
    pub fn record_success(&mut self) {
        if !self.locked {
            self.failed_attempts = 0;
        }
    }

    /// Customer care unlock after identity checks: clears the lock and the
    /// counter and keeps the PIN.
    pub fn unlock(&mut self) {
        self.locked = false;
        self.failed_attempts = 0;
    }

    /// Care or self-service reset to a new (start) PIN: replaces the hash and
    /// clears the lock and the counter.
    pub fn reset(&mut self, new_hash: PinHash) {
        self.hash = new_hash;
        self.unlock();
    }

    /// Wrong PINs left before lockout, for "you have N attempts remaining".
    pub fn attempts_left(&self) -> u8 {
        if self.locked {
            0
        } else {
            PIN_MAX_ATTEMPTS.saturating_sub(self.failed_attempts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_digests_keep_their_stored_form() {
        // The form checkpoints and exports have always held (once written with a `format!` per
        // byte): a change here would make every stored PIN unreadable.
        let (key_id, salt, mac) = (0x0a1b_2c3du32, [0xf0u8; 16], [0x09u8; 32]);
        let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let expected = format!("${KEYED}$v=1,k={key_id:08x}${}${}", hex(&salt), hex(&mac));
        let hash = PinHash(Stored::Keyed { key_id, salt, mac });
        assert_eq!(hash.to_phc(), expected);
        assert_eq!(PinHash::from_phc(expected).unwrap(), hash);
    }

    fn pin(text: &str) -> Pin {
        Pin::parse(text).unwrap()
    }

    fn state() -> PinState {
        PinState::new(PinHasher::fast_for_tests().hash(&pin("1234")))
    }

    #[test]
    fn format_edge_cases() {
        for bad in [
            "", "123", "12345", "12a4", " 1234", "1234 ", "12 4", "-123", "١٢٣٤", "1234\n",
        ] {
            assert_eq!(Pin::parse(bad), Err(PinError::Format), "{bad:?}");
        }
        for good in ["0000", "1234", "9999", "0420"] {
            assert!(Pin::parse(good).is_ok(), "{good:?}");
        }
    }

    fn keyed() -> PinHasher {
        PinHasher::fast_for_tests().keyed(PinKey::derive(b"a cluster secret of the tests"), true)
    }

    #[test]
    fn pins_and_hashes_are_never_printed() {
        let p = pin("4711");
        assert_eq!(format!("{p:?}"), "****");
        assert_eq!(format!("{p}"), "****");
        let keyed = keyed();
        let keyed_name = format!("PinHash(keyed {:08x}…)", keyed.key_id().unwrap());
        for (hasher, name) in [
            (
                PinHasher::fast_for_tests(),
                "PinHash(argon2id…)".to_string(),
            ),
            (keyed, keyed_name),
        ] {
            let hash = hasher.hash(&p);
            let shown = format!("{hash:?} {:?} {hasher:?}", PinState::new(hash.clone()));
            assert!(!shown.contains("4711"));
            assert!(!shown.contains(&hash.to_phc()));
            assert!(shown.contains(&name), "{shown}");
        }
    }

    #[test]
    fn hash_then_verify() {
        let hasher = PinHasher::fast_for_tests();
        let hash = hasher.hash(&pin("1234"));
        assert!(hash.to_phc().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert_eq!(hasher.verify(&hash, &pin("1234")), Ok(true));
        assert_eq!(hasher.verify(&hash, &pin("1235")), Ok(false));
        assert_eq!(hasher.verify(&hash, &pin("0000")), Ok(false));
    }

    #[test]
    fn keyed_digests_verify_under_their_key_only() {
        let hasher = keyed();
        assert!(hasher.makes_keyed());
        let hash = hasher.hash(&pin("1234"));
        let key_id = hasher.key_id().unwrap();
        assert_eq!(hash.key_id(), Some(key_id));
        assert!(hash
            .to_phc()
            .starts_with(&format!("$tuma-hmac-sha256$v=1,k={key_id:08x}$")));
        assert_eq!(hasher.verify(&hash, &pin("1234")), Ok(true));
        assert_eq!(hasher.verify(&hash, &pin("1235")), Ok(false));
        // The same PIN twice gives two digests (salted); both verify.
        let again = hasher.hash(&pin("1234"));
        assert_ne!(hash, again);
        assert_eq!(hasher.verify(&again, &pin("1234")), Ok(true));
        // Another key, or none, refuses to judge rather than counting a wrong PIN.
        let other = PinHasher::fast_for_tests().keyed(PinKey::derive(b"another secret"), true);
        assert!(matches!(
            other.verify(&hash, &pin("1234")),
            Err(PinError::KeyMismatch { stored, .. }) if stored == key_id
        ));
        assert!(matches!(
            PinHasher::owasp().verify(&hash, &pin("1234")),
            Err(PinError::KeyMismatch { .. })
        ));
        // A keyed hasher still verifies argon2id hashes (imports), and can keep making them.
        let old = PinHasher::fast_for_tests().hash(&pin("2468"));
        assert_eq!(hasher.verify(&old, &pin("2468")), Ok(true));
        let argon_new = PinHasher::fast_for_tests().keyed(PinKey::derive(b"k"), false);
        assert!(!argon_new.makes_keyed());
        assert!(argon_new.hash(&pin("1111")).key_id().is_none());
        // The key is derived, not the secret itself, and its id is stable.
        assert_eq!(PinKey::derive(b"same").id(), PinKey::derive(b"same").id());
        assert_ne!(PinKey::derive(b"same").id(), PinKey::derive(b"Same").id());
    }

    #[test]
    fn salts_make_equal_pins_hash_differently() {
        let hasher = PinHasher::fast_for_tests();
        let a = hasher.hash(&pin("0000"));
        let b = hasher.hash(&pin("0000"));
        assert_ne!(a, b);
        assert_eq!(hasher.verify(&a, &pin("0000")), Ok(true));
        assert_eq!(hasher.verify(&b, &pin("0000")), Ok(true));
    }

    #[test]
    fn parameters_come_from_the_stored_hash() {
        let old = PinHasher::new(16, 2).unwrap().hash(&pin("2468"));
        assert_eq!(
            PinHasher::fast_for_tests().verify(&old, &pin("2468")),
            Ok(true)
        );
        assert_eq!(PinHasher::owasp().verify(&old, &pin("2468")), Ok(true));
        assert_eq!(PinHasher::owasp().verify(&old, &pin("2469")), Ok(false));
    }

    #[test]
    fn hasher_parameters() {
        let owasp = PinHasher::owasp();
        assert_eq!((owasp.memory_kib(), owasp.iterations()), (19_456, 2));
        assert_eq!(owasp.params.p_cost(), 1);
        let fast = PinHasher::fast_for_tests();
        assert_eq!((fast.memory_kib(), fast.iterations()), (8, 1));
        assert!(matches!(PinHasher::new(1, 1), Err(PinError::BadParams(_))));
        assert!(matches!(PinHasher::new(64, 0), Err(PinError::BadParams(_))));
        assert!(PinHasher::new(64, 3).is_ok());
    }

    #[test]
    fn stored_hashes_are_validated() {
        for good in [
            PinHasher::fast_for_tests().hash(&pin("1357")),
            keyed().hash(&pin("1357")),
        ] {
            assert_eq!(PinHash::from_phc(good.to_phc()), Ok(good.clone()));
            let json = serde_json::to_string(&good).unwrap();
            assert_eq!(json, format!("\"{}\"", good.to_phc()));
            assert_eq!(serde_json::from_str::<PinHash>(&json).unwrap(), good);
        }
        let salt = "00".repeat(16);
        let mac = "ab".repeat(32);
        for bad in [
            "".to_string(),
            "not a hash".into(),
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            "$argon2id$v=19$m=8,t=1,p=1".into(),
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ".into(),
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            "$pbkdf2-sha256$i=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
            format!("$tuma-hmac-sha256$v=2,k=01020304${salt}${mac}"),
            format!("$tuma-hmac-sha256$v=1,k=0102030${salt}${mac}"),
            format!("$tuma-hmac-sha256$v=1,k=01020304${salt}$ab"),
            format!("$tuma-hmac-sha256$v=1,k=01020304$zz{}${mac}", &salt[2..]),
            format!("$tuma-hmac-sha256$v=1,k=01020304${salt}${mac}$extra"),
        ] {
            assert_eq!(
                PinHash::from_phc(bad.clone()),
                Err(PinError::BadHash),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<PinHash>("\"plaintext\"").is_err());
    }

    #[test]
    fn malformed_hash_verifies_false() {
        let hasher = PinHasher::fast_for_tests();
        let mangled = PinHash(Stored::Argon2(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$####".into(),
        ));
        assert_eq!(hasher.verify(&mangled, &pin("1234")), Ok(false));
        let empty = PinHash(Stored::Argon2("".into()));
        assert_eq!(hasher.verify(&empty, &pin("1234")), Ok(false));
    }

    #[test]
    fn lockout_at_exactly_the_fifth_failure() {
        let mut s = state();
        for attempt in 1..PIN_MAX_ATTEMPTS {
            assert!(!s.record_failure(), "locked after {attempt}");
            assert_eq!(s.failed_attempts, attempt);
            assert_eq!(s.attempts_left(), PIN_MAX_ATTEMPTS - attempt);
        }
        assert!(s.record_failure());
        assert!(s.locked);
        assert_eq!(s.attempts_left(), 0);
        // Stays locked; the counter saturates; a success does not unlock.
        for _ in 0..300 {
            assert!(s.record_failure());
        }
        assert_eq!(s.failed_attempts, PIN_MAX_ATTEMPTS);
        s.record_success();
        assert!(s.locked);
        assert_eq!(s.failed_attempts, PIN_MAX_ATTEMPTS);
    }

    #[test]
    fn success_resets_the_counter() {
        let mut s = state();
        for _ in 0..PIN_MAX_ATTEMPTS - 1 {
            s.record_failure();
        }
        s.record_success();
        assert_eq!(s.failed_attempts, 0);
        for _ in 0..PIN_MAX_ATTEMPTS - 1 {
            assert!(!s.record_failure());
        }
        assert!(s.record_failure());
    }

    #[test]
    fn unlock_keeps_the_pin_and_reset_replaces_it() {
        let hasher = PinHasher::fast_for_tests();
        let mut s = state();
        let original = s.hash.clone();
        for _ in 0..PIN_MAX_ATTEMPTS {
            s.record_failure();
        }
        s.unlock();
        assert_eq!(s, PinState::new(original.clone()));
        for _ in 0..PIN_MAX_ATTEMPTS {
            s.record_failure();
        }
        let start_pin = hasher.hash(&pin("8080"));
        s.reset(start_pin.clone());
        assert_eq!(s, PinState::new(start_pin));
        assert_eq!(hasher.verify(&s.hash, &pin("8080")), Ok(true));
        assert_eq!(hasher.verify(&s.hash, &pin("1234")), Ok(false));
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut s = state();
        s.record_failure();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PinState>(&json).unwrap(), s);
    }
}
