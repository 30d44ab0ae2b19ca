//! Linking a chat account to a customer address (a one-time code mailed
//! through the outbox; it expires and allows a few tries), and the commands
//! that need a linked, verified address: `order`, `restore`, `resend`,
//! `unsubscribe`. Order data goes only to a recipient of the order or an
//! address with an OBA grant; anyone else learns only how to link.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ChatError;
use super::order_view;
use super::service::{ChatService, Incoming, Said};
use super::texts;
use crate::domain::{EmailAddress, Lang, OrderId};
use crate::store::{ChatKey, ChatNs};

/// A new code is not mailed within this long of the previous one.
const RESEND_AFTER_MS: u64 = 60_000;
/// Codes mailed per chat account per hour, at most.
const CODES_PER_HOUR: usize = 5;
const HOUR_MS: u64 = 3_600_000;

/// A chat account's verified address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The address the code was mailed to; order data is shown for orders it may see.
    pub email: EmailAddress,
    /// When the right code was entered.
    pub verified_at: DateTime<Utc>,
}

/// A code waiting for `verify`. Only its MAC is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingCode {
    email: EmailAddress,
    mac: String,
    sent_ms: u64,
    expires_ms: u64,
    /// 0: spent (expired or too many tries); kept so the send limits hold.
    tries_left: u32,
    /// When codes were mailed in the last hour.
    #[serde(default)]
    recent_ms: Vec<u64>,
}

enum Verified {
    NoCode,
    Expired,
    Wrong(u32),
    Exhausted,
    Ok(EmailAddress),
}

/// `j***@acme.example.com`: enough to recognise, not to harvest.
fn mask(email: &EmailAddress) -> String {
    let local = email.local();
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{}", email.domain())
}

impl ChatService {
    /// The verified address of a chat account, if it has one.
    pub fn linked(&self, user_key: &str) -> Result<Option<Link>, ChatError> {
        Ok(self
            .inner
            .store
            .chat_get(&ChatKey::new(ChatNs::Link, user_key))?)
    }

    /// The linked address, when it may see `so` (recipient or OBA grant).
    fn authorized_for(
        &self,
        msg: &Incoming,
        so: &OrderId,
    ) -> Result<Result<EmailAddress, Option<String>>, ChatError> {
        let Some(link) = self.linked(&msg.user_key())? else {
            return Ok(Err(None));
        };
        let allowed = self.inner.store.is_authorized_sender(so, &link.email)?;
        if allowed {
            Ok(Ok(link.email))
        } else {
            Ok(Err(Some(link.email.to_string())))
        }
    }

    /// The order a command names and the linked address that may see it;
    /// else (`Err`) the answer instead: a malformed order number, or how
    /// to link an address that may.
    fn order_access(
        &self,
        msg: &Incoming,
        so: Result<OrderId, String>,
        lang: Lang,
    ) -> Result<Result<(OrderId, EmailAddress), Said>, ChatError> {
        let so = match so {
            Ok(so) => so,
            Err(given) => return Ok(Err(Said::here(texts::bad_order(lang, &given)))),
        };
        Ok(match self.authorized_for(msg, &so)? {
            Ok(email) => Ok((so, email)),
            Err(linked) => Err(Said::private(texts::how_to_link(lang, linked.as_deref()))),
        })
    }

    pub(super) fn order(
        &self,
        msg: &Incoming,
        so: Result<OrderId, String>,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        let (so, email) = match self.order_access(msg, so, lang)? {
            Ok(access) => access,
            Err(answer) => return Ok(answer),
        };
        let Some(order) = self.inner.store.order(&so)? else {
            // Authorized senders come from the order itself: unreachable in
            // practice, answered like any other refusal.
            return Ok(Said::private(texts::how_to_link(
                lang,
                Some(email.as_str()),
            )));
        };
        let today = Utc::now().date_naive();
        Ok(Said::private(order_view::describe(
            &order,
            today,
            self.inner.faq.contacts(),
            lang,
        )))
    }

    pub(super) fn restore(
        &self,
        msg: &Incoming,
        so: Result<OrderId, String>,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        let (so, email) = match self.order_access(msg, so, lang)? {
            Ok(access) => access,
            Err(answer) => return Ok(answer),
        };
        tracing::info!(user = %msg.user_key(), order = %so, "restore from chat");
        let notified = self.inner.actions.restore(&so, &email)?;
        Ok(Said::private(texts::restored(
            lang,
            so.as_str(),
            notified.as_deref(),
        )))
    }

