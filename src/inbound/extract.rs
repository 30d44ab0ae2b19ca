//! The text a person wrote: without quoted history, signature, closing
//! formula or legal disclaimer. Works line by line on plain text; HTML-only
//! mail is cut at its quote markers first and converted.
//!
//! Quoted lines (`>`) are dropped wherever they are, so inline and
//! bottom-posted answers survive; an attribution line ("On … wrote:") is
//! dropped when `>` lines follow it and ends the text when they do not
//! (Outlook-style history has no markers).

use std::sync::OnceLock;

use regex::Regex;

use super::html;

/// Lines looked at after a closing formula for it to count as a sign-off.
const MAX_SIGNATURE_LINES: usize = 10;

/// The new text of a message, from its text part or else its HTML part.
pub fn new_text(text: Option<&str>, html_body: Option<&str>, sender_name: Option<&str>) -> String {
    let from_text = text.map(|t| strip(t, sender_name));
    match (from_text, html_body) {
        (Some(t), _) if !t.is_empty() => t,
        (t, Some(h)) => {
            let h = strip(&html::to_text(html::cut_quoted(h)), sender_name);
            if h.is_empty() {
                t.unwrap_or_default()
            } else {
                h
            }
        }
        (t, None) => t.unwrap_or_default(),
    }
}

/// What a message forwarded inside this one says (its header block, its
/// own quotes and signature cut), when the sender forwards one: a forward
/// separator ("Forwarded message", "Message transféré", "Begin forwarded
/// message"), or, in a mail whose subject says it is a forward (`Fwd:`,
/// `TR:`), a header block (Outlook writes no separator). A reply's quoted
/// history ("Original Message") is not a forward: it is what we wrote.
pub fn forwarded_text(
    text: Option<&str>,
    html_body: Option<&str>,
    subject: &str,
) -> Option<Forwarded> {
    let p = patterns()?;
    let body = match (text, html_body) {
        (Some(t), _) if !t.trim().is_empty() => plain_spaces(t),
        (_, Some(h)) => plain_spaces(&html::to_text(h)),
        _ => return None,
    };
    let lines: Vec<&str> = body.lines().collect();
    let start = lines
        .iter()
        .position(|l| p.forward.is_match(l))
        .or_else(|| {
            p.forward_subject
                .is_match(subject)
                .then(|| (0..lines.len()).find(|&i| header_block_at(p, &lines, i)))
                .flatten()
        })?;
    let block = &lines[start..];
    let rest = skip_header_block(p, block);
    let from = block[..block.len() - rest.len()]
        .iter()
        .find(|l| p.header_first.is_match(l))
        .and_then(|l| address_in(l));
    let text = strip(&rest.join("\n"), None);
    (!text.trim().is_empty()).then_some(Forwarded { from, text })
}

/// A message forwarded inside another: who wrote it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The address of its `From:` / `De :` line, if it shows one.
    pub from: Option<String>,
    /// Its text, without headers, quotes and signature.
    pub text: String,
}

/// The mail address in a header line: inside `<>`, else a bare word with `@`.
fn address_in(line: &str) -> Option<String> {
    let bracketed = line
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(a, _)| a);
    bracketed
        .or_else(|| {
            line.split(|c: char| {
                c.is_whitespace() || matches!(c, ':' | ',' | ';' | '"' | '(' | ')' | '[' | ']')
            })
            .find(|w| w.contains('@'))
        })
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'))
}

/// The lines after a forward's separator and header block.
fn skip_header_block<'a, 'b>(p: &Patterns, lines: &'a [&'b str]) -> &'a [&'b str] {
    let mut i = usize::from(
        p.forward
            .is_match(lines.first().copied().unwrap_or_default()),
    );
    while let Some(l) = lines.get(i) {
        let header =
            p.header_first.is_match(l) || p.header_next.is_match(l) || p.header_inline.is_match(l);
        if !(header || l.trim().is_empty() || p.separator.is_match(l)) {
            break;
        }
        i += 1;
    }
    &lines[i.min(lines.len())..]
}

