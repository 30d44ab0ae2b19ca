//! What the bot says, in English and French. Plain text with light
//! markdown (Discord renders it, the console and the web chat show it as
//! is). User text is only ever inserted as a value, never used as a format.

use super::command::Verb;
use crate::domain::Lang;

/// `help`: every enabled command with its argument, in the reply language.
pub fn help(lang: Lang, enabled: &[Verb], prefix: &str) -> String {
    let mut out = String::from(match lang {
        Lang::En => "I answer questions about eDelivery orders from the FAQ. Commands:",
        Lang::Fr => {
            "Je réponds aux questions sur les commandes eDelivery à partir de la FAQ. Commandes :"
        }
    });
    for v in Verb::ALL.into_iter().filter(|v| enabled.contains(v)) {
        let (arg, en, fr) = match v {
            Verb::Faq => (
                " QUESTION",
                "ask the FAQ (or just type your question)",
                "interroger la FAQ (ou tapez simplement votre question)",
            ),
            Verb::Order => (
                " SO",
                "status, holds, download policy of an order (linked accounts)",
                "état, mises en attente, téléchargements d'une commande (comptes liés)",
            ),
            Verb::Restore => (
                " SO",
                "restore an archived order",
                "restaurer une commande archivée",
            ),
            Verb::Resend => (
                " SO",
                "send the order's notification mail again",
                "renvoyer le courriel de notification de la commande",
            ),
            Verb::Link => (
                " EMAIL",
                "link this chat account to your address (a code is mailed)",
                "lier ce compte à votre adresse (un code vous est envoyé)",
            ),
            Verb::Verify => (
                " CODE",
                "confirm the link with the code",
                "confirmer la liaison avec le code",
            ),
            Verb::Escalate => (
                " TEXT",
                "hand your question to a support team",
                "transmettre votre question à une équipe du support",
            ),
            Verb::Unsubscribe => (
                "",
                "stop notification mails to your linked address",
                "ne plus recevoir de notifications à l'adresse liée",
            ),
            Verb::Lang => (" en|fr", "reply language", "langue des réponses"),
            Verb::Help => ("", "this help", "cette aide"),
        };
        let arg = match (lang, arg) {
            (Lang::Fr, " TEXT") => " TEXTE",
            (Lang::Fr, " EMAIL") => " COURRIEL",
            (_, a) => a,
        };
        let what = if lang == Lang::En { en } else { fr };
        out.push_str(&format!("\n`{prefix}{}{arg}`: {what}", v.name_in(lang)));
    }
    out
}

/// Reply to a command the bot's config turns off on this platform.
pub fn disabled(lang: Lang, verb: Verb) -> String {
    match lang {
        Lang::En => format!(
            "The `{}` command is not available here. Type `help` for the list.",
            verb.name()
        ),
        Lang::Fr => format!(
            "La commande `{}` n'est pas disponible ici. Tapez `aide` pour la liste.",
            verb.name_in(Lang::Fr)
        ),
    }
}

/// Reply when the user exceeds their per-minute limit; `secs` until the next message is answered.
pub fn rate_limited(lang: Lang, secs: u64) -> String {
    match lang {
        Lang::En => format!(
            "You are sending messages faster than I can answer them well. Please wait {secs} s and try again."
        ),
        Lang::Fr => format!(
            "Vous envoyez des messages plus vite que je ne peux y répondre correctement. Merci de patienter {secs} s avant de réessayer."
        ),
    }
}

/// Reply when a channel exceeds its per-minute limit; `secs` until the bot answers there again.
pub fn channel_limited(lang: Lang, secs: u64) -> String {
    match lang {
        Lang::En => format!(
            "This channel is busy; I will answer again in {secs} s. A direct message to me works meanwhile."
        ),
        Lang::Fr => format!(
            "Ce canal est très sollicité ; je répondrai de nouveau dans {secs} s. Vous pouvez m'écrire en message privé."
        ),
    }
}

