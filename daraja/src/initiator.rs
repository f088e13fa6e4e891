//! Initiator credentials: Daraja's `SecurityCredential` is the initiator's password
//! RSA-encrypted (PKCS#1 v1.5) under the platform's certificate, base64-encoded. Clients
//! encrypt against the certificate `GET /daraja/v1/certificate` (and `tuma ctl daraja cert`)
//! publishes; the node decrypts it and compares the password's keyed digest with the one the
//! business's initiator is stored with.
//!
//! The RSA key is derived from the cluster secret (a ChaCha20 generator seeded through HKDF),
//! so every node holds the same key and publishes the same self-signed certificate with no
//! key file to distribute; it is as secret as the cluster secret, and changes with it.
//! Generating a 2048-bit key takes a moment, so a node starts it in the background when the
//! business API starts ([`InitiatorKey::derive`] is called once per process).

use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use sha2::Sha256;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::UtcTime;
use x509_cert::der::pem::LineEnding;
use x509_cert::der::EncodePem;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

/// The key's size in bits (Safaricom's certificates carry 2048-bit keys).
const KEY_BITS: usize = 2048;
/// Longest `SecurityCredential` accepted for decoding (a 2048-bit block is 344 base64 chars).
const CREDENTIAL_LEN_MAX: usize = 1_024;
/// Longest initiator password.
pub const PASSWORD_LEN_MAX: usize = 64;
/// The certificate's validity: fixed, so every node's certificate is byte for byte the same.
const VALID_FROM_UNIX_S: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const VALID_UNTIL_UNIX_S: u64 = 2_082_758_400; // 2036-01-01T00:00:00Z

/// The platform's initiator key and the certificate that publishes it.
pub struct InitiatorKey {
    key: RsaPrivateKey,
    certificate_pem: String,
}

impl std::fmt::Debug for InitiatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InitiatorKey(..)")
    }
}

/// Why an initiator key could not be made (never expected: the inputs are fixed).
#[derive(Debug, thiserror::Error)]
#[error("cannot make the initiator key: {0}")]
pub struct KeyError(String);

fn key_error(error: impl std::fmt::Display) -> KeyError {
    KeyError(error.to_string())
}

impl InitiatorKey {
    /// The key for a 32-byte seed derived from the cluster secret (see `credentials.rs`).
    pub fn derive(seed: [u8; 32]) -> Result<InitiatorKey, KeyError> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let key = RsaPrivateKey::new(&mut rng, KEY_BITS).map_err(key_error)?;
        let certificate_pem = self_signed_certificate(&key)?;
        Ok(InitiatorKey {
            key,
            certificate_pem,
        })
    }

    /// The certificate (PEM) clients encrypt initiator passwords with.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The password inside a `SecurityCredential`, if it is one encrypted under this key.
    pub fn password(&self, security_credential: &str) -> Option<String> {
        let credential = security_credential.trim();
        if credential.len() > CREDENTIAL_LEN_MAX {
            return None;
        }
        // Clients copy the value around; Daraja's own samples carry stray spaces.
        let compact: String = credential.chars().filter(|c| !c.is_whitespace()).collect();
        let ciphertext = STANDARD.decode(compact).ok()?;
        let plaintext = self.key.decrypt(Pkcs1v15Encrypt, &ciphertext).ok()?;
        let password = String::from_utf8(plaintext).ok()?;
        (!password.is_empty() && password.len() <= PASSWORD_LEN_MAX).then_some(password)
    }
}

fn self_signed_certificate(key: &RsaPrivateKey) -> Result<String, KeyError> {
    let at = |unix_s: u64| {
        UtcTime::from_unix_duration(Duration::from_secs(unix_s))
            .map(Time::UtcTime)
            .map_err(key_error)
    };
    let validity = Validity {
        not_before: at(VALID_FROM_UNIX_S)?,
        not_after: at(VALID_UNTIL_UNIX_S)?,
    };
    let subject =
        Name::from_str("CN=Tuma business API initiator credentials,O=Tuma").map_err(key_error)?;
    let public = SubjectPublicKeyInfoOwned::from_key(key.to_public_key()).map_err(key_error)?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let builder = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(1u32),
        validity,
        subject,
        public,
        &signer,
    )
    .map_err(key_error)?;
    let certificate = builder.build::<Signature>().map_err(key_error)?;
    certificate.to_pem(LineEnding::LF).map_err(key_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::RsaPublicKey;
    use x509_cert::der::DecodePem;
    use x509_cert::Certificate;

    /// What a Daraja client does: the public key out of the certificate, PKCS#1 v1.5, base64.
    fn encrypt_as_a_client(certificate_pem: &str, password: &str) -> String {
        let certificate = Certificate::from_pem(certificate_pem).expect("a PEM certificate");
        let spki = certificate.tbs_certificate.subject_public_key_info;
        let der = x509_cert::der::Encode::to_der(&spki).unwrap();
        let public = <RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_der(&der)
            .expect("an RSA key");
        let mut rng = rand_core::OsRng;
        let ciphertext = public
            .encrypt(&mut rng, Pkcs1v15Encrypt, password.as_bytes())
            .unwrap();
        STANDARD.encode(ciphertext)
    }

    #[test]
    fn a_password_encrypted_under_the_published_certificate_is_read_back() {
        let key = InitiatorKey::derive([7; 32]).unwrap();
        assert!(key
            .certificate_pem()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let credential = encrypt_as_a_client(key.certificate_pem(), "Safaricom999!*!");
        assert_eq!(
            key.password(&credential).as_deref(),
            Some("Safaricom999!*!")
        );
        let spaced = format!("{} {}", &credential[..10], &credential[10..]);
        assert_eq!(key.password(&spaced).as_deref(), Some("Safaricom999!*!"));
        assert_eq!(key.password("not base64 %%%"), None);
        assert_eq!(key.password(&STANDARD.encode([1u8; 256])), None);
        assert_eq!(key.password(&"A".repeat(5_000)), None);
        // The same seed makes the same key and certificate on every node.
        let again = InitiatorKey::derive([7; 32]).unwrap();
        assert_eq!(again.certificate_pem(), key.certificate_pem());
        let other = InitiatorKey::derive([8; 32]).unwrap();
        assert_eq!(other.password(&credential), None, "another cluster's key");
    }
}
