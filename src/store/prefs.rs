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
        self.prefs.insert(key, if send { "yes" } else { "no" })?;
        self.db.flush()?;
        Ok(())
    }

    /// Whether `email` wants `kind`: a per-kind setting wins over the global one;
    /// the default is yes.
    pub fn wants(&self, email: &EmailAddress, kind: &str) -> Result<bool, StoreError> {
        for k in [kind, ALL_KINDS] {
            if let Some(v) = self.prefs.get(format!("{}/{k}", email.key()))? {
                return Ok(v.as_ref() != b"no");
            }
        }
        Ok(true)
    }

    /// All explicit preferences of an address: `(kind or "*", send)`.
    pub fn preferences(&self, email: &EmailAddress) -> Result<Vec<(String, bool)>, StoreError> {
        let prefix = format!("{}/", email.key());
        self.prefs
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

    pub fn suppress(&self, email: &EmailAddress, reason: &str) -> Result<(), StoreError> {
        let s = Suppression {
            email: email.clone(),
            reason: reason.to_string(),
            at: Utc::now(),
        };
        self.suppress.insert(email.key(), serde_json::to_vec(&s)?)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn is_suppressed(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        Ok(self.suppress.contains_key(email.key())?)
    }

    pub fn suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        self.suppress
            .iter()
            .values()
            .map(|v| decode("suppress", &v?))
            .collect()
    }

    /// Removes an address from the suppression list; false when it was not on it.
    pub fn unsuppress(&self, email: &EmailAddress) -> Result<bool, StoreError> {
        let was = self.suppress.remove(email.key())?.is_some();
        self.db.flush()?;
        Ok(was)
    }

    /// Counts one automatic mail to `email` in the current UTC hour and returns
    /// the count including this one (callers cap auto-replies with it).
    pub fn count_auto_mail(&self, email: &EmailAddress) -> Result<u64, StoreError> {
        let now = Utc::now();
        let hour = now.format("%Y%m%d").to_string() + &format!("{:02}", now.hour());
        let key = format!("{}/{hour}", email.key());
        let v = self.counters.update_and_fetch(key, |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            Some((n + 1).to_be_bytes().to_vec())
        })?;
        Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes))
    }
}
