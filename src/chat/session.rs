//! Signed chat session ids for the HTTP chat, and the MAC that keeps link
//! codes out of the store in clear. One key (`DATA_DIR/chat.key`, created
//! on first start, mode 0600) signs both.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PREFIX: &str = "s1.";

/// The chat key file cannot be read, parsed or created.
#[derive(Debug, thiserror::Error)]
#[error("chat key {path}: {message}")]
pub struct KeyError {
    /// The key file (`data_dir/chat.key`).
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The chat signing key.
#[derive(Clone)]
pub struct ChatKey([u8; 32]);

impl std::fmt::Debug for ChatKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatKey(..)")
    }
}

impl ChatKey {
    /// A key from raw bytes (tests; the daemon uses [`ChatKey::load_or_create`]).
    pub fn from_bytes(b: [u8; 32]) -> ChatKey {
        ChatKey(b)
    }

    /// Loads `data_dir/chat.key`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<ChatKey, KeyError> {
        let path = data_dir.join("chat.key");
        let err = |m: String| KeyError {
            path: path.display().to_string(),
            message: m,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|_| err("not hex".into()))?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| err("not 64 hex digits".into()))?;
                Ok(ChatKey(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(|e| err(e.to_string()))?;
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(&path) {
                    Ok(mut f) => {
                        f.write_all(hex::encode(key).as_bytes())
                            .and_then(|()| f.sync_all())
                            .map_err(|e| err(e.to_string()))?;
                        Ok(ChatKey(key))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(data_dir)
                    }
                    Err(e) => Err(err(e.to_string())),
                }
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn mac(&self, purpose: &str, parts: &[&str]) -> Vec<u8> {
        // HMAC zero-pads short keys to the block size: padding here gives
        // the same MAC through the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut m = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
        m.update(purpose.as_bytes());
        for p in parts {
            m.update(&[0]);
            m.update(p.as_bytes());
        }
        m.finalize().into_bytes().to_vec()
    }

    /// A new session id: random, signed. The user it stands for is
    /// [`ChatKey::session_user`] of it.
    pub fn new_session(&self) -> String {
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let id = hex::encode(raw);
        let sig = hex::encode(&self.mac("chat-session", &[&id])[..16]);
        format!("{PREFIX}{id}.{sig}")
    }

    /// The stable user id of a session this key signed; `None` for anything
    /// else (forged, truncated, another server's).
    pub fn session_user(&self, session: &str) -> Option<String> {
        let rest = session.trim().strip_prefix(PREFIX)?;
        let (id, sig) = rest.split_once('.')?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let given = hex::decode(sig).ok()?;
        let expected = &self.mac("chat-session", &[id])[..16];
        // Constant-time comparison.
        let same = given.len() == expected.len()
            && given
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        same.then(|| id.to_string())
    }

    /// The MAC stored for a link code (never the code itself).
    pub fn code_mac(&self, user: &str, email: &str, code: &str) -> String {
        hex::encode(self.mac("chat-link-code", &[user, email, code]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_and_forgeries_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let k = ChatKey::load_or_create(dir.path()).unwrap();
        let s = k.new_session();
        let user = k.session_user(&s).unwrap();
        assert_eq!(user.len(), 32);
        assert_ne!(k.new_session(), s);
        let mut forged = s.clone();
        forged.replace_range(5..6, if &s[5..6] == "0" { "1" } else { "0" });
        assert_eq!(k.session_user(&forged), None);
        assert_eq!(k.session_user("alice"), None);
        let again = ChatKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.session_user(&s), Some(user), "the key persists");
        let other = ChatKey::from_bytes([7; 32]);
        assert_eq!(other.session_user(&s), None);
    }
}
