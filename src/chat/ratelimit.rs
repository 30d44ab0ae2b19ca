//! Rate limits per user and per channel: a fixed one-minute window per
//! subject, counted in memory and written behind to the store (every
//! second and at shutdown), so a restart does not reset a flood.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{ChatKey, ChatNs, Store};

/// Window length.
pub const WINDOW_MS: u64 = 60_000;
/// Windows kept in memory before idle ones are dropped (they stay in the store).
const MAX_IN_MEMORY: usize = 100_000;

/// Messages allowed per window (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Per chat user (platform and user id); default 20.
    pub user_per_minute: u32,
    /// Per channel, all users together; default 60.
    pub channel_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            user_per_minute: 20,
            channel_per_minute: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Window {
    start_ms: u64,
    count: u32,
    /// The polite answer was given in this window (say it once, then stay quiet).
    warned: bool,
}

impl Window {
    fn new(now_ms: u64) -> Window {
        Window {
            start_ms: now_ms,
            count: 0,
            warned: false,
        }
    }

    /// Counts one message: (allowed, seconds until the window ends, first
    /// refusal in the window). A window past its minute starts again.
    fn count_one(&mut self, limit: u32, now_ms: u64) -> (bool, u64, bool) {
        if now_ms.saturating_sub(self.start_ms) >= WINDOW_MS {
            *self = Window::new(now_ms);
        }
        self.count = self.count.saturating_add(1);
        let allowed = self.count <= limit;
        let warn = !allowed && !self.warned;
        if warn {
            self.warned = true;
        }
        let retry = (self.start_ms + WINDOW_MS)
            .saturating_sub(now_ms)
            .div_ceil(1000);
        (allowed, retry.max(1), warn)
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within both limits: answer it.
    Allowed,
    /// Over the user's limit; `warn` is true the first time in the window.
    User {
        /// Seconds until the window ends (at least 1).
        retry_secs: u64,
        /// Answer with the polite refusal (once per window); otherwise stay quiet.
        warn: bool,
    },
    /// Over the channel's limit.
    Channel {
        /// Seconds until the window ends (at least 1).
        retry_secs: u64,
        /// As for `User`.
        warn: bool,
    },
}

/// Counts messages per user and per channel against [`Limits`], keeping the
/// windows in memory and writing them behind to the store.
pub struct RateLimiter {
    store: Store,
    windows: Mutex<HashMap<String, Window>>,
    dirty: Mutex<HashSet<String>>,
}

impl RateLimiter {
    /// A limiter with no window in memory; windows are read back from
    /// `store` as subjects come.
    pub fn new(store: Store) -> RateLimiter {
        RateLimiter {
            store,
            windows: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashSet::new()),
        }
    }

    /// Counts one message of `user` in `channel` (None: a private
    /// conversation, no channel limit).
    pub fn check(&self, user: &str, channel: Option<&str>, limits: Limits, now_ms: u64) -> Verdict {
        let user_key = format!("u/{user}");
        let (ok, retry, warn) = self.count(&user_key, limits.user_per_minute, now_ms);
        if !ok {
            return Verdict::User {
                retry_secs: retry,
                warn,
            };
        }
        if let Some(c) = channel {
            let (ok, retry, warn) =
                self.count(&format!("c/{c}"), limits.channel_per_minute, now_ms);
            if !ok {
                return Verdict::Channel {
                    retry_secs: retry,
                    warn,
                };
            }
        }
        Verdict::Allowed
    }

    /// (allowed, seconds until the window ends, first refusal in the window)
    fn count(&self, key: &str, limit: u32, now_ms: u64) -> (bool, u64, bool) {
        if limit == 0 {
            return (true, 0, false);
        }
        if self.store.is_shared() {
            return self.count_shared(key, limit, now_ms);
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= MAX_IN_MEMORY {
            windows.retain(|_, w| now_ms.saturating_sub(w.start_ms) < WINDOW_MS);
        }
        let w = windows.entry(key.to_string()).or_insert_with(|| {
            // First sight since start: the window persisted before a restart.
            self.store
                .chat_get::<Window>(&ChatKey::new(ChatNs::Rate, key))
                .ok()
                .flatten()
                .unwrap_or(Window::new(now_ms))
        });
        let verdict = w.count_one(limit, now_ms);
        drop(windows);
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string());
        verdict
    }

    /// Several daemons share the store: the window is counted in it, in
    /// one atomic step per message, so the limit holds across daemons
    /// (a write-behind count per daemon would let each allow the limit).
    /// A store that cannot count lets the message through.
    fn count_shared(&self, key: &str, limit: u32, now_ms: u64) -> (bool, u64, bool) {
        let counted = self
            .store
            .chat_update(&ChatKey::new(ChatNs::Rate, key), move |w| {
                let mut w: Window = w.unwrap_or(Window::new(now_ms));
                let verdict = w.count_one(limit, now_ms);
                (Some(w), verdict)
            });
        counted.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "chat rate window not counted");
            (true, 1, false)
        })
    }

    /// Writes the windows changed since the last call to the store.
    pub fn persist(&self) -> Result<usize, crate::store::StoreError> {
        let keys: Vec<String> =
            std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let records: Vec<(ChatKey, Window)> = {
            let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter()
                .filter_map(|k| {
                    windows
                        .get(k)
                        .map(|w| (ChatKey::new(ChatNs::Rate, k.clone()), *w))
                })
                .collect()
        };
        self.store.chat_put_many(&records)?;
        Ok(records.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_user_and_channel_warn_once_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rl = RateLimiter::new(store.clone());
        let limits = Limits {
            user_per_minute: 3,
            channel_per_minute: 4,
        };
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(rl.check("a", Some("c"), limits, t), Verdict::Allowed);
        }
        assert!(matches!(
            rl.check("a", Some("c"), limits, t),
            Verdict::User { warn: true, .. }
        ));
        assert!(matches!(
            rl.check("a", Some("c"), limits, t),
            Verdict::User { warn: false, .. }
        ));
        assert_eq!(rl.check("b", Some("c"), limits, t), Verdict::Allowed);
        assert!(matches!(
            rl.check("b", Some("c"), limits, t),
            Verdict::Channel { warn: true, .. }
        ));
        assert_eq!(
            rl.check("b", None, limits, t),
            Verdict::Allowed,
            "DMs have no channel limit"
        );
        rl.persist().unwrap();
        drop(rl);
        let rl = RateLimiter::new(store);
        assert!(
            matches!(rl.check("a", None, limits, t + 1000), Verdict::User { .. }),
            "the window survived the restart"
        );
        assert_eq!(
            rl.check("a", None, limits, t + WINDOW_MS),
            Verdict::Allowed,
            "a new window"
        );
    }
}