    pub(super) fn resend(
        &self,
        msg: &Incoming,
        so: Result<OrderId, String>,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        let (so, email) = match self.order_access(msg, so, lang)? {
            Ok(access) => access,
            Err(answer) => return Ok(answer),
        };
        // One resend per order, address and day, however often it is asked.
        let key = format!(
            "chat:resend:{so}:{}:{}",
            email.key(),
            Utc::now().date_naive()
        );
        let done = self.inner.actions.resend(&so, &email, &key)?;
        Ok(Said::private(texts::resent(
            lang,
            so.as_str(),
            email.as_str(),
            done,
        )))
    }

    pub(super) fn unsubscribe(&self, msg: &Incoming, lang: Lang) -> Result<Said, ChatError> {
        let Some(link) = self.linked(&msg.user_key())? else {
            return Ok(Said::private(texts::need_link(lang)));
        };
        self.inner.actions.unsubscribe(&link.email)?;
        Ok(Said::private(texts::unsubscribed(
            lang,
            link.email.as_str(),
        )))
    }

    pub(super) fn link(
        &self,
        msg: &Incoming,
        email: Result<EmailAddress, String>,
        lang: Lang,
    ) -> Result<Said, ChatError> {
        let email = match email {
            Ok(e) => e,
            Err(given) => return Ok(Said::private(texts::bad_email(lang, &given))),
        };
        let user = msg.user_key();
        let now = crate::store::now_ms();
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        let settings = self.inner.settings;
        let mut pending = PendingCode {
            email: email.clone(),
            mac: self.inner.key.code_mac(&user, &email.key(), &code),
            sent_ms: now,
            expires_ms: now + settings.code_ttl_secs * 1000,
            tries_left: settings.code_max_tries,
            recent_ms: vec![now],
        };
        let fresh = self.inner.store.chat_update(
            &ChatKey::new(ChatNs::Code, user.clone()),
            move |old: Option<PendingCode>| {
                let Some(o) = old else {
                    return (Some(pending), true);
                };
                let recent: Vec<u64> = o
                    .recent_ms
                    .iter()
                    .copied()
                    .filter(|t| now.saturating_sub(*t) < HOUR_MS)
                    .collect();
                if now.saturating_sub(o.sent_ms) < RESEND_AFTER_MS || recent.len() >= CODES_PER_HOUR
                {
                    return (Some(o), false);
                }
                pending.recent_ms.extend(recent);
                (Some(pending), true)
            },
        )?;
        if !fresh {
            return Ok(Said::private(texts::code_throttled(lang)));
        }
        let minutes = settings.code_ttl_secs.div_ceil(60);
        self.inner.actions.mail_code(
            &email,
            lang,
            &code,
            minutes,
            &format!("chat:link:{user}:{now}"),
        )?;
        tracing::info!(to = %mask(&email), "chat link code mailed");
        Ok(Said::private(texts::code_sent(
            lang,
            &mask(&email),
            minutes,
        )))
    }

    pub(super) fn verify(&self, msg: &Incoming, code: &str, lang: Lang) -> Result<Said, ChatError> {
        let user = msg.user_key();
        let key = self.inner.key.clone();
        let (code, now) = (code.trim().to_string(), crate::store::now_ms());
        let u = user.clone();
        let outcome = self.inner.store.chat_update(
            &ChatKey::new(ChatNs::Code, user.clone()),
            move |p: Option<PendingCode>| {
                let mut p = match p {
                    Some(p) if p.tries_left > 0 => p,
                    spent => return (spent, Verified::NoCode),
                };
                if now > p.expires_ms {
                    p.tries_left = 0;
                    return (Some(p), Verified::Expired);
                }
                if key.code_mac(&u, &p.email.key(), &code) == p.mac {
                    return (None, Verified::Ok(p.email));
                }
                p.tries_left = p.tries_left.saturating_sub(1);
                match p.tries_left {
                    0 => (Some(p), Verified::Exhausted),
                    n => (Some(p), Verified::Wrong(n)),
                }
            },
        )?;
        let text = match outcome {
            Verified::NoCode => texts::no_code(lang).to_string(),
            Verified::Expired => texts::code_expired(lang).to_string(),
            Verified::Wrong(n) => texts::code_wrong(lang, n),
            Verified::Exhausted => texts::code_exhausted(lang).to_string(),
            Verified::Ok(email) => {
                let link = Link {
                    email: email.clone(),
                    verified_at: Utc::now(),
                };
                self.inner
                    .store
                    .chat_put(&ChatKey::new(ChatNs::Link, user), Some(&link), true)?;
                texts::linked(lang, email.as_str())
            }
        };
        Ok(Said::private(text))
    }
}
