use chrono::{Timelike, Utc};

use super::{Store, StoreError, Suppression, decode};
use crate::domain::EmailAddress;

const ALL_KINDS: &str = "*";

impl Store {
    /// Sets whether `email` receives `kind` (`None` = every notification, the
    /// source document's "Notification email preference").
    pub fn set_preference(
        &self,
        email: &EmailAddress,
        kind: Option<&str>,
        send: bool,
    ) -> Result<(), StoreError> {
        let key = format!("{}/{}", email.key(), kind.unwrap_or(ALL_KINDS));
        self.engine.write(true, move |t| {
            t.prefs.insert(key, if send { "yes" } else { "no" })?;
            Ok(())
        })
    }

    /// Whether `email` wants `kind`: a per-kind setting wins over the global one;
    /// the default is yes.
    pub fn wants(&self, email: &EmailAddress, kind: &str) -> Result<bool, StoreError> {
        let t = self.trees()?;
        for k in [kind, ALL_KINDS] {
            if let Some(v) = t.prefs.get(format!("{}/{k}", email.key()))? {
                return Ok(v.as_ref() != b"no");
            }
        }
        Ok(true)
    }

    /// All explicit preferences of an address: `(kind or "*", send)`.
    pub fn preferences(&self, email: &EmailAddress) -> Result<Vec<(String, bool)>, StoreError> {
        let prefix = format!("{}/", email.key());
        self.trees()?
            .prefs
            .scan_prefix(prefix.as_bytes())
            .map(|r| {
                let (k, v) = r?;
                Ok((
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    v.as_ref() != b"no",
                ))
            })
            .collect()
    }

    /// Stops all mail to `email` (compared by [`EmailAddress::key`]); durable on
    /// return. A second call replaces the reason.
    pub fn suppress(&self, email: &EmailAddress, reason: &str) -> Result<(), StoreError> {
        let s = Suppression {
            email: email.clone(),
            reason: reason.to_string(),
            at: Utc::now(),
        };
        let (key, value) = (email.key(), serde_json::to_vec(&s)?);
        self.engine.write(true, move |t| {
            t.suppress.insert(key, value)?;
            Ok(())
        })
    }

    /// Whether mail to `email` is suppressed.
    pub fn is_suppressed(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        self.trees()?.suppress.contains_key(email.key())
    }

    /// Every suppression.
    pub fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        self.trees()?
            .suppress
            .iter()
            .values()
            .map(|v| decode("suppress", &v?))
            .collect()
    }

    /// How many addresses are suppressed (without decoding them).
    pub fn suppression_count(&self) -> Result<usize, StoreError> {
        self.trees()?.suppress.len()
    }

    /// Removes an address from the suppression list; false when it was not on it.
    pub fn unsuppress(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        let key = email.key();
        self.engine
            .write(true, move |t| Ok(t.suppress.remove(key)?.is_some()))
    }

    /// Counts one automatic mail to `email` in the current UTC hour and returns
    /// the count including this one (callers cap auto-replies with it).
    pub fn count_auto_mail(&self, email: &EmailAddress) -> Result<u64, StoreError> {
        let now = Utc::now();
        let hour = now.format("%Y%m%d").to_string() + &format!("{:02}", now.hour());
        let key = format!("{}/{hour}", email.key());
        self.engine.write(true, move |t| {
            let n = t.count(&key)? + 1;
            t.counters.insert(key, n.to_be_bytes())?;
            Ok(n)
        })
    }
}