struct Patterns {
    forward: Regex,
    forward_subject: Regex,
    attribution: Regex,
    separator: Regex,
    header_first: Regex,
    header_next: Regex,
    header_inline: Regex,
    signature: Regex,
    disclaimer: Regex,
    closing: Regex,
}

fn patterns() -> Option<&'static Patterns> {
    static P: OnceLock<Option<Patterns>> = OnceLock::new();
    P.get_or_init(|| {
        Some(Patterns {
            forward: Regex::new(
                r"(?i)^\s*(-{2,}|_{2,}|={2,})?\s*(forwarded message|message transf[ée]r[ée]|message r[ée]exp[ée]di[ée]|weitergeleitete nachricht|mensaje reenviado)\s*(-{2,}|_{2,}|={2,})?\s*$|^\s*(begin forwarded message|d[ée]but du message r[ée]exp[ée]di[ée]|d[ée]but du message transf[ée]r[ée])\s*:?\s*$",
            )
            .ok()?,
            forward_subject: Regex::new(r"(?i)^\s*((re|aw|r[ée][fp])\s*:\s*)*(fwd?|tr|wg|rv)\s*:").ok()?,
            // EN/FR/DE/ES/NL/IT forms; wrapped lines are joined before matching.
            attribution: Regex::new(
                r"(?i)^\s*(\*\s*)?(on|le|am|el|op|il)\b.{0,250}\b(wrote|a [ée]crit|schrieb|escribi[óo]|schreef|ha scritto)\s*:?\s*(\*\s*)?$|^\s*message du \d{1,2}/\d{1,2}/\d{2,4}.{0,120}$|^\s*-{2,}\s*.{0,120}\b(wrote|a [ée]crit)\s*:?\s*-{2,}\s*$|^.{0,120}<[^>\s]+@[^>\s]+>\s+(wrote|a [ée]crit)\s*:\s*$",
            )
            .ok()?,
            separator: Regex::new(
                r"(?i)^\s*(-{2,}|_{2,}|={2,})?\s*(original message|message d.origine|mail original|message original|courriel original|forwarded message|message transf[ée]r[ée]|message r[ée]exp[ée]di[ée]|forwarded by .{0,80}|transf[ée]r[ée] par .{0,80})\s*(-{2,}|_{2,}|={2,})?\s*$|^\s*_{8,}\s*$|^\s*(begin forwarded message|d[ée]but du message r[ée]exp[ée]di[ée]|d[ée]but du message transf[ée]r[ée])\s*:?\s*$",
            )
            .ok()?,
            header_first: Regex::new(r"(?i)^\s*\*?\s*(from|de|von|van|exp[ée]diteur)\s*\*?\s*:\s*\*?\s*\S")
                .ok()?,
            header_next: Regex::new(
                r"(?i)^\s*\*?\s*(sent|date|envoy[ée]|gesendet|to|[àa]|pour|an|subject|objet|sujet|betreff|cc|copie [àa]|importance)\s*\*?\s*:",
            )
            .ok()?,
            header_inline: Regex::new(
                r"(?i)^\s*\*?(from|de)\s*\*?:.{1,200}\b(sent|envoy[ée]|date)\s*\*?:.{1,120}\b(to|[àa]|subject|objet)\s*\*?:",
            )
            .ok()?,
            signature: Regex::new(
                r"(?i)^\s*(--|__)\s*$|^\s*(sent|envoy[ée]|exp[ée]di[ée]|get|obtenir|t[ée]l[ée]charger)\s+(from|with|via|using|de|depuis|du|avec|[àa] partir d.|outlook|my|mon)\b.{0,60}$",
            )
            .ok()?,
            disclaimer: Regex::new(
                r"(?i)^\s*(\*+\s*)?(this (e-?mail|message|communication|transmission)\b.{0,80}\b(confidential|privileged|intended|contain)|confidentiality notice|confidential(ity)?\s*:|disclaimer|the information (contained )?in this (e-?mail|message)|please consider the environment|think before you print|ce (message|courriel|mail|e-mail|m[ée]l)\b.{0,100}\b(confidenti|strictement|destin|priv)|les informations contenues dans ce|avis de confidentialit[ée]|avertissement\s*:|(merci de |pensez [àa] |respectez )?(penser [àa] )?l.environnement|p\s+(please|pensez))",
            )
            .ok()?,
            closing: Regex::new(
                r"(?i)^\s*(thanks|thank you|many thanks|thanks again|thanks in advance|thank you in advance|thx|regards|best regards|kind regards|warm regards|warmest regards|best wishes|best|cheers|sincerely|yours sincerely|yours truly|yours faithfully|all the best|br|rgds|with thanks|respectfully|have a (nice|good|great) (day|week|weekend)|cordialement|bien cordialement|tr[èe]s cordialement|cdlt|bien [àa] vous|bien [àa] toi|salutations|meilleures salutations|sinc[èe]res salutations|salutations distingu[ée]es|bien sinc[èe]rement|merci|merci beaucoup|merci bien|merci d.avance|merci par avance|d.avance merci|en vous remerciant|en vous remerciant par avance|en vous remerciant d.avance|bonne journ[ée]e|bonne fin de journ[ée]e|belle journ[ée]e|amicalement|[àa] bient[ôo]t|bises|(je vous prie|nous vous prions|veuillez|recevez)[^\n]{0,60}\b(salutations|sentiments|considération|consideration)\b[^\n]{0,40})\s*[,.!]*\s*([,.!-]\s*\p{Lu}[\p{L}.'\- ]{0,40})?\s*$",
            )
            .ok()?,
        })
    })
    .as_ref()
}

fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// How many lines (1–3) form an attribution starting at `i`, if any.
fn attribution_at(p: &Patterns, lines: &[&str], i: usize) -> Option<usize> {
    let first = lines[i].trim();
    if first.is_empty() || first.len() > 400 || is_quoted(first) {
        return None;
    }
    let mut joined = String::new();
    for n in 0..3 {
        let l = lines.get(i + n)?.trim();
        if n > 0 && (l.is_empty() || is_quoted(l)) {
            return None;
        }
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(l);
        if p.attribution.is_match(&joined) {
            return Some(n + 1);
        }
    }
    None
}

/// An Outlook-style header block (`From:` then `Sent:`/`To:`/`Subject:`).
fn header_block_at(p: &Patterns, lines: &[&str], i: usize) -> bool {
    let l = lines[i];
    if p.header_inline.is_match(l) {
        return true;
    }
    if !p.header_first.is_match(l) {
        return false;
    }
    let following = lines[i + 1..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .take(5)
        .filter(|l| p.header_next.is_match(l))
        .count();
    following >= 2
}

fn next_content<'a>(lines: &[&'a str], from: usize) -> Option<&'a str> {
    lines[from.min(lines.len())..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
}

/// Strips quoted history, signature, closing formula and disclaimer.
pub fn strip(body: &str, sender_name: Option<&str>) -> String {
    let Some(p) = patterns() else {
        return body.trim().to_string();
    };
    let body = plain_spaces(body);
    let lines: Vec<&str> = body.lines().collect();
    let mut out: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if is_quoted(line) {
            i += 1;
            continue;
        }
        if let Some(n) = attribution_at(p, &lines, i) {
            if next_content(&lines, i + n).is_some_and(is_quoted) {
                i += n;
                continue;
            }
            break;
        }
        if p.separator.is_match(line) || header_block_at(p, &lines, i) || p.signature.is_match(line)
        {
            break;
        }
        let has_content = out.iter().any(|l| !l.trim().is_empty());
        if has_content && p.disclaimer.is_match(line) {
            break;
        }
        out.push(line);
        i += 1;
    }
    cut_closing(p, &mut out);
    cut_sender_name(&mut out, sender_name);
    tidy(&out)
}

