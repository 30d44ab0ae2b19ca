//! Loop safety for automatic mail: never to machine addresses or to
//! ourselves, and at most N automatic mails per address per hour, counted
//! in the store so a restart does not reset the budget.

use chrono::{DateTime, Duration, Utc};

use crate::store::StoreError;

/// Whether an automatic mail may go to an address, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// May be sent (and, from [`AutoMailGuard::admit`], is counted).
    Allowed,
    /// A role or machine address (`MAILER-DAEMON`, `postmaster`, `noreply`…).
    MachineAddress,
    /// One of our own addresses (mail domain).
    OwnAddress,
    /// The hourly budget for this address is spent.
    RateLimited {
        /// Automatic mails counted for the address in the last hour.
        sent_last_hour: usize,
    },
}

impl Verdict {
    /// The verdict in words, for a ticket's or message's log of what was done.
    pub fn reason(&self) -> String {
        match self {
            Verdict::Allowed => "allowed".into(),
            Verdict::MachineAddress => "recipient is a machine or role address".into(),
            Verdict::OwnAddress => "recipient is one of our own addresses".into(),
            Verdict::RateLimited { sent_last_hour } => {
                format!("{sent_last_hour} automatic mails to this address in the last hour")
            }
        }
    }
}

/// The loop guard every automatic mail (answers, acknowledgements) passes:
/// budget kept in the store, so it holds across workers and restarts.
#[derive(Clone)]
pub struct AutoMailGuard {
    store: crate::store::Store,
    own_domain: String,
    per_hour: usize,
}

/// Local parts that are never a person who asked us something.
pub fn is_machine_address(addr: &str) -> bool {
    let local = addr.rsplit_once('@').map(|(l, _)| l).unwrap_or(addr);
    let local = local.to_ascii_lowercase();
    let base = local.split(['+']).next().unwrap_or(&local);
    let squashed: String = base.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    matches!(
        squashed.as_str(),
        "mailerdaemon"
            | "postmaster"
            | "noreply"
            | "donotreply"
            | "nepasrepondre"
            | "nereplypas"
            | "bounce"
            | "bounces"
            | "mailer"
            | "daemon"
            | "autoreply"
            | "autoresponder"
            | "listserv"
            | "majordomo"
    ) || squashed.starts_with("noreply")
        || squashed.starts_with("donotreply")
        || squashed.starts_with("bounce")
        || squashed.starts_with("ownerlist")
        || base.starts_with("owner-")
        || base.ends_with("-request")
}

impl AutoMailGuard {
    /// A guard counting on `store`; `own_domain` is `mail.domain`, `per_hour`
    /// is `desk.auto_mail_per_hour`.
    pub fn open(store: &crate::store::Store, own_domain: &str, per_hour: usize) -> Self {
        AutoMailGuard {
            store: store.clone(),
            own_domain: own_domain.to_ascii_lowercase(),
            per_hour,
        }
    }

    fn is_own(&self, addr: &str) -> bool {
        crate::domain::is_own_domain(addr, &self.own_domain)
    }

    fn static_verdict(&self, addr: &str) -> Option<Verdict> {
        if is_machine_address(addr) {
            Some(Verdict::MachineAddress)
        } else if self.is_own(addr) {
            Some(Verdict::OwnAddress)
        } else {
            None
        }
    }

    /// Decides without recording.
    pub fn check(&self, addr: &str, now: DateTime<Utc>) -> Result<Verdict, StoreError> {
        if let Some(v) = self.static_verdict(addr) {
            return Ok(v);
        }
        let n = self.store.auto_mail_recent(addr, cutoff(now))?;
        Ok(if n >= self.per_hour {
            Verdict::RateLimited { sent_last_hour: n }
        } else {
            Verdict::Allowed
        })
    }

    /// Decides and, when allowed, counts one mail (durably, in one step on
    /// the store's owner so two workers cannot both take the last slot).
    pub fn admit(&self, addr: &str, now: DateTime<Utc>) -> Result<Verdict, StoreError> {
        if let Some(v) = self.static_verdict(addr) {
            return Ok(v);
        }
        let count =
            self.store
                .auto_mail_admit(addr, now.timestamp(), cutoff(now), self.per_hour)?;
        Ok(if count.admitted {
            Verdict::Allowed
        } else {
            Verdict::RateLimited {
                sent_last_hour: count.recent,
            }
        })
    }
}

fn cutoff(now: DateTime<Utc>) -> i64 {
    (now - Duration::hours(1)).timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_addresses_are_recognised() {
        for a in [
            "MAILER-DAEMON@mx.example.org",
            "postmaster@example.org",
            "no-reply@example.org",
            "noreply+x@example.org",
            "do_not_reply@example.org",
            "ne-pas-repondre@example.fr",
            "bounces+123@example.org",
            "owner-list@example.org",
            "list-request@example.org",
        ] {
            assert!(is_machine_address(a), "{a}");
        }
        for a in [
            "ana@example.com",
            "noreen@example.com",
            "postmistress@example.org",
        ] {
            assert!(!is_machine_address(a), "{a}");
        }
    }

    #[test]
    fn budget_is_per_address_per_hour_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let now: DateTime<Utc> = "2026-11-26T10:00:00Z".parse().unwrap();
        {
            let store = crate::store::Store::open(dir.path()).unwrap();
            let g = AutoMailGuard::open(&store, "edesk.example.com", 3);
            for _ in 0..3 {
                assert_eq!(g.admit("ana@example.com", now).unwrap(), Verdict::Allowed);
            }
            assert_eq!(
                g.admit("ana@example.com", now).unwrap(),
                Verdict::RateLimited { sent_last_hour: 3 }
            );
            assert_eq!(g.admit("bob@example.com", now).unwrap(), Verdict::Allowed);
            assert_eq!(
                g.admit("reply+t@EDESK.example.com", now).unwrap(),
                Verdict::OwnAddress
            );
        }
        let store = crate::store::Store::open(dir.path()).unwrap();
        let g = AutoMailGuard::open(&store, "edesk.example.com", 3);
        assert!(matches!(
            g.check("Ana@Example.com", now).unwrap(),
            Verdict::RateLimited { .. }
        ));
        let later = now + Duration::minutes(61);
        assert_eq!(g.check("ana@example.com", later).unwrap(), Verdict::Allowed);
    }
}
