//! Opening the store on sled: the main database, `DATA_DIR/store/`, and
//! the spool that holds outgoing bodies, `DATA_DIR/store-spool/`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Db, Opened, StoreError, Trees};

/// How long an open waits for sled's file lock when this process itself
/// had the directory open: sled's I/O threads let go of the lock a moment
/// after the last handle is dropped, so an immediate reopen (a restart of
/// the store after a failure, tests) can find it still held. A lock held by
/// another process fails at once (`edesk` commands then ask the daemon).
const OWN_LOCK_WAIT: Duration = Duration::from_secs(5);

/// sled directories this process has opened.
fn opened_here() -> &'static Mutex<HashSet<PathBuf>> {
    static OPENED: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    OPENED.get_or_init(|| Mutex::new(HashSet::new()))
}

pub(super) fn open_sled(path: &Path, cache_bytes: u64) -> Result<Opened, StoreError> {
    let deadline = Instant::now() + OWN_LOCK_WAIT;
    loop {
        match open_sled_once(path, cache_bytes) {
            Err(StoreError::Locked(p))
                if Instant::now() < deadline
                    && opened_here()
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(path) =>
            {
                tracing::debug!(path = %p, "sled still releasing its lock; waiting");
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(o) => {
                opened_here()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(path.to_path_buf());
                return Ok(o);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where sled keeps outgoing bodies: `DATA_DIR/store-spool/`, beside the
/// main database `DATA_DIR/store/`.
pub(in crate::store) fn spool_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push("-spool");
    path.with_file_name(name)
}

/// Opens the main database and the spool.
///
/// Outgoing bodies (several KB each, removed once sent) live in a sled
/// database of their own. Mixed into the main log with long-lived records,
/// they left segments sled never reclaimed: 17.3 KB on disk per order
/// against 2.2 KB of data (`bench scale --orders 100000`). Alone, their
/// segments empty and are reused, and the main log holds little garbage.
fn open_sled_once(path: &Path, cache_bytes: u64) -> Result<Opened, StoreError> {
    // The main database first: when another process holds it, the error
    // names the directory operators know.
    let db = open_sled_db(path, cache_bytes, MAIN_SEGMENT)?;
    // The spool's working set is the pending mail: a small cache suffices.
    let spool = open_sled_db(
        &spool_path(path),
        (cache_bytes / 8).max(4 << 20),
        SPOOL_SEGMENT,
    )?;
    let free = path.parent().and_then(|d| fs2::available_space(d).ok());
    let bodies = if move_bodies_to_spool(&db, &spool, free)? {
        &spool
    } else {
        &db
    };
    let trees = Arc::new(Trees::sled(&db, bodies)?);
    Ok(Opened {
        db: Db::Sled(db, spool),
        write: trees.clone(),
        read: trees,
    })
}

/// sled's default log segment, for the main database (smaller ones keep
/// less garbage but slowed the import: see the README).
const MAIN_SEGMENT: usize = 512 << 10;

/// The spool's log segment. sled zeroes the rest of its last segment when
/// it opens a database, so each one needs up to a segment of free space
/// to start: a daemon restarted on an almost full disk must still come up
/// (degraded), and two default segments did not fit in the last MiB. A
/// body over a quarter of a segment (32 KiB) is a file of its own.
pub(in crate::store) const SPOOL_SEGMENT: usize = 128 << 10;

fn open_sled_db(path: &Path, cache_bytes: u64, segment: usize) -> Result<sled::Db, StoreError> {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .segment_size(segment)
        // Only the owner flushes: a background flusher is a second
        // thread inside sled's locks.
        .flush_every_ms(None)
        .open()
        .map_err(|e| match e {
            // sled reports the file lock held by another process as an
            // I/O error whose text is the only distinguishing mark.
            sled::Error::Io(ref io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked(path.display().to_string())
            }
            other => StoreError::Sled(other),
        })
}

/// Stores written before the spool existed kept bodies in the main
/// database: copy them over (durably), then drop the old tree. Run again
/// after a crash, the copy repeats harmlessly. Returns where the bodies
/// are: in the spool (true), or still in the main database when the disk
/// has no room for the copy (sled never returns from a flush that meets a
/// full disk); the next open tries again.
fn move_bodies_to_spool(
    db: &sled::Db,
    spool: &sled::Db,
    free: Option<u64>,
) -> Result<bool, StoreError> {
    if !db.tree_names().iter().any(|n| n.as_ref() == b"bodies") {
        return Ok(true);
    }
    let old = db.open_tree("bodies")?;
    let mut bytes = 0u64;
    for kv in old.iter() {
        let (k, v) = kv?;
        bytes += (k.len() + v.len()) as u64;
    }
    if free.is_some_and(|f| f < bytes.saturating_mul(3).saturating_add(MOVE_HEADROOM)) {
        tracing::warn!(
            bytes,
            ?free,
            "no room to move outgoing bodies to the spool yet; they stay where they are"
        );
        return Ok(false);
    }
    let new = spool.open_tree("bodies")?;
    for kv in old.iter() {
        let (k, v) = kv?;
        new.insert(k, v)?;
    }
    spool.flush()?;
    db.drop_tree("bodies")?;
    db.flush()?;
    if bytes > 0 {
        tracing::info!(bytes, "moved pending outgoing bodies to the spool");
    }
    Ok(true)
}

/// Free space the move of old bodies leaves untouched, beyond three times
/// their size (the copy, sled's overhead, the drop).
const MOVE_HEADROOM: u64 = 16 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// A main database laid out as before the spool, with two bodies.
    fn old_layout(dir: &Path) -> (sled::Db, sled::Db) {
        let db = sled::open(dir.join("store")).unwrap();
        let spool = sled::Config::new()
            .path(dir.join("store-spool"))
            .segment_size(SPOOL_SEGMENT)
            .open()
            .unwrap();
        let old = db.open_tree("bodies").unwrap();
        old.insert(1u64.to_be_bytes(), vec![b'a'; 5000]).unwrap();
        old.insert(2u64.to_be_bytes(), &b"two"[..]).unwrap();
        (db, spool)
    }

    #[test]
    fn old_bodies_move_when_there_is_room_and_stay_put_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let (db, spool) = old_layout(dir.path());

        assert!(
            !move_bodies_to_spool(&db, &spool, Some(1 << 20)).unwrap(),
            "no room"
        );
        let stayed = db.open_tree("bodies").unwrap();
        assert_eq!(stayed.len(), 2, "nothing moved, nothing lost");
        assert!(spool.open_tree("bodies").unwrap().is_empty());

        assert!(move_bodies_to_spool(&db, &spool, Some(1 << 30)).unwrap());
        let moved = spool.open_tree("bodies").unwrap();
        assert_eq!(
            moved.get(2u64.to_be_bytes()).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(moved.len(), 2);
        assert!(!db.tree_names().iter().any(|n| n.as_ref() == b"bodies"));
        assert!(
            move_bodies_to_spool(&db, &spool, Some(0)).unwrap(),
            "nothing left to move"
        );
    }
}
