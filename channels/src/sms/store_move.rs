//! Moving an SMS store an older build kept in sled into the LSM store, once, at open.
//!
//! The sled directory is first renamed aside (`sms` → `sms.sled-moving`), so the new store can
//! take its place; its trees are copied key for key (the same keys and values), synced, and only
//! then is the old directory renamed to `sms.sled-moved` and deleted. A crash at any point
//! repeats what was not finished: the copy again (it writes the same values), or the deletion.

use std::path::{Path, PathBuf};

use super::store::{SmsStore, StoreError};

fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "sms".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// sled 0.34 keeps a `conf` and a `db` file at the top of its directory.
fn holds_sled(dir: &Path) -> bool {
    dir.join("conf").is_file() && dir.join("db").is_file()
}

/// Finishes an interrupted deletion, and sets an older sled store in `dir` aside; answers where
/// a sled store waiting to be moved is, if any.
pub(super) fn set_aside_sled(dir: &Path) -> Result<Option<PathBuf>, StoreError> {
    let moving = beside(dir, "sled-moving");
    let moved = beside(dir, "sled-moved");
    if moved.exists() {
        std::fs::remove_dir_all(&moved)?;
    }
    if holds_sled(dir) && !moving.exists() {
        std::fs::rename(dir, &moving)?;
        tracing::info!(from = %dir.display(), "moving the SMS store out of sled");
    }
    Ok(moving.exists().then_some(moving))
}

/// Copies every tree of the sled store at `older` into `store` (in `dir`), syncs, and deletes
/// `older`.
pub(super) fn move_from_sled(store: &SmsStore, dir: &Path, older: &Path) -> Result<(), StoreError> {
    let sled = sled::Config::new()
        .path(older)
        .cache_capacity(8 << 20)
        .open()?;
    let trees = [
        ("spool", &store.spool),
        ("sent", &store.sent),
        ("sent_by_phone", &store.by_phone),
        ("reports", &store.reports),
        ("taken", &store.taken),
    ];
    let mut copied = 0usize;
    for (name, keyspace) in trees {
        for item in sled.open_tree(name)?.iter() {
            let (key, value) = item?;
            keyspace.insert(key.to_vec(), value.to_vec())?;
            copied += 1;
        }
    }
    // sled's ids are monotonic across its restarts; ours continue above them.
    store.reserve_ids(sled.generate_id()?)?;
    store.flush()?;
    drop(sled);
    let moved = beside(dir, "sled-moved");
    std::fs::rename(older, &moved)?;
    std::fs::remove_dir_all(&moved)?;
    tracing::info!(keys = copied, "SMS store moved out of sled");
    Ok(())
}
