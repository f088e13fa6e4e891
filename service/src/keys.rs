//! Scoped API keys for the admin API. Each key has a role (operator, care, auditor); the
//! cluster keeps the list — ids, roles, labels and keyed digests of the secrets, never the
//! secrets — as one document (`access/keys`) replicated through the meta group, so every node
//! checks a key against the same list and a revocation reaches every node within a second.
//! Changes are read-modify-writes over the version read, so two operators' changes never undo
//! each other. The key ring itself is pure; [`Service`] methods store it.
//!
//! A key is shown once, when created: `tk_<id>_<secret>` (id: 8 hex digits; secret: 32 random
//! bytes, URL-safe base64).

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::digest::KeyedDigest;
use crate::{unix_ms, Service, ServiceError};

/// The cluster document holding the key ring.
pub const KEYS_DOCUMENT: &str = "access/keys";
/// Most keys the ring holds (revoked ones included: they are never deleted).
pub const KEYS_MAX: usize = 500;
/// Longest label.
pub const KEY_LABEL_LEN_MAX: usize = 64;

/// What a key may do (the admin API's table of endpoints per role is in `node/src/http/access.rs`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// Members, float, registrations, business configuration, menus.
    Operator,
    /// PIN unlock and reset, reversals and reversal requests, statements, accounts.
    Care,
    /// Read-only: the money audit, accounts, history, cluster state, keys.
    Auditor,
}

impl KeyRole {
    pub const ALL: [KeyRole; 3] = [KeyRole::Operator, KeyRole::Care, KeyRole::Auditor];

    pub fn name(self) -> &'static str {
        match self {
            KeyRole::Operator => "operator",
            KeyRole::Care => "care",
            KeyRole::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<KeyRole> {
        KeyRole::ALL.into_iter().find(|r| r.name() == text)
    }
}

/// One key as the cluster keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub role: KeyRole,
    pub label: String,
    /// Keyed digest (hex) of the secret.
    pub digest: String,
    pub created_unix_ms: u64,
    /// Set once; a revoked key stays listed and never works again.
    pub revoked_unix_ms: Option<u64>,
}

impl KeyRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_unix_ms.is_none()
    }
}

/// Every key, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    pub keys: BTreeMap<String, KeyRecord>,
}

/// Why a key change was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key {0}")]
    Unknown(String),
    #[error("key {0} is already revoked")]
    Revoked(String),
    #[error("the cluster holds at most {KEYS_MAX} keys")]
    Full,
    #[error("a label is 1 to {KEY_LABEL_LEN_MAX} printable characters")]
    BadLabel,
    #[error("key id {0} is taken")]
    Taken(String),
}

impl KeyRing {
    /// Adds a key; `id` is fresh (the caller drew it).
    pub fn add(&mut self, record: KeyRecord) -> Result<(), KeyError> {
        let label_ok = !record.label.trim().is_empty()
            && record.label.chars().count() <= KEY_LABEL_LEN_MAX
            && !record.label.chars().any(char::is_control);
        if !label_ok {
            return Err(KeyError::BadLabel);
        }
        if self.keys.len() >= KEYS_MAX {
            return Err(KeyError::Full);
        }
        if self.keys.contains_key(&record.id) {
            return Err(KeyError::Taken(record.id));
        }
        self.keys.insert(record.id.clone(), record);
        Ok(())
    }

    pub fn revoke(&mut self, id: &str, now_unix_ms: u64) -> Result<&KeyRecord, KeyError> {
        let record = self
            .keys
            .get_mut(id)
            .ok_or_else(|| KeyError::Unknown(id.to_string()))?;
        if !record.is_active() {
            return Err(KeyError::Revoked(id.to_string()));
        }
        record.revoked_unix_ms = Some(now_unix_ms);
        Ok(record)
    }

    /// The active key `token` is, if it is one.
    pub fn check(&self, digester: &KeyDigester, token: &str) -> Option<&KeyRecord> {
        let (id, secret) = split_token(token)?;
        let record = self.keys.get(id).filter(|r| r.is_active())?;
        digester.matches(secret, &record.digest).then_some(record)
    }
}

/// `tk_<id>_<secret>` → (id, secret).
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("tk_")?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (id_ok && !secret.is_empty() && secret.len() <= 64).then_some((id, secret))
}

/// Keeps key secrets as keyed digests under a key derived from the cluster secret: the list in
/// the cluster document is useless without the secret.
#[derive(Clone, Debug)]
pub struct KeyDigester(KeyedDigest);

impl KeyDigester {
    pub fn derive(cluster_secret: &[u8]) -> KeyDigester {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"tuma-admin-keys-v1"), cluster_secret)
            .expand(b"admin key digests", &mut key)
            .expect("32 bytes is a valid HKDF output length");
        KeyDigester(KeyedDigest::new(key))
    }

    pub fn digest(&self, secret: &str) -> String {
        self.0.digest(secret)
    }

    pub fn matches(&self, secret: &str, digest_hex: &str) -> bool {
        self.0.matches(secret, digest_hex)
    }
}

/// A new key: its record and the token shown once.
pub struct NewKey {
    pub record: KeyRecord,
    pub token: String,
}