/// How to reach a person, added where the bot cannot help further.
pub fn escalate_hint(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "To ask a person, type `escalate` followed by your question.",
        Lang::Fr => {
            "Pour poser la question à une personne, tapez `transmettre` suivi de votre question."
        }
    }
}

/// Added to an FAQ answer whose entry is marked `needs_person`.
pub fn needs_person(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "This topic usually needs a person: type `escalate` followed by your question and the team in charge will answer."
        }
        Lang::Fr => {
            "Ce sujet demande en général une personne : tapez `transmettre` suivi de votre question et l'équipe concernée vous répondra."
        }
    }
}

/// Opening of the reply when no FAQ entry is confident enough.
pub fn not_sure(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "I am not sure I understood your question.",
        Lang::Fr => "Je ne suis pas sûr d'avoir compris votre question.",
    }
}

/// Heading of the list of close FAQ questions.
pub fn did_you_mean(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Did you mean:",
        Lang::Fr => "Vouliez-vous dire :",
    }
}

/// Invitation to rate an answer; `platform_reactions` when the platform has reactions (Discord).
pub fn rate_hint(lang: Lang, platform_reactions: bool) -> &'static str {
    match (lang, platform_reactions) {
        (Lang::En, true) => "Was this helpful? React with 👍 or 👎.",
        (Lang::Fr, true) => "Cette réponse vous a-t-elle aidé ? Réagissez avec 👍 ou 👎.",
        (Lang::En, false) => "Was this helpful? Rate it with 👍 or 👎.",
        (Lang::Fr, false) => "Cette réponse vous a-t-elle aidé ? Notez-la avec 👍 ou 👎.",
    }
}

/// Reply when the argument of `order`/`restore`/`resend` is not an order number.
pub fn bad_order(lang: Lang, given: &str) -> String {
    match lang {
        Lang::En => format!(
            "\"{given}\" is not a sales order number (8 to 10 digits), for example `order 10458321`."
        ),
        Lang::Fr => format!(
            "« {given} » n'est pas un numéro de commande (8 à 10 chiffres), par exemple `commande 10458321`."
        ),
    }
}

/// Reply when the argument of `link` is not an email address.
pub fn bad_email(lang: Lang, given: &str) -> String {
    match lang {
        Lang::En => format!(
            "\"{given}\" is not an email address. Type `link` followed by the address that receives your order notifications."
        ),
        Lang::Fr => format!(
            "« {given} » n'est pas une adresse électronique. Tapez `lier` suivi de l'adresse qui reçoit vos notifications de commande."
        ),
    }
}

/// The only answer about an order for an account that may not see it:
/// the same whether the order exists or not.
pub fn how_to_link(lang: Lang, linked: Option<&str>) -> String {
    match (lang, linked) {
        (Lang::En, None) => "Order details are only shown to a verified recipient of the order. Link this chat account to the address that receives the order's notifications: type `link you@example.com`, then `verify CODE` with the code we mail you.".into(),
        (Lang::Fr, None) => "Les détails d'une commande ne sont montrés qu'à un destinataire vérifié de la commande. Liez ce compte à l'adresse qui reçoit les notifications de la commande : tapez `lier vous@exemple.fr`, puis `verifier CODE` avec le code que nous vous envoyons.".into(),
        (Lang::En, Some(a)) => format!("Your linked address {a} is not a recipient of that order and has no access granted to it, so I cannot show it. If another address of yours receives its notifications, link that one: type `link you@example.com`."),
        (Lang::Fr, Some(a)) => format!("Votre adresse liée {a} n'est pas destinataire de cette commande et n'y a pas reçu d'accès : je ne peux pas l'afficher. Si une autre de vos adresses reçoit ses notifications, liez-la : tapez `lier vous@exemple.fr`."),
    }
}

/// Said in a channel when the answer went to a direct message instead.
pub fn sent_privately(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "I answered you in a direct message (order details are never posted in a channel)."
        }
        Lang::Fr => {
            "Je vous ai répondu en message privé (les détails de commande ne sont jamais publiés dans un canal)."
        }
    }
}

