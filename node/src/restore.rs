//! `tuma node --restore DIR`: the image a new cluster's initial members bootstrap from — the
//! backup checked as `tuma ctl backup verify` checks it, each shard's state with the backup's
//! pause of new transfers lifted.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tuma_actors::tariff::Tariffs;
use tuma_actors::ShardMap;
use tuma_cluster::engine::{RestoreImage, RestoredShard};
use tuma_cluster::storage::LogStore;
use tuma_service::backup;

/// Names the secrets a cluster's data depends on — the cluster secret (business credentials
/// and admin keys are digested under it) and the PIN key — without revealing them: a backup
/// records it, and a restore refuses a node whose secrets would not verify the data's PINs and
/// keys.
pub fn secrets_fingerprint(cluster_secret: &[u8], pin_key_id: Option<u32>) -> String {
    use sha2::{Digest, Sha256};
    let key: [u8; 32] = Sha256::digest(cluster_secret).into();
    let digest = tuma_service::digest::KeyedDigest::new(key);
    let label = format!("tuma backup secrets; pin key {pin_key_id:?}");
    digest.digest(&label)[..16].to_string()
}

/// What a node's settings can be checked against before it starts (`--check-config`, and so
/// `tuma cluster restore` before it starts any node): the backup's format, its shard count and
/// the secrets its data needs.
pub fn check_manifest(dir: &Path, shards: u32, fingerprint: &str) -> anyhow::Result<()> {
    let path = dir.join(backup::MANIFEST_FILE);
    let text =
        std::fs::read(&path).with_context(|| format!("--restore: reading {}", path.display()))?;
    let manifest: backup::Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("--restore: {} is not a backup's manifest", path.display()))?;
    if manifest.format != backup::FORMAT {
        bail!(
            "--restore: {} is in format {:?}, this binary reads {:?}",
            path.display(),
            manifest.format,
            backup::FORMAT
        );
    }
    if manifest.shards != shards {
        bail!(
            "--restore: the backup in {} has {} shards and this cluster {shards}: start it with --shards {}",
            dir.display(),
            manifest.shards,
            manifest.shards
        );
    }
    if manifest
        .secrets_fingerprint
        .as_deref()
        .is_some_and(|theirs| theirs != fingerprint)
    {
        bail!(
            "--restore: the backup in {} was taken from a cluster with another cluster secret or PIN key: start the nodes with the backed-up cluster's --cluster-secret (and --pin-key-file), or no PIN and key in it will verify",
            dir.display()
        );
    }
    Ok(())
}

/// The image to bootstrap from, or `None` when the data directory already holds the cluster
/// (a restart after the restore).
pub fn image(
    dir: &Path,
    store: &dyn LogStore,
    shards: u32,
) -> anyhow::Result<Option<Arc<RestoreImage>>> {
    if !store.groups()?.is_empty() {
        tracing::info!(backup = %dir.display(), "the data directory holds the cluster already: --restore is not applied again");
        return Ok(None);
    }
    let tariffs = Arc::new(Tariffs::kenya_default());
    let verified = backup::verify(dir, tariffs.clone())
        .map_err(|problem| anyhow::anyhow!("the backup in {}: {problem}", dir.display()))?;
    let map = ShardMap::new(shards).context("a cluster shape")?;
    let mut image = RestoreImage {
        documents: verified.image.documents,
        ..RestoreImage::default()
    };
    for (shard, copy) in verified.image.shards {
        let mut ledger = backup::restore_ledger(shard, map, tariffs.clone(), &copy.state)
            .map_err(|problem| anyhow::anyhow!(problem))?;
        ledger.resume_intake();
        let state = bincode::serde::encode_to_vec(ledger.state(), bincode::config::standard())
            .context("encoding a shard's state")?;
        image.shards.insert(
            shard,
            RestoredShard {
                state,
                rows: copy.rows,
                audit_log: copy.audit_log,
            },
        );
    }
    tracing::info!(
        backup = %dir.display(),
        shards,
        accounts = verified.totals.accounts,
        e_money_issued = %verified.totals.e_money_issued,
        "starting a new cluster from a backup"
    );
    Ok(Some(Arc::new(image)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_names_both_secrets_and_reveals_neither() {
        let a = secrets_fingerprint(b"cluster-secret-one-0123456789abcdef", Some(7));
        assert_eq!(
            a,
            secrets_fingerprint(b"cluster-secret-one-0123456789abcdef", Some(7))
        );
        assert_ne!(
            a,
            secrets_fingerprint(b"cluster-secret-two-0123456789abcdef", Some(7))
        );
        assert_ne!(
            a,
            secrets_fingerprint(b"cluster-secret-one-0123456789abcdef", Some(8))
        );
        assert_eq!(a.len(), 16);
        assert!(!a.contains("cluster"));
    }
}
