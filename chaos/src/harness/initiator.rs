//! The paybill's payout credential in a chaos run: its initiator password encrypted under the
//! certificate the cluster publishes (`GET /daraja/v1/certificate`), as a Daraja client makes
//! its `SecurityCredential`.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use x509_cert::der::{DecodePem, Encode};

use super::cluster::ChaosCluster;

/// How long the certificate may take to come (a node derives its key at start).
const PATIENCE: Duration = Duration::from_secs(60);

/// `password` encrypted under the cluster's certificate, base64 (PKCS#1 v1.5).
pub async fn security_credential(cluster: &ChaosCluster, password: &str) -> Result<String, String> {
    let started = Instant::now();
    let mut n = 0;
    let pem = loop {
        n += 1;
        let url = cluster.url(1 + n % cluster.size());
        let answer = cluster
            .client
            .get(format!("{url}/daraja/v1/certificate"))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => break r.text().await.map_err(|e| e.to_string())?,
            _ if started.elapsed() > PATIENCE => {
                return Err("no node published the initiator certificate".into())
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    encrypt(&pem, password)
}

fn encrypt(certificate_pem: &str, password: &str) -> Result<String, String> {
    let certificate =
        x509_cert::Certificate::from_pem(certificate_pem).map_err(|e| e.to_string())?;
    let spki = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let public = RsaPublicKey::from_public_key_der(&spki).map_err(|e| e.to_string())?;
    let ciphertext = public
        .encrypt(&mut rand_core::OsRng, Pkcs1v15Encrypt, password.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(STANDARD.encode(ciphertext))
}
