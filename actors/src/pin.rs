//! Customer PINs: four digits, a salted slow hash, lockout after five wrong
//! tries.
//!
//! A four-digit PIN has only 10,000 values, so the hash alone cannot protect
//! it against someone holding the database; what protects it is the slow
//! salted hash (no precomputed tables, every guess costs real work) together
//! with the replicated lockout counter (online guessing stops at five).
//!
//! Hashing is slow and random, so it happens at the edge: the edge verifies a
//! typed PIN against the stored hash and submits the verdict, and the ledger
//! applies it to [`PinState`] deterministically on every replica.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

/// Consecutive wrong PINs that lock an account until care unlocks or resets
/// it.
pub const PIN_MAX_ATTEMPTS: u8 = 5;

/// Digits in a PIN.
const PIN_LEN: usize = 4;
/// The PHC identifier of the only algorithm we store.
const ARGON2ID: &str = "argon2id";

/// Why a PIN, hash or hash configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// Not exactly four ASCII digits.
    #[error("PIN must be exactly 4 digits")]
    Format,
    /// Argon2 refused the memory or iteration cost.
    #[error("invalid PIN hash parameters: {0}")]
    BadParams(String),
    /// Not a PHC string of an argon2id hash with a salt.
    #[error("stored PIN hash is not an argon2id PHC string")]
    BadHash,
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

/// The stored PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of a PIN,
/// carrying its own salt and parameters so old hashes stay verifiable after
/// the parameters are raised.
///
/// Serialized as the PHC string; deserializing validates it like
/// [`PinHash::from_phc`]. `Debug` shows only the algorithm, so snapshots and
/// logs do not leak material for an offline guess.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PinHash(String);

impl PinHash {
    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts a stored PHC string if it is an argon2id hash with a salt and
    /// an output; anything else is [`PinError::BadHash`].
    pub fn from_phc(s: String) -> Result<PinHash, PinError> {
        let parsed = PasswordHash::new(&s).map_err(|_| PinError::BadHash)?;
        let complete = parsed.salt.is_some() && parsed.hash.is_some();
        if parsed.algorithm.as_str() != ARGON2ID || !complete {
            return Err(PinError::BadHash);
        }
        Params::try_from(&parsed).map_err(|_| PinError::BadHash)?;
        Ok(PinHash(s))
    }
}

impl fmt::Debug for PinHash {
    /// Redacted: names the algorithm only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinHash(argon2id…)")
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
    /// The PHC string; used by serde.
    fn from(hash: PinHash) -> String {
        hash.0
    }
}

/// Argon2id parameters for new PIN hashes; slow on purpose.
#[derive(Clone, Debug)]
pub struct PinHasher {
    /// Memory cost in KiB.
    memory_kib: u32,
    /// Passes over memory.
    iterations: u32,
    /// The validated argon2 parameters built from the two above (one lane).
    params: Params,
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
        })
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

    /// Hashes `pin` with a fresh random salt from the operating system, so
    /// two customers with the same PIN get different hashes.
    pub fn hash(&self, pin: &Pin) -> PinHash {
        let salt = SaltString::generate(&mut OsRng);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        // Cannot fail: the parameters were validated when the hasher was
        // built, and a generated salt and the default output length are
        // within argon2's limits.
        let phc = argon2
            .hash_password(pin.0.as_bytes(), &salt)
            .expect("argon2id with validated parameters and a generated salt")
            .to_string();
        PinHash(phc)
    }

    /// Whether `pin` is the PIN `hash` was made from. The parameters are read
    /// from the PHC string, not from `self`, so hashes made before a
    /// parameter change still verify. A malformed hash verifies false.
    pub fn verify(&self, hash: &PinHash, pin: &Pin) -> bool {
        let Ok(parsed) = PasswordHash::new(hash.as_str()) else {
            return false;
        };
        if parsed.algorithm.as_str() != ARGON2ID {
            return false;
        }
        Argon2::default()
            .verify_password(pin.0.as_bytes(), &parsed)
            .is_ok()
    }

    /// A hasher for parameters known to be valid.
    fn from_params(params: Params) -> PinHasher {
        PinHasher {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            params,
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

    #[test]
    fn pins_and_hashes_are_never_printed() {
        let p = pin("4711");
        assert_eq!(format!("{p:?}"), "****");
        assert_eq!(format!("{p}"), "****");
        let hash = PinHasher::fast_for_tests().hash(&p);
        let shown = format!("{hash:?} {:?}", PinState::new(hash.clone()));
        assert!(!shown.contains("4711"));
        assert!(!shown.contains(hash.as_str()));
        assert!(shown.contains("PinHash(argon2id…)"));
    }

    #[test]
    fn hash_then_verify() {
        let hasher = PinHasher::fast_for_tests();
        let hash = hasher.hash(&pin("1234"));
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(hasher.verify(&hash, &pin("1234")));
        assert!(!hasher.verify(&hash, &pin("1235")));
        assert!(!hasher.verify(&hash, &pin("0000")));
    }

    #[test]
    fn salts_make_equal_pins_hash_differently() {
        let hasher = PinHasher::fast_for_tests();
        let a = hasher.hash(&pin("0000"));
        let b = hasher.hash(&pin("0000"));
        assert_ne!(a, b);
        assert!(hasher.verify(&a, &pin("0000")) && hasher.verify(&b, &pin("0000")));
    }

    #[test]
    fn parameters_come_from_the_stored_hash() {
        let old = PinHasher::new(16, 2).unwrap().hash(&pin("2468"));
        assert!(PinHasher::fast_for_tests().verify(&old, &pin("2468")));
        assert!(PinHasher::owasp().verify(&old, &pin("2468")));
        assert!(!PinHasher::owasp().verify(&old, &pin("2469")));
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
        let good = PinHasher::fast_for_tests().hash(&pin("1357"));
        assert_eq!(
            PinHash::from_phc(good.as_str().to_string()),
            Ok(good.clone())
        );
        for bad in [
            "",
            "not a hash",
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=8,t=1,p=1",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$pbkdf2-sha256$i=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert_eq!(
                PinHash::from_phc(bad.to_string()),
                Err(PinError::BadHash),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(json, format!("\"{}\"", good.as_str()));
        assert_eq!(serde_json::from_str::<PinHash>(&json).unwrap(), good);
        assert!(serde_json::from_str::<PinHash>("\"plaintext\"").is_err());
    }

    #[test]
    fn malformed_hash_verifies_false() {
        let hasher = PinHasher::fast_for_tests();
        let mangled = PinHash("$argon2id$v=19$m=8,t=1,p=1$c2FsdA$####".to_string());
        assert!(!hasher.verify(&mangled, &pin("1234")));
        assert!(!hasher.verify(&PinHash(String::new()), &pin("1234")));
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
        assert!(hasher.verify(&s.hash, &pin("8080")));
        assert!(!hasher.verify(&s.hash, &pin("1234")));
    }

    #[test]
    fn state_round_trips_through_serde() {
        let mut s = state();
        s.record_failure();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<PinState>(&json).unwrap(), s);
    }
}
