//! The `order SO` answer: status, open holds and who releases each (the
//! FAQ's contacts), early-ship state, download policy, archive. Shown only
//! to a verified recipient or OBA grantee (the service checks first).

use chrono::NaiveDate;

use crate::domain::{ARCHIVE_AFTER_MONTHS, SECOND_DOWNLOAD_DAYS, team_for_hold};
use crate::domain::{Lang, Order};
use crate::faq::Contact;

/// Who to contact for a team, as the FAQ's contact list words it.
fn contact_line(team: &str, contacts: &[Contact], lang: Lang) -> Option<String> {
    let c = contacts.iter().find(|c| c.team == team)?;
    let name = if lang == Lang::Fr {
        &c.name_fr
    } else {
        &c.name_en
    };
    let how = c
        .email
        .clone()
        .or_else(|| c.urls.first().cloned())
        .or_else(|| c.phone.clone())?;
    Some(if name.contains(&how) {
        name.clone()
    } else {
        format!("{name} ({how})")
    })
}

fn status_line(order: &Order, today: NaiveDate, lang: Lang) -> String {
    let so = order.so.as_str();
    let fr = lang == Lang::Fr;
    if order.archived {
        return if fr {
            format!(
                "Statut : archivée (plus de {ARCHIVE_AFTER_MONTHS} mois) : visible, non téléchargeable. Tapez `restaurer {so}` pour la restaurer."
            )
        } else {
            format!(
                "Status: archived (older than {ARCHIVE_AFTER_MONTHS} months): visible, not downloadable. Type `restore {so}` to restore it."
            )
        };
    }
    if order.has_open_hold() {
        return if fr {
            "Statut : en attente (voir les mises en attente ci-dessous).".into()
        } else {
            "Status: on hold (see the holds below).".into()
        };
    }
    if let Some(d) = order
        .requested_date
        .filter(|d| !order.early_ship && *d > today)
    {
        return if fr {
            format!(
                "Statut : en attente de la date demandée, le {d} (expédition anticipée : non) ; rien n'est envoyé avant."
            )
        } else {
            format!(
                "Status: waiting for its requested date, {d} (early ship: No); nothing is sent before."
            )
        };
    }
    match order.available_at {
        Some(at) if fr => format!("Statut : disponible depuis le {}.", at.date_naive()),
        Some(at) => format!("Status: available since {}.", at.date_naive()),
        None if fr => "Statut : en préparation.".into(),
        None => "Status: being prepared.".into(),
    }
}

fn download_line(order: &Order, today: NaiveDate, lang: Lang) -> Option<String> {
    let fr = lang == Lang::Fr;
    if order.archived || order.has_open_hold() {
        return None;
    }
    let available = order.available_at?.date_naive();
    let window_end = available + chrono::Duration::days(SECOND_DOWNLOAD_DAYS);
    Some(match (fr, today <= window_end) {
        (false, true) => format!(
            "Downloads: the 1st any time; a 2nd with a reason until {window_end} ({SECOND_DOWNLOAD_DAYS} days after availability); after that, or a 3rd, a review answers within 1 or 3 business days."
        ),
        (false, false) => format!(
            "Downloads: the 1st any time; the {SECOND_DOWNLOAD_DAYS}-day window for a 2nd closed on {window_end}, so a further download needs a review (answer within 1 business day, 3 for later requests)."
        ),
        (true, true) => format!(
            "Téléchargements : le 1er à tout moment ; un 2e avec un motif jusqu'au {window_end} ({SECOND_DOWNLOAD_DAYS} jours après la disponibilité) ; ensuite, ou pour un 3e, une vérification répond sous 1 ou 3 jours ouvrés."
        ),
        (true, false) => format!(
            "Téléchargements : le 1er à tout moment ; la fenêtre de {SECOND_DOWNLOAD_DAYS} jours pour un 2e s'est fermée le {window_end} : un autre téléchargement demande une vérification (réponse sous 1 jour ouvré, 3 pour les demandes suivantes)."
        ),
    })
}

/// The whole answer, in `lang`.
pub fn describe(order: &Order, today: NaiveDate, contacts: &[Contact], lang: Lang) -> String {
    let fr = lang == Lang::Fr;
    let mut out = Vec::new();
    let mut head = if fr {
        format!("**Commande {}**", order.so)
    } else {
        format!("**Order {}**", order.so)
    };
    if let Some(po) = &order.po {
        head.push_str(&format!(" (PO {})", po.as_str()));
    }
    if let Some(b) = &order.bill_to {
        head.push_str(&format!(
            ", {} {b}",
            if fr { "facturée à" } else { "bill to" }
        ));
    }
    out.push(head);
    out.push(status_line(order, today, lang));
    for h in order.open_holds() {
        let team = team_for_hold(h.kind);
        let scope = match (&h.line, fr) {
            (Some(l), false) => format!("line {l}"),
            (Some(l), true) => format!("ligne {l}"),
            (None, false) => "whole order".to_string(),
            (None, true) => "toute la commande".to_string(),
        };
        let who = contact_line(team.as_str(), contacts, lang).unwrap_or_else(|| team.to_string());
        out.push(if fr {
            format!(
                "- {} ({scope}) : levée par {who}. Les mises en attente font partie du processus normal ; elles sont levées à mesure que la commande avance.",
                h.kind.label(lang)
            )
        } else {
            format!(
                "- {} ({scope}): released by {who}. Holds are part of the standard ordering process and are released as the order gets processed.",
                h.kind.label(lang)
            )
        });
    }
    out.push(match (fr, order.early_ship) {
        (false, true) => "Early ship: yes (sent as soon as it is available).".into(),
        (false, false) => "Early ship: no (nothing is sent before the requested date).".into(),
        (true, true) => "Expédition anticipée : oui (envoyée dès qu'elle est disponible).".into(),
        (true, false) => {
            "Expédition anticipée : non (rien n'est envoyé avant la date demandée).".into()
        }
    });
    if let Some(d) = download_line(order, today, lang) {
        out.push(d);
    }
    for l in &order.lines {
        let images = l.images.len();
        out.push(if fr {
            format!(
                "Ligne {} : {} × {} ({images} image(s))",
                l.line, l.pid, l.qty
            )
        } else {
            format!("Line {}: {} × {} ({images} image(s))", l.line, l.pid, l.qty)
        });
    }
    out.join("\n")
}