/// Reply to `link` once the code is mailed: `masked` is the address with the
/// local part hidden (`a***@example.com`), `minutes` the code's lifetime.
pub fn code_sent(lang: Lang, masked: &str, minutes: u64) -> String {
    match lang {
        Lang::En => format!(
            "If {masked} can receive mail, a 6-digit code is on its way. Type `verify CODE` within {minutes} minutes to link this account."
        ),
        Lang::Fr => format!(
            "Si {masked} peut recevoir du courrier, un code à 6 chiffres est en route. Tapez `verifier CODE` dans les {minutes} minutes pour lier ce compte."
        ),
    }
}

/// Reply to `link` when a code was sent to the account a moment ago.
pub fn code_throttled(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "A code was sent a moment ago. Check your mail (and spam folder), or wait a minute before asking for another."
        }
        Lang::Fr => {
            "Un code vient d'être envoyé. Vérifiez votre courrier (et les indésirables), ou attendez une minute avant d'en demander un autre."
        }
    }
}

/// Reply to `verify` when no code waits for the account.
pub fn no_code(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "There is no code waiting for this account. Type `link you@example.com` first.",
        Lang::Fr => "Aucun code n'attend pour ce compte. Tapez d'abord `lier vous@exemple.fr`.",
    }
}

/// Reply to `verify` after the code's time ran out.
pub fn code_expired(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "That code has expired. Type `link` with your address again for a new one.",
        Lang::Fr => {
            "Ce code a expiré. Tapez de nouveau `lier` avec votre adresse pour en recevoir un nouveau."
        }
    }
}

/// Reply to a wrong `verify` code; `left` tries remain.
pub fn code_wrong(lang: Lang, left: u32) -> String {
    match lang {
        Lang::En => format!("That code is not right. {left} tries left."),
        Lang::Fr => format!("Ce code n'est pas le bon. Encore {left} essai(s)."),
    }
}

/// Reply to `verify` once the code used up its tries.
pub fn code_exhausted(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "Too many wrong codes: this code no longer works. Type `link` with your address to get a new one."
        }
        Lang::Fr => {
            "Trop de codes erronés : ce code n'est plus valable. Tapez `lier` avec votre adresse pour en recevoir un nouveau."
        }
    }
}

/// Reply to a correct `verify`: the account is now linked to `email`.
pub fn linked(lang: Lang, email: &str) -> String {
    match lang {
        Lang::En => format!(
            "This account is now linked to {email}. You can ask `order SO` for the orders it receives."
        ),
        Lang::Fr => format!(
            "Ce compte est maintenant lié à {email}. Vous pouvez demander `commande SO` pour les commandes qu'elle reçoit."
        ),
    }
}

/// Reply to a command that needs a linked, verified address.
pub fn need_link(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "This needs a linked address: type `link you@example.com`, then `verify CODE`.",
        Lang::Fr => {
            "Il faut d'abord lier une adresse : tapez `lier vous@exemple.fr`, puis `verifier CODE`."
        }
    }
}

/// Reply to `unsubscribe`: the linked `email` gets no more order notifications.
pub fn unsubscribed(lang: Lang, email: &str) -> String {
    match lang {
        Lang::En => format!(
            "Done: {email} will no longer receive order notifications. Answers to your own requests still reach you."
        ),
        Lang::Fr => format!(
            "C'est fait : {email} ne recevra plus de notifications de commande. Les réponses à vos demandes vous parviendront toujours."
        ),
    }
}

