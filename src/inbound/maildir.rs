//! Maildir intake: `edesk mail deliver` (an MTA pipe) writes the message into
//! a Maildir with the usual `tmp/` → `new/` rename, fsyncing both the file and
//! the directory, so "exit 0" means durable even while the daemon is down or
//! holds the database lock. The daemon polls `new/`, moves each message into
//! the spool, and only then deletes the file; a crash in between is harmless
//! because the spool deduplicates.
//!
//! The envelope a pipe passes (`--sender`, `--recipient`) travels beside the
//! message in `envelope/NAME` (JSON), written and synced before the message
//! appears in `new/`, so the daemon stores the envelope the MTA saw.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::intake::{Envelope, Spool};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Sidecar directory of pipe envelopes.
const ENVELOPE: &str = "envelope";

/// Creates `tmp/`, `new/`, `cur/` and `envelope/` under `dir` when missing.
pub fn ensure(dir: &Path) -> std::io::Result<()> {
    for sub in ["tmp", "new", "cur", ENVELOPE] {
        fs::create_dir_all(dir.join(sub))?;
    }
    Ok(())
}

/// The envelope an MTA pipe hands over (empty when it passes none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipeEnvelope {
    /// `Some("")` is the null sender `<>`.
    pub mail_from: Option<String>,
    /// Envelope recipients; empty when the pipe passed none.
    pub rcpt_to: Vec<String>,
}

impl PipeEnvelope {
    fn is_empty(&self) -> bool {
        self.mail_from.is_none() && self.rcpt_to.is_empty()
    }
}

/// Writes one message durably into `dir/new/` (its envelope, if any, into
/// `dir/envelope/` first) and returns its path.
pub fn deliver(dir: &Path, raw: &[u8], envelope: &PipeEnvelope) -> std::io::Result<PathBuf> {
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
    if !envelope.is_empty() {
        write_synced(
            &dir.join(ENVELOPE).join(&name),
            &serde_json::to_vec(envelope)?,
        )?;
    }
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
        let sidecar = path
            .file_name()
            .map(|n| dir.join(ENVELOPE).join(n))
            .unwrap_or_default();
        let envelope = read_envelope(&sidecar);
        match spool.accept(&raw, envelope).await {
            Ok(_) => {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove imported message");
                }
                let _ = fs::remove_file(&sidecar);
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

/// The envelope stored beside a message: `pipe` with the MTA's sender and
/// recipients, or plain `maildir` when there is none (or it is unreadable).
fn read_envelope(sidecar: &Path) -> Envelope {
    let pipe = fs::read(sidecar)
        .ok()
        .and_then(|b| serde_json::from_slice::<PipeEnvelope>(&b).ok());
    match pipe {
        Some(p) => Envelope {
            mail_from: p.mail_from,
            rcpt_to: p.rcpt_to,
            ..Envelope::new("pipe")
        },
        None => Envelope::new("maildir"),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
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
        let none = PipeEnvelope::default();
        deliver(&md, b"Message-ID: <m1@x>\r\n\r\none", &none).unwrap();
        deliver(&md, b"Message-ID: <m1@x>\r\n\r\none", &none).unwrap();
        deliver(&md, b"Message-ID: <m2@x>\r\n\r\ntwo", &none).unwrap();
        assert_eq!(import_once(&md, &spool).await.unwrap(), 3);
        assert_eq!(spool.pending().unwrap().len(), 2);
        assert_eq!(fs::read_dir(md.join("new")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(md.join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_pipe_envelope_is_stored_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("maildir");
        let store = crate::store::Store::open(dir.path()).unwrap();
        let spool = Spool::open(&store);
        let env = PipeEnvelope {
            mail_from: Some("ana@example.org".into()),
            rcpt_to: vec!["support@edesk.example.com".into()],
        };
        deliver(&md, b"Message-ID: <p1@x>\r\n\r\none", &env).unwrap();
        deliver(
            &md,
            b"Message-ID: <p2@x>\r\n\r\ntwo",
            &PipeEnvelope {
                mail_from: Some(String::new()),
                rcpt_to: vec!["bounces+t@edesk.example.com".into()],
            },
        )
        .unwrap();
        assert_eq!(import_once(&md, &spool).await.unwrap(), 2);
        let mut metas: Vec<_> = spool
            .pending()
            .unwrap()
            .into_iter()
            .map(|id| spool.meta(id).unwrap().unwrap().envelope)
            .collect();
        metas.sort_by_key(|e| std::cmp::Reverse(e.mail_from.clone()));
        assert_eq!(metas[0].source, "pipe");
        assert_eq!(metas[0].mail_from.as_deref(), Some("ana@example.org"));
        assert_eq!(metas[0].rcpt_to, env.rcpt_to);
        assert_eq!(metas[1].mail_from.as_deref(), Some(""), "null sender kept");
        assert_eq!(fs::read_dir(md.join(ENVELOPE)).unwrap().count(), 0);
    }
}
