//! The template context: the same shape for every kind, so templates can
//! rely on every key being present (tera 2 is strict about undefined values).

use serde_json::{Map, Value, json};

use super::{MailSettings, MailSpec};
use crate::domain::{HoldType, Lang, Order, team_for_hold};

/// Who to contact about a hold, as the source document says.
pub fn hold_contact(h: HoldType, lang: Lang) -> &'static str {
    match (team_for_hold(h), lang) {
        (crate::domain::Team::Exportops, Lang::En) => {
            "for export holds, contact exportops@cisco.com"
        }
        (crate::domain::Team::Exportops, Lang::Fr) => {
            "pour les mises en attente pour exportation, contactez exportops@cisco.com"
        }
        (crate::domain::Team::SacSupport, Lang::En) => {
            "for new product holds, contact sac-support@cisco.com"
        }
        (crate::domain::Team::SacSupport, Lang::Fr) => {
            "pour les mises en attente NPH, contactez sac-support@cisco.com"
        }
        (_, Lang::En) => "contact Customer Service Central",
        (_, Lang::Fr) => "contactez le service à la clientèle (www.cisco.com/go/cs/)",
    }
}

const EXTRA_KEYS: &[&str] = &[
    "granted_by",
    "released",
    "deadline",
    "days_left",
    "ticket",
    "team",
    "business_days",
    "due",
    "text",
    "code",
    "expires_minutes",
    "question",
    "support",
    "command",
    "command_name",
    "subject",
    "ok",
    "so_ref",
    "customer",
    "reasons",
];

fn order_value(o: &Order, lang: Lang, notes: &[super::LineNote]) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .filter(|l| notes.is_empty() || notes.iter().any(|(id, _, _)| id == &l.line))
        .map(|l| {
            let (carton, cref) = notes
                .iter()
                .find(|(id, _, _)| id == &l.line)
                .map(|(_, c, r)| (c.clone(), r.clone()))
                .unwrap_or((None, None));
            json!({
                "line": l.line, "pid": l.pid, "qty": l.qty,
                "images": l.images.iter().map(|i| json!({"file": i.file, "md5": i.md5})).collect::<Vec<_>>(),
                "carton_note": carton, "customer_ref": cref,
            })
        })
        .collect();
    let holds: Vec<Value> = o
        .open_holds()
        .map(|h| json!({"type": h.kind.as_str(), "label": h.kind.label(lang), "line": h.line, "contact": hold_contact(h.kind, lang)}))
        .collect();
    json!({
        "so": o.so.as_str(),
        "po": o.po.as_ref().map(|p| p.as_str()),
        "bill_to": o.bill_to,
        "requested_date": o.requested_date.map(|d| d.to_string()),
        "lines": lines,
        "holds": holds,
    })
}

pub(crate) fn build(
    s: &MailSpec<'_>,
    token: &str,
    settings: &MailSettings,
    unsubscribe: Option<&str>,
) -> Value {
    let base = &settings.public_url;
    let so = s.order.map(|o| o.so.as_str()).unwrap_or("");
    let links = json!({
        "access_order": format!("{base}/orders/{so}?t={token}"),
        "register_pak": format!("{base}/orders/{so}/pak?t={token}"),
        "smart_licenses": format!("{base}/smart-licenses"),
        "license_documents": format!("{base}/orders/{so}/licenses?t={token}"),
        "restore": format!("{base}/orders/{so}/restore?t={token}"),
        "unsubscribe": unsubscribe,
    });
    let mut extra = Map::new();
    for k in EXTRA_KEYS {
        extra.insert((*k).to_string(), Value::Null);
    }
    extra.insert("released".into(), json!([]));
    if let Value::Object(given) = &s.extra {
        for (k, v) in given {
            extra.insert(k.clone(), v.clone());
        }
    }
    json!({
        "lang": s.lang.as_str(),
        "recipient": {"name": s.to.name, "email": s.to.email.as_str()},
        "order": s.order.map(|o| order_value(o, s.lang, &s.line_notes)),
        "links": links,
        "extra": Value::Object(extra),
    })
}