fn new_key(digester: &KeyDigester, role: KeyRole, label: &str, now_unix_ms: u64) -> NewKey {
    let mut id = [0u8; 4];
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut secret);
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewKey {
        token: format!("tk_{id}_{secret}"),
        record: KeyRecord {
            id,
            role,
            label: label.trim().to_string(),
            digest: digester.digest(&secret),
            created_unix_ms: now_unix_ms,
            revoked_unix_ms: None,
        },
    }
}

impl Service {
    /// The key ring as this node applied the cluster state, with its document version.
    pub async fn key_ring(&self) -> Result<(KeyRing, u64), ServiceError> {
        self.read_json_document(KEYS_DOCUMENT).await
    }

    /// Creates a key with `role`; answers it with its token (shown only now).
    pub async fn create_key(
        &self,
        digester: &KeyDigester,
        role: KeyRole,
        label: &str,
    ) -> Result<NewKey, ServiceError> {
        let key = new_key(digester, role, label, unix_ms());
        let record = key.record.clone();
        self.change_keys(|ring| ring.add(record.clone())).await?;
        Ok(key)
    }

    /// Revokes key `id` on every node; answers its record.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyRecord, ServiceError> {
        let now = unix_ms();
        let mut revoked = None;
        self.change_keys(|ring| {
            revoked = Some(ring.revoke(id, now)?.clone());
            Ok(())
        })
        .await?;
        Ok(revoked.expect("set by the change"))
    }

    /// A new key with the role and label of key `id`, which is revoked in the same change.
    pub async fn rotate_key(
        &self,
        digester: &KeyDigester,
        id: &str,
    ) -> Result<NewKey, ServiceError> {
        let now = unix_ms();
        let mut created = None;
        self.change_keys(|ring| {
            let old = ring.revoke(id, now)?.clone();
            let key = new_key(digester, old.role, &old.label, now);
            ring.add(key.record.clone())?;
            created = Some(key);
            Ok(())
        })
        .await?;
        Ok(created.expect("set by the change"))
    }

    async fn change_keys(
        &self,
        change: impl FnMut(&mut KeyRing) -> Result<(), KeyError>,
    ) -> Result<(), ServiceError> {
        self.change_json_document(KEYS_DOCUMENT, change, |e| match e {
            KeyError::Unknown(_) => ServiceError::NotFound(e.to_string()),
            KeyError::Revoked(_) | KeyError::Full | KeyError::Taken(_) => {
                ServiceError::Conflict(e.to_string())
            }
            KeyError::BadLabel => ServiceError::Invalid {
                field: "label",
                message: e.to_string(),
            },
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_works_until_it_is_revoked_and_its_secret_is_never_kept() {
        let digester = KeyDigester::derive(b"a cluster secret of some length");
        let mut ring = KeyRing::default();
        let key = new_key(&digester, KeyRole::Care, "desk 4", 1_000);
        ring.add(key.record.clone()).unwrap();
        let body = serde_json::to_string(&ring).unwrap();
        let secret = key.token.rsplit_once('_').unwrap().1;
        assert!(!body.contains(secret), "only the digest is stored");
        let ring: KeyRing = serde_json::from_str(&body).unwrap();
        assert_eq!(
            ring.check(&digester, &key.token).map(|r| r.role),
            Some(KeyRole::Care)
        );
        let other_cluster = KeyDigester::derive(b"another cluster secret entirely");
        assert!(ring.check(&other_cluster, &key.token).is_none());
        let mut forged = key.token.clone();
        forged.push('x');
        assert!(ring.check(&digester, &forged).is_none());
        for garbage in ["", "tk_", "tk_1234_x", "Bearer x", "tk_zzzzzzzz_abc"] {
            assert!(ring.check(&digester, garbage).is_none(), "{garbage}");
        }
        let mut ring = ring;
        ring.revoke(&key.record.id, 2_000).unwrap();
        assert!(ring.check(&digester, &key.token).is_none());
        assert_eq!(
            ring.revoke(&key.record.id, 3_000).unwrap_err(),
            KeyError::Revoked(key.record.id.clone())
        );
        assert_eq!(ring.keys.len(), 1, "revoked keys stay listed");
    }

    #[test]
    fn labels_and_the_ring_are_bounded() {
        let digester = KeyDigester::derive(b"a cluster secret of some length");
        let mut ring = KeyRing::default();
        let bad = new_key(&digester, KeyRole::Auditor, "", 1);
        assert_eq!(ring.add(bad.record).unwrap_err(), KeyError::BadLabel);
        for n in 0..KEYS_MAX {
            let mut key = new_key(&digester, KeyRole::Auditor, "a", 1).record;
            key.id = format!("{n:08x}");
            ring.add(key).unwrap();
        }
        let one_more = new_key(&digester, KeyRole::Auditor, "a", 1);
        assert_eq!(ring.add(one_more.record).unwrap_err(), KeyError::Full);
        let body = serde_json::to_string(&ring).unwrap();
        assert!(body.len() < tuma_cluster::membership::DOCUMENT_BYTES_MAX);
    }
}
