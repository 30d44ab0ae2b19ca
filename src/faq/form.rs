//! The form of a question: asking what something *is* (a definition), *how*
//! to do it (a procedure), *why*, or *where*. Neighbouring FAQ entries often
//! share nearly all their words and differ in exactly this ("What is
//! Order-Based Access?" next to "How do I send Order-Based Access mail?"),
//! so the ranker favours the entry whose question has the user's form.

use std::sync::OnceLock;

use regex::Regex;

/// What a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// "What is X", "Qu'est-ce que X", "Que signifie X".
    Definition,
    /// "How do I", "How can we", "Comment puis-je", "Que dois-je faire".
    Procedure,
    /// "Why", "Pourquoi".
    Reason,
    /// "Where", "Où".
    Place,
    /// Anything else (a statement, "Can I", a yes/no question).
    Other,
}

/// Cues per form, EN and FR (accents optional: users type without them).
/// A definition is "what is/are" followed by a subject, not by "the best
/// way", "the process" or "the procedure", which ask how.
const CUES: [(Form, &str); 4] = [
    (
        Form::Procedure,
        concat!(
            r"(?i)\b(how (do|can|should|would|could|does|to)\b|what (is|are) the (best )?(way|process|procedure|steps)\b|",
            r"steps to\b|comment\b|que (dois|faut|doit)|quelle est la (proc[ée]dure|marche)|marche [àa] suivre|proc[ée]dure pour)"
        ),
    ),
    (
        Form::Definition,
        concat!(
            r"(?i)\b(what(\s+|')(is|are|s)\b|what does .{1,60}\bmean\b|meaning of\b|define\b|",
            r"what (it|this|that|they) (is|are|means?)\b|what .{1,40}\b(is|are) (exactly|for)\b|",
            r"qu'?\s?est[- ]ce qu(e|')|que (signifie|veut dire)|c'est quoi\b|ca veut dire|signification|",
            r"de quoi (il |cela |ça |ca )?s'agit|(ça|ca|cela) sert [àa] quoi|[àa] quoi (ça |ca |cela )?sert|en quoi (ça |ca |cela )?consiste)"
        ),
    ),
    (Form::Reason, r"(?i)\b(why|pourquoi)\b"),
    (
        Form::Place,
        r"(?i)(\bwhere\b|(^|\s)o[uù]\s+(est|sont|se|puis|trouver|trouve))",
    ),
];

fn cues() -> &'static [(Form, Regex)] {
    static C: OnceLock<Vec<(Form, Regex)>> = OnceLock::new();
    C.get_or_init(|| {
        CUES.iter()
            .filter_map(|(f, re)| Regex::new(re).ok().map(|re| (*f, re)))
            .collect()
    })
}

/// The form of the first question cue in `text` (by position; on a tie,
/// procedure wins over definition: "what is the way to …" asks how).
pub fn of(text: &str) -> Form {
    cues()
        .iter()
        .filter_map(|(f, re)| re.find(text).map(|m| (m.start(), *f)))
        .min_by_key(|(start, _)| *start)
        .map_or(Form::Other, |(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_asked_in_other_words() {
        for q in [
            "Could you explain in a couple of lines what it is?",
            "Pouvez-vous m'expliquer en deux mots de quoi il s'agit ?",
            "En deux mots, ça sert à quoi et dans quel cas on l'utilise ?",
            "What is OBA for exactly?",
            "En quoi consiste l'accès basé sur le compte ?",
        ] {
            assert_eq!(of(q), Form::Definition, "{q}");
        }
        assert_eq!(of("How do I send it to my customer?"), Form::Procedure);
    }

    #[test]
    fn forms_in_both_languages() {
        assert_eq!(
            of("Quick question: what is Order-Based Access exactly?"),
            Form::Definition
        );
        assert_eq!(
            of("Qu'est-ce que l'accès en fonction de la commande ?"),
            Form::Definition
        );
        assert_eq!(of("quest ce que le DLM"), Form::Definition);
        assert_eq!(of("qu est-ce que le DLM"), Form::Definition);
        assert_eq!(of("How do I send OBA mail?"), Form::Procedure);
        assert_eq!(
            of("What is the best way to send OBA mail?"),
            Form::Procedure
        );
        assert_eq!(
            of("Comment puis-je envoyer un courriel OBA ?"),
            Form::Procedure
        );
        assert_eq!(of("Why does the download fail?"), Form::Reason);
        assert_eq!(of("Où est mon PAK ?"), Form::Place);
        assert_eq!(of("Can I forward the notification?"), Form::Other);
        assert_eq!(of("The link is broken."), Form::Other);
    }
}
