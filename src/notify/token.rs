//! Reply tokens: `reply+TOKEN@domain`, `bounces+TOKEN@domain` and unsubscribe
//! links carry a token bound to (order, recipient) by HMAC-SHA256 under a
//! server key kept in the data directory. Without the key nobody can produce
//! a token that verifies for another order or address.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::{EmailAddress, OrderId};

type HmacSha256 = Hmac<Sha256>;

/// Hex characters in a token (128 bits of the HMAC).
pub const TOKEN_LEN: usize = 32;

/// The server key (`DATA_DIR/server.key`) cannot be used; tokens cannot be minted or checked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or creating the key file failed.
    #[error("server key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but is not 64 hex digits (edited or truncated):
    /// it is never replaced, since that would void every token issued.
    #[error("server key {path} is not 64 hex digits")]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
}

/// The 256-bit HMAC key tokens are minted under; `Debug` never shows it.
#[derive(Clone)]
pub struct ServerKey([u8; 32]);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    /// A key from raw bytes (tests and benchmarks; the daemon uses [`ServerKey::load_or_create`]).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        ServerKey(b)
    }

    /// Loads `data_dir/server.key`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<ServerKey, KeyError> {
        let path = data_dir.join("server.key");
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|_| KeyError::Malformed { path: path.clone() })?;
                let arr: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| KeyError::Malformed { path: path.clone() })?;
                Ok(ServerKey(arr))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
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
                        f.write_all(hex::encode(key).as_bytes()).map_err(io)?;
                        f.sync_all().map_err(io)?;
                        Ok(ServerKey(key))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(data_dir)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self, purpose: &str, so: Option<&OrderId>, email: &EmailAddress) -> HmacSha256 {
        // HMAC zero-pads short keys to the block size, so padding here gives
        // the same MAC as the 32-byte key, through the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.0);
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block.into());
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(so.map_or("", |s| s.as_str()).as_bytes());
        mac.update(&[0]);
        mac.update(email.key().as_bytes());
        mac
    }
}

/// A token bound to an order (or none, for mail not about an order) and a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyToken(String);

impl ReplyToken {
    /// The token for (order, recipient): the first 128 bits of the HMAC, as
    /// lowercase hex ([`TOKEN_LEN`] characters). Deterministic, so minting again
    /// gives the same token.
    pub fn mint(key: &ServerKey, so: Option<&OrderId>, email: &EmailAddress) -> ReplyToken {
        let tag = key.mac("reply", so, email).finalize().into_bytes();
        ReplyToken(hex::encode(&tag[..TOKEN_LEN / 2]))
    }

    /// Constant-time check that `token` was minted for (so, email) under `key`.
    pub fn verify(
        key: &ServerKey,
        token: &str,
        so: Option<&OrderId>,
        email: &EmailAddress,
    ) -> bool {
        let Ok(bytes) = hex::decode(token.trim().to_ascii_lowercase()) else {
            return false;
        };
        bytes.len() == TOKEN_LEN / 2
            && key
                .mac("reply", so, email)
                .verify_truncated_left(&bytes)
                .is_ok()
    }

    /// Extracts the token from `reply+TOKEN@domain` / `bounces+TOKEN@domain`.
    pub fn from_address(addr: &str) -> Option<String> {
        let local = addr.trim().trim_start_matches('<').rsplit_once('@')?.0;
        let (_, tok) = local.split_once('+')?;
        (!tok.is_empty() && tok.len() <= 64 && tok.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| tok.to_ascii_lowercase())
    }

    /// The token's hex text, as it appears in addresses and links.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> ServerKey {
        ServerKey([b; 32])
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServerKey::load_or_create(dir.path()).unwrap();
        let b = ServerKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.0, b.0);
        assert_ne!(a.0, [0u8; 32]);
    }

    #[test]
    fn address_extraction() {
        assert_eq!(
            ReplyToken::from_address("reply+AbC123@edesk.example.com").as_deref(),
            Some("abc123")
        );
        assert_eq!(ReplyToken::from_address("reply@edesk.example.com"), None);
        assert_eq!(ReplyToken::from_address("reply+a b@x.com"), None);
    }

    proptest! {
        #[test]
        fn tokens_bind_order_and_recipient(so in "[0-9]{8,10}", other in "[0-9]{8,10}", local in "[a-z]{1,10}", k in any::<u8>()) {
            let so: OrderId = so.parse().unwrap();
            let other: OrderId = other.parse().unwrap();
            let email: EmailAddress = format!("{local}@example.com").parse().unwrap();
            let t = ReplyToken::mint(&key(k), Some(&so), &email);
            prop_assert_eq!(t.as_str().len(), TOKEN_LEN);
            prop_assert!(ReplyToken::verify(&key(k), t.as_str(), Some(&so), &email));
            prop_assert!(!ReplyToken::verify(&key(k.wrapping_add(1)), t.as_str(), Some(&so), &email));
            if other != so {
                prop_assert!(!ReplyToken::verify(&key(k), t.as_str(), Some(&other), &email));
            }
            let upper: EmailAddress = format!("{}@EXAMPLE.com", local.to_uppercase()).parse().unwrap();
            prop_assert!(ReplyToken::verify(&key(k), t.as_str(), Some(&so), &upper));
        }
    }
}
