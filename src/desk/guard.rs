//! Loop safety for automatic mail: never to machine addresses or to
//! ourselves, and at most N automatic mails per address per hour, counted
//! in sled so a restart does not reset the budget.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// A role or machine address (`MAILER-DAEMON`, `postmaster`, `noreply`…).
    MachineAddress,
    /// One of our own addresses (mail domain).
    OwnAddress,
    /// The hourly budget for this address is spent.
    RateLimited {
        sent_last_hour: usize,
    },
}

impl Verdict {
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

#[derive(Clone)]
pub struct AutoMailGuard {
    db: sled::Db,
    tree: sled::Tree,
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
    pub fn open(db: &sled::Db, own_domain: &str, per_hour: usize) -> Result<Self, sled::Error> {
        Ok(AutoMailGuard {
            db: db.clone(),
            tree: db.open_tree("auto_mail")?,
            own_domain: own_domain.to_ascii_lowercase(),
            per_hour,
        })
    }

    fn is_own(&self, addr: &str) -> bool {
        addr.rsplit_once('@').is_some_and(|(_, d)| {
            let d = d.to_ascii_lowercase();
            d == self.own_domain || d.ends_with(&format!(".{}", self.own_domain))
        })
    }

    /// Decides without recording.
    pub fn check(&self, addr: &str, now: DateTime<Utc>) -> Result<Verdict, sled::Error> {
        if is_machine_address(addr) {
            return Ok(Verdict::MachineAddress);
        }
        if self.is_own(addr) {
            return Ok(Verdict::OwnAddress);
        }
        let n = self.recent(addr, now)?.len();
        Ok(if n >= self.per_hour {
            Verdict::RateLimited { sent_last_hour: n }
        } else {
            Verdict::Allowed
        })
    }

    /// Decides and, when allowed, counts one mail (durably).
    pub fn admit(&self, addr: &str, now: DateTime<Utc>) -> Result<Verdict, sled::Error> {
        let verdict = self.check(addr, now)?;
        if verdict == Verdict::Allowed {
            let mut times = self.recent(addr, now)?;
            times.push(now.timestamp());
            let bytes: Vec<u8> = times.iter().flat_map(|t| t.to_be_bytes()).collect();
            self.tree
                .insert(addr.to_ascii_lowercase().as_bytes(), bytes)?;
            self.db.flush()?;
        }
        Ok(verdict)
    }

    fn recent(&self, addr: &str, now: DateTime<Utc>) -> Result<Vec<i64>, sled::Error> {
        let cutoff = (now - Duration::hours(1)).timestamp();
        Ok(self
            .tree
            .get(addr.to_ascii_lowercase().as_bytes())?
            .map(|v| {
                v.chunks_exact(8)
                    .filter_map(|c| <[u8; 8]>::try_from(c).ok().map(i64::from_be_bytes))
                    .filter(|t| *t > cutoff)
                    .collect()
            })
            .unwrap_or_default())
    }
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
            let db = sled::open(dir.path().join("db")).unwrap();
            let g = AutoMailGuard::open(&db, "edesk.example.com", 3).unwrap();
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
        let db = sled::open(dir.path().join("db")).unwrap();
        let g = AutoMailGuard::open(&db, "edesk.example.com", 3).unwrap();
        assert!(matches!(
            g.check("Ana@Example.com", now).unwrap(),
            Verdict::RateLimited { .. }
        ));
        let later = now + Duration::minutes(61);
        assert_eq!(g.check("ana@example.com", later).unwrap(), Verdict::Allowed);
    }
}
