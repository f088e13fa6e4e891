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
    let manifest = &verified.image.manifest;
    if manifest.shards != shards {
        bail!(
            "the backup in {} has {} shards and this cluster {shards}: start it with --shards {}",
            dir.display(),
            manifest.shards,
            manifest.shards
        );
    }
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
