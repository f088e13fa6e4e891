//! HTTPS for the HTTP listener (rustls, ring): the node's certificate and key from files (the
//! key readable by its owner only), the CA a node or `tuma ctl` trusts when it calls a member,
//! and the local CA `tuma cluster up` makes for its nodes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// The HTTPS settings of a node (`--tls-cert`, `--tls-key`, `--tls-ca`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM: the node's certificate, then its chain.
    pub cert: PathBuf,
    /// PEM: the certificate's private key (mode 0600 or stricter).
    pub key: PathBuf,
}

/// Installs ring as the process's TLS crypto provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Refuses a secret file that others than its owner may read or write.
pub fn check_secret_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata =
        std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable or writable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// The listener's TLS configuration, checked now so a bad file stops the node at start.
pub async fn server_config(
    files: &TlsFiles,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    install_crypto_provider();
    check_secret_file(&files.key)?;
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
        .await
        .with_context(|| {
            format!(
                "loading the TLS certificate {} and key {}",
                files.cert.display(),
                files.key.display()
            )
        })
}

/// An HTTP client that also trusts the CA in `ca` (PEM), for calls to members.
pub fn client(ca: Option<&Path>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder.build()?)
}

/// The files of a local CA and the certificates it signed for `nodes` nodes on this machine.
pub struct LocalCa {
    pub ca_cert: PathBuf,
    pub nodes: Vec<TlsFiles>,
}

/// Makes (or reuses, if `dir` already holds them) a CA and one certificate per node, valid for
/// `localhost` and `127.0.0.1`, keys written mode 0600.
pub fn local_ca(dir: &Path, nodes: usize) -> anyhow::Result<LocalCa> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_cert = dir.join("ca.pem");
    let files: Vec<TlsFiles> = (1..=nodes)
        .map(|id| TlsFiles {
            cert: dir.join(format!("node-{id}.pem")),
            key: dir.join(format!("node-{id}.key")),
        })
        .collect();
    let present = ca_cert.exists() && files.iter().all(|f| f.cert.exists() && f.key.exists());
    if present {
        return Ok(LocalCa {
            ca_cert,
            nodes: files,
        });
    }
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tuma local cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::write(&ca_cert, ca.pem())?;
    for (i, file) in files.iter().enumerate() {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tuma node {}", i + 1));
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        std::fs::write(&file.cert, cert.pem())?;
        write_private(&file.key, key.serialize_pem().as_bytes())?;
    }
    Ok(LocalCa {
        ca_cert,
        nodes: files,
    })
}

/// Writes a file only its owner may read (mode 0600, also when it existed).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_ca_signs_node_certificates_and_keys_are_private() {
        let dir = std::env::temp_dir().join(format!("tuma-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let made = local_ca(&dir, 2).unwrap();
        assert_eq!(made.nodes.len(), 2);
        for node in &made.nodes {
            check_secret_file(&node.key).expect("keys are 0600");
        }
        let first = std::fs::read(&made.ca_cert).unwrap();
        let again = local_ca(&dir, 2).unwrap();
        assert_eq!(std::fs::read(again.ca_cert).unwrap(), first, "reused");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&made.nodes[0].key, std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let refused = check_secret_file(&made.nodes[0].key).unwrap_err();
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
