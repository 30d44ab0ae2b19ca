//! Maildir intake: `edesk mail deliver` (an MTA pipe) writes the message into
//! a Maildir with the usual `tmp/` → `new/` rename, fsyncing both the file and
//! the directory, so "exit 0" means durable even while the daemon is down or
//! holds the database lock. The daemon polls `new/`, moves each message into
//! the spool, and only then deletes the file; a crash in between is harmless
//! because the spool deduplicates.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::intake::{Envelope, Spool};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Creates `tmp/`, `new/` and `cur/` under `dir` when missing.
pub fn ensure(dir: &Path) -> std::io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

/// Writes one message durably into `dir/new/` and returns its path.
pub fn deliver(dir: &Path, raw: &[u8]) -> std::io::Result<PathBuf> {
    ensure(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = format!(
        "{}.M{}P{}Q{}.edesk",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(raw)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &new)?;
    File::open(dir.join("new"))?.sync_all()?;
    Ok(new)
}

/// Moves every message in `dir/new/` into the spool; returns how many.
/// A file that cannot be read stays where it is for the next pass.
pub async fn import_once(dir: &Path, spool: &Spool) -> std::io::Result<usize> {
    let mut entries: Vec<PathBuf> = match fs::read_dir(dir.join("new")) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    entries.sort();
    let mut imported = 0;
    for path in entries {
        let raw = match fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read maildir message");
                continue;
            }
        };
        match spool.accept(&raw, Envelope::new("maildir")).await {
            Ok(_) => {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove imported message");
                }
                imported += 1;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot store maildir message; will retry");
                break;
            }
        }
    }
    Ok(imported)
}

/// Polls the Maildir until cancelled.
pub async fn watch(
    dir: PathBuf,
    spool: Spool,
    interval: Duration,
    new_mail: Arc<Notify>,
    token: CancellationToken,
) {
    if let Err(e) = ensure(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot create maildir; watcher off");
        return;
    }
    loop {
        match import_once(&dir, &spool).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(n, "imported messages from maildir");
                new_mail.notify_one();
            }
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "maildir scan failed"),
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivered_mail_reaches_the_spool_once() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("maildir");
        let store = crate::store::Store::open(dir.path()).unwrap();
        let spool = Spool::open(&store);
        deliver(&md, b"Message-ID: <m1@x>\r\n\r\none").unwrap();
        deliver(&md, b"Message-ID: <m1@x>\r\n\r\none").unwrap();
        deliver(&md, b"Message-ID: <m2@x>\r\n\r\ntwo").unwrap();
        assert_eq!(import_once(&md, &spool).await.unwrap(), 3);
        assert_eq!(spool.pending().unwrap().len(), 2);
        assert_eq!(fs::read_dir(md.join("new")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    }
}
