//! [`Directory`] over the real store: what the daemon and `mail inspect`
//! know about orders, tokens, our Message-IDs and authorized senders.

use super::ports::{Directory, DirectoryError, OrderRef};
use crate::domain::{EmailAddress, Lang, Order, OrderId, PoNumber};
use crate::store::Store;

/// The [`Directory`] the daemon uses; a store failure is a
/// [`DirectoryError`] (the message waits), never "no such order".
pub struct StoreDirectory {
    store: Store,
    domain: String,
    /// Extra sender domains treated as the same company account, per order
    /// recipient (e.g. `acme.example.com` for `j.harper@acme.example.com`).
    company_domains: bool,
}

impl StoreDirectory {
    /// `own_domain` is our mail domain (lower-cased here); `company_domains`
    /// lets a sender at an order recipient's (non-public) domain act on it.
    pub fn new(store: Store, own_domain: &str, company_domains: bool) -> Self {
        StoreDirectory {
            store,
            domain: own_domain.to_ascii_lowercase(),
            company_domains,
        }
    }

    fn order(&self, so: &OrderId) -> Result<Option<Order>, DirectoryError> {
        self.store.order(so).map_err(unavailable)
    }

    fn to_ref(order: &Order, recipient: Option<&EmailAddress>) -> OrderRef {
        let r = recipient.and_then(|e| order.recipients.iter().find(|r| &r.email == e));
        OrderRef {
            so: order.so.clone(),
            po: order.po.clone(),
            lang: order.lang,
            recipient: recipient.map(|e| e.to_string()),
            recipient_lang: r.and_then(|r| r.lang),
            open_holds: order
                .open_holds()
                .map(|h| h.kind.as_str().to_string())
                .collect(),
            pids: order.lines.iter().map(|l| l.pid.clone()).collect(),
            archived: order.archived,
        }
    }
}

/// A store failure is an error of the directory, never an empty answer.
fn unavailable(e: crate::store::StoreError) -> DirectoryError {
    DirectoryError(e.to_string())
}

impl Directory for StoreDirectory {
    fn order_by_token(&self, token: &str) -> Result<Option<OrderRef>, DirectoryError> {
        let Some(target) = self.store.order_by_token(token).map_err(unavailable)? else {
            return Ok(None);
        };
        let Some(so) = target.so else {
            return Ok(None);
        };
        Ok(self
            .order(&so)?
            .map(|order| Self::to_ref(&order, Some(&target.email))))
    }

    fn order_by_message_id(&self, id: &str) -> Result<Option<OrderRef>, DirectoryError> {
        match self.store.order_by_message_id(id).map_err(unavailable)? {
            Some(so) => Ok(self.order(&so)?.map(|o| Self::to_ref(&o, None))),
            None => Ok(None),
        }
    }

    fn token_owner(&self, token: &str) -> Result<Option<String>, DirectoryError> {
        Ok(self
            .store
            .order_by_token(token)
            .map_err(unavailable)?
            .map(|target| target.email.to_string()))
    }

    fn sent_to(&self, message_id: &str, address: &str) -> Result<bool, DirectoryError> {
        let Ok(address) = address.parse::<EmailAddress>() else {
            return Ok(false);
        };
        Ok(self
            .store
            .outbox_by_message_id(message_id)
            .map_err(unavailable)?
            .is_some_and(|item| item.to.key() == address.key()))
    }

    fn order_exists(&self, so: &OrderId) -> Result<Option<OrderRef>, DirectoryError> {
        Ok(self.order(so)?.map(|o| Self::to_ref(&o, None)))
    }

    fn order_by_po(&self, po: &PoNumber) -> Result<Option<OrderRef>, DirectoryError> {
        let ids = self.store.orders_by_po(po.as_str()).map_err(unavailable)?;
        // An ambiguous PO (several orders) threads to none of them.
        match ids.as_slice() {
            [so] => Ok(self.order(so)?.map(|o| Self::to_ref(&o, None))),
            _ => Ok(None),
        }
    }

    fn is_authorized(&self, so: &OrderId, sender: &str) -> Result<bool, DirectoryError> {
        let Ok(sender) = sender.parse::<EmailAddress>() else {
            return Ok(false);
        };
        if self
            .store
            .is_authorized_sender(so, &sender)
            .map_err(unavailable)?
        {
            return Ok(true);
        }
        // Account-Based Access approximated by the company's mail domain:
        // only when the operator turned it on, and never for public
        // mailbox providers.
        if !self.company_domains || is_public_mail_domain(sender.domain()) {
            return Ok(false);
        }
        Ok(self.order(so)?.is_some_and(|o| {
            o.recipients
                .iter()
                .any(|r| r.email.domain() == sender.domain())
        }))
    }

    fn is_own_address(&self, addr: &str) -> bool {
        crate::domain::is_own_domain(addr, &self.domain)
    }

    fn known_lang(&self, _addr: &str) -> Option<Lang> {
        None
    }

    /// From the `Content-Language` of the mail as the outbox keeps it.
    fn sent_lang(&self, message_id: &str) -> Result<Option<Lang>, DirectoryError> {
        let Some(item) = self
            .store
            .outbox_by_message_id(message_id)
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let raw = self.store.outbox_body(item.id).map_err(unavailable)?;
        Ok(raw.as_deref().and_then(content_language))
    }
}

/// The `Content-Language` header of a raw message (its header section only).
fn content_language(raw: &str) -> Option<Lang> {
    raw.lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-language")
                .then(|| value.split(',').next().unwrap_or("").parse().ok())
                .flatten()
        })
}

/// Free mailbox providers: sharing one never makes two people colleagues.
fn is_public_mail_domain(domain: &str) -> bool {
    const PUBLIC: &[&str] = &[
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.fr",
        "live.com",
        "live.fr",
        "msn.com",
        "yahoo.com",
        "yahoo.fr",
        "icloud.com",
        "me.com",
        "aol.com",
        "gmx.com",
        "gmx.fr",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "proton.me",
        "protonmail.com",
    ];
    PUBLIC.contains(&domain.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{MailSettings, Notifier, ServerKey, Templates};

    #[test]
    fn content_language_of_a_header_section() {
        let raw = "From: a@b\r\nContent-Language: fr\r\nSubject: x\r\n\r\nContent-Language: en\r\n";
        assert_eq!(content_language(raw), Some(Lang::Fr));
        assert_eq!(content_language("Subject: x\r\n\r\nbody"), None);
    }

    /// The language of a mail edesk sent, read back by its Message-ID.
    #[test]
    fn sent_lang_reads_the_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let n = Notifier::from_parts(
            store.clone(),
            Templates::embedded().unwrap(),
            ServerKey::from_bytes([7; 32]),
            MailSettings {
                domain: "edesk.example.com".into(),
                from_name: "eDelivery".into(),
                from_local: "edelivery".into(),
                public_url: "https://edesk.example.com".into(),
            },
        );
        let order = crate::notify::cmd::sample_order(
            "10458321",
            "marie.dupont@dupont-sa.example.fr",
            Lang::Fr,
        );
        n.import_value(&order, "test").unwrap();
        let items = store.outbox_list(None).unwrap();
        assert!(!items.is_empty());
        let d = StoreDirectory::new(store, "edesk.example.com", false);
        for item in items {
            let id = item.message_id.trim_matches(['<', '>']).to_string();
            assert_eq!(d.sent_lang(&id).unwrap(), Some(Lang::Fr), "{id}");
        }
        assert_eq!(d.sent_lang("nothing@edesk.example.com").unwrap(), None);
    }
}