/// The answer to `restore SO`: `notified` are the addresses the
/// `order_restored` mail goes to (`None`: the order was not archived).
pub fn restored(lang: Lang, so: &str, notified: Option<&[String]>) -> String {
    let to = notified.map(|n| n.join(", "));
    match (lang, to) {
        (Lang::En, Some(to)) if !to.is_empty() => format!(
            "Order {so} is restored from the archive: it can be downloaded again. A confirmation is on its way to {to}."
        ),
        (Lang::En, Some(_)) => {
            format!("Order {so} is restored from the archive: it can be downloaded again.")
        }
        (Lang::En, None) => format!("Order {so} is not archived: there is nothing to restore."),
        (Lang::Fr, Some(to)) if !to.is_empty() => format!(
            "La commande {so} est restaurée depuis les archives : elle peut de nouveau être téléchargée. Une confirmation est envoyée à {to}."
        ),
        (Lang::Fr, Some(_)) => format!(
            "La commande {so} est restaurée depuis les archives : elle peut de nouveau être téléchargée."
        ),
        (Lang::Fr, None) => {
            format!("La commande {so} n'est pas archivée : il n'y a rien à restaurer.")
        }
    }
}

/// Reply to `resend SO`: `done` when the notification was queued to `email`.
pub fn resent(lang: Lang, so: &str, email: &str, done: bool) -> String {
    match (lang, done) {
        (Lang::En, true) => format!("The notification of order {so} is on its way to {email}."),
        (Lang::En, false) => format!(
            "Order {so} cannot be sent now (archived, on hold, or sent again a moment ago). Type `order {so}` to see why."
        ),
        (Lang::Fr, true) => {
            format!("La notification de la commande {so} est en route vers {email}.")
        }
        (Lang::Fr, false) => format!(
            "La commande {so} ne peut pas être envoyée maintenant (archivée, en attente, ou renvoyée à l'instant). Tapez `commande {so}` pour savoir pourquoi."
        ),
    }
}

/// Reply to `escalate` without a question.
pub fn escalate_empty(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Tell me what the team should know: `escalate` followed by your question.",
        Lang::Fr => {
            "Dites-moi ce que l'équipe doit savoir : `transmettre` suivi de votre question."
        }
    }
}

/// Reply once a ticket is open: `team` answers within `days` business days, by `due`.
pub fn escalated(lang: Lang, ticket: &str, team: &str, days: u32, due: &str) -> String {
    match lang {
        Lang::En => format!(
            "Ticket {ticket} is open for {team}. They answer within {days} business day(s) (by {due}), here in this conversation. Until then I keep answering FAQ questions."
        ),
        Lang::Fr => format!(
            "Le ticket {ticket} est ouvert pour {team}. L'équipe répond sous {days} jour(s) ouvré(s) (d'ici le {due}), ici dans cette conversation. D'ici là, je continue de répondre aux questions de la FAQ."
        ),
    }
}

/// A team's answer relayed into the conversation (`by`: the team member).
pub fn team_answer(lang: Lang, ticket: &str, by: &str, text: &str) -> String {
    match lang {
        Lang::En => format!("Answer from {by} on ticket {ticket}:\n{text}"),
        Lang::Fr => format!("Réponse de {by} sur le ticket {ticket} :\n{text}"),
    }
}

/// Reply to `lang en|fr` (or to `lang` when a language is fixed), in that language.
pub fn lang_set(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "I will answer in English.",
        Lang::Fr => "Je répondrai en français.",
    }
}

/// Reply to `lang auto` (or to `lang` when none is fixed): answers follow each message's language.
pub fn lang_auto(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "I will answer in the language of each message. `lang en` or `lang fr` fixes it."
        }
        Lang::Fr => {
            "Je répondrai dans la langue de chaque message. `langue en` ou `langue fr` la fixe."
        }
    }
}

/// Reply to `lang` with an unknown language.
pub fn lang_bad(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "I speak `en` (English) and `fr` (French): type `lang en` or `lang fr`.",
        Lang::Fr => {
            "Je parle `en` (anglais) et `fr` (français) : tapez `langue en` ou `langue fr`."
        }
    }
}

/// Reply when a command failed (the error is logged, not shown).
pub fn unavailable(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Sorry, I cannot do that right now. Please try again in a minute.",
        Lang::Fr => {
            "Désolé, je ne peux pas le faire pour le moment. Merci de réessayer dans une minute."
        }
    }
}

/// Acknowledges a rating of an answer.
pub fn thanks_rating(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Thanks for the feedback.",
        Lang::Fr => "Merci pour votre avis.",
    }
}