/// French typography puts no-break spaces (U+00A0, narrow U+202F, thin
/// U+2009 …) before `:` and inside "a écrit", and editors leave invisible
/// characters (zero-width space, word joiner, BOM, soft hyphen); the
/// patterns are written with plain spaces and letters.
fn plain_spaces(body: &str) -> String {
    body.chars()
        .filter(|c| !matches!(c, '\u{200b}' | '\u{2060}' | '\u{feff}' | '\u{ad}'))
        .map(|c| {
            if c.is_whitespace() && !matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Removes a trailing sign-off: a closing formula followed only by a few
/// short lines (name, title, phone, company).
fn cut_closing(p: &Patterns, out: &mut Vec<&str>) {
    let content: Vec<usize> = (0..out.len())
        .filter(|&k| !out[k].trim().is_empty())
        .collect();
    let tail = content.len().saturating_sub(MAX_SIGNATURE_LINES + 1);
    for &k in &content[tail..] {
        if k == content[0] {
            continue;
        }
        // Signature lines are short and are not questions or sentences.
        let rest_short = out[k + 1..].iter().all(|l| {
            let l = l.trim();
            let words = l.split_whitespace().count();
            let sentence = words > 6 && l.ends_with(['.', '!']);
            l.chars().count() <= 70 && words <= 12 && !l.ends_with('?') && !sentence
        });
        if rest_short && p.closing.is_match(out[k]) {
            out.truncate(k);
            return;
        }
    }
}

/// Drops a last line that is only the sender's name (or first name).
fn cut_sender_name(out: &mut Vec<&str>, sender_name: Option<&str>) {
    let Some(name) = sender_name.map(str::trim).filter(|n| !n.is_empty()) else {
        return;
    };
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    let Some(last) = out.last() else { return };
    let last = last.trim().trim_end_matches(['.', ',']).to_lowercase();
    if out.len() < 2 || last.is_empty() {
        return;
    }
    let name = name.to_lowercase();
    let name = name.trim_matches(['"', '\'']);
    // "Harper, John" and "John Harper" both name John.
    let words: Vec<&str> = name.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let initials: String = words.iter().filter_map(|w| w.chars().next()).collect();
    let is_name = last == name
        || words.contains(&last.as_str())
        || (last.len() >= 2 && last == initials)
        || (last.split(' ').count() > 1 && last.split(' ').all(|w| words.contains(&w)));
    if is_name {
        out.pop();
    }
}

fn tidy(lines: &[&str]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for l in lines.iter().map(|l| l.trim_end()) {
        if l.trim().is_empty() && out.last().is_none_or(|p| p.trim().is_empty()) {
            continue;
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formal French closing formula is a sign-off, not a request
    /// ("Veuillez …" asks nothing), and the name under it goes with it.
    #[test]
    fn a_formal_french_closing_is_cut_with_the_name_under_it() {
        for closing in [
            "Veuillez agréer, Madame, Monsieur, nos salutations distinguées.",
            "Je vous prie d'agréer, Madame, Monsieur, l'expression de mes sentiments distingués.",
            "Recevez, Monsieur, mes salutations respectueuses.",
        ] {
            let body = format!(
                "Madame, Monsieur,\n\nLe téléchargement s'arrête à 60 %.\n\n{closing}\n\nÉric Vasseur\nClinique des Alpilles\n"
            );
            let got = strip(&body, None);
            assert_eq!(
                got.trim(),
                "Madame, Monsieur,\n\nLe téléchargement s'arrête à 60 %.",
                "{closing}"
            );
        }
        // "Veuillez" opening a request is the request.
        let body = "Bonjour,\n\nVeuillez annuler la commande 72000922.\n\nCordialement,\nÉric\n";
        assert!(strip(body, None).contains("Veuillez annuler"));
    }

    #[test]
    fn a_forwarded_mail_is_read_without_its_headers_and_signature() {
        let body = "Hi team,\n\nSee my customer's mail below.\n\n\
                    ---------- Forwarded message ---------\n\
                    From: IT Ops <itops@granite.example.com>\n\
                    Date: Tue, 1 Dec 2026 10:00\n\
                    Subject: licenses missing\n\
                    To: Chris <chris@partner.example.net>\n\n\
                    The smart account only shows 2 of the 5 licenses.\n\n\
                    Regards,\nIT Ops\n";
        let f = forwarded_text(Some(body), None, "FW: licenses missing");
        assert_eq!(
            f,
            Some(Forwarded {
                from: Some("itops@granite.example.com".into()),
                text: "The smart account only shows 2 of the 5 licenses.".into()
            })
        );
        // The new text stops at the forward, as before.
        assert_eq!(
            strip(body, None),
            "Hi team,\n\nSee my customer's mail below."
        );
    }

    #[test]
    fn outlook_forwards_have_only_a_header_block_and_a_subject_that_says_so() {
        let body = "Voir ci-dessous.\n\n________________________________\n\
                    De : Karen Walsh <k.walsh@freight.example.com>\n\
                    Envoyé : mardi 1 décembre 2026 16:12\n\
                    À : Nick <nick@doyle.example.net>\n\
                    Objet : licence\n\n\
                    Le routeur refuse la licence.\n";
        let f = forwarded_text(Some(body), None, "TR: licence");
        assert_eq!(
            f.as_ref().map(|f| (f.from.as_deref(), f.text.as_str())),
            Some((
                Some("k.walsh@freight.example.com"),
                "Le routeur refuse la licence."
            ))
        );
        // The same block under a reply is our own history, not a forward.
        assert_eq!(forwarded_text(Some(body), None, "RE: licence"), None);
        let reply = "Thanks!\n\n-----Original Message-----\nFrom: support\nSent: today\nTo: me\nSubject: x\n\nYour order is ready.";
        assert_eq!(forwarded_text(Some(reply), None, "Re: x"), None);
    }

    #[test]
    fn patterns_compile() {
        assert!(patterns().is_some());
    }

    #[test]
    fn gmail_wrapped_attribution_and_quote() {
        let b = "Hi,\n\nThe link is dead.\n\nOn Mon, 3 Mar 2025 at 09:02, eDelivery <\nedelivery@edesk.example.com> wrote:\n\n> Your order is ready\n> Bye\n";
        assert_eq!(strip(b, None), "Hi,\n\nThe link is dead.");
    }

    #[test]
    fn bottom_posting_keeps_answer() {
        let b = "Le 03/03/2025 à 09:02, eDelivery a écrit :\n> Votre commande est prête\n\nMerci, mais le lien ne marche pas.\n";
        assert_eq!(strip(b, None), "Merci, mais le lien ne marche pas.");
    }

    #[test]
    fn outlook_fr_header_block() {
        let b = "Bonjour,\nJe n'ai rien reçu.\n\nCordialement,\nMarie Dupont\nDupont SA\n\nDe : eDelivery <edelivery@edesk.example.com>\nEnvoyé : lundi 3 mars 2025 09:02\nÀ : Dupont Marie\nObjet : Votre commande\n\nTexte\n";
        assert_eq!(strip(b, None), "Bonjour,\nJe n'ai rien reçu.");
    }

    #[test]
    fn french_spaces_of_every_width_in_attributions() {
        for space in ['\u{a0}', '\u{202f}', '\u{2009}', '\u{2007}', '\u{2002}'] {
            let b = format!(
                "Le lien ne marche plus.\n\nLe 2 mars 2026 à 10:02, eDelivery <edelivery@edesk.example.com> a{space}écrit{space}:\n\n> Votre commande est disponible.\n"
            );
            assert_eq!(strip(&b, None), "Le lien ne marche plus.", "{space:?}");
            let b = format!(
                "Le lien ne marche plus.\n\nDe{space}: eDelivery\nEnvoyé{space}: lundi 2 mars 2026 10:02\nÀ{space}: Marie\nObjet{space}: Votre commande\n\nVotre commande est disponible.\n"
            );
            assert_eq!(strip(&b, None), "Le lien ne marche plus.", "{space:?}");
        }
        let b = "Le lien ne marche plus.\n\n\u{200b}Le 2 mars 2026 à 10:02, eDelivery a écrit\u{200b} :\n> Votre commande.\n";
        assert_eq!(strip(b, None), "Le lien ne marche plus.");
    }

    #[test]
    fn sentence_starting_with_thanks_is_content() {
        let b = "Thanks for the quick answer, but the PAK is still refused.\n";
        assert_eq!(strip(b, None), b.trim());
    }

    #[test]
    fn lone_first_name_is_dropped() {
        let b = "Can you resend the link?\n\nJohn\n";
        assert_eq!(strip(b, Some("John Harper")), "Can you resend the link?");
    }
}
