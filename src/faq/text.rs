//! Small text helpers shared by the import and the analyzers.

/// Removes Word's `[bookmark: …]` and `[image: …]` markers that the export
/// leaves inline; they carry no content.
pub fn strip_markers(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('[') {
        let tail = &rest[start..];
        let is_marker = tail.starts_with("[bookmark:") || tail.starts_with("[image:");
        match (is_marker, tail.find(']')) {
            (true, Some(end)) => {
                out.push_str(&rest[..start]);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Repairs the export's link damage: a URL pasted twice in a row
/// (`www.x.com/a/www.x.com/a/`) and an address glued to the next word
/// (`support@cisco.comif`).
pub fn repair_links(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(' ') {
        words.push(repair_word(word));
    }
    words.join(" ")
}

fn repair_word(word: &str) -> String {
    let looks_like_link = word.contains("www.") || word.contains("://") || word.contains('@');
    if !looks_like_link {
        return word.to_string();
    }
    let (core, trail) = split_trailing_punct(word);
    let n = core.len();
    if n % 2 == 0 && n > 8 && core.is_char_boundary(n / 2) && core[..n / 2] == core[n / 2..] {
        return format!("{}{}", &core[..n / 2], trail);
    }
    for tld in [".com", ".org", ".net"] {
        if let Some(pos) = core.rfind(tld) {
            let after = &core[pos + tld.len()..];
            if !after.is_empty()
                && after.chars().all(|c| c.is_ascii_lowercase())
                && core.contains('@')
            {
                return format!("{} {}{}", &core[..pos + tld.len()], after, trail);
            }
        }
    }
    word.to_string()
}

fn split_trailing_punct(word: &str) -> (&str, &str) {
    let core = word.trim_end_matches(['.', ',', ';', ':', ')', '!', '?']);
    (core, &word[core.len()..])
}

pub use crate::domain::fold;

/// Words of a text: folded alphanumeric runs (apostrophes split words, so
/// `l'adresse` gives `l`, `adresse`).
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter()
}

/// Words that open a message ("Hi team,", "Bonjour,").
const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "dear",
    "greetings",
    "morning",
    "bonjour",
    "bonsoir",
    "salut",
    "coucou",
    "allo",
];
/// Two-word greetings ("Good morning,").
const GREETINGS_2: &[&str] = &["good", "bonne"];
/// Words that open a sign-off ("Thanks, Sam", "Best regards", "Cordialement").
const SIGN_OFFS: &[&str] = &[
    "thanks",
    "thank",
    "thx",
    "ty",
    "regards",
    "cheers",
    "best",
    "sincerely",
    "br",
    "kind",
    "merci",
    "cordialement",
    "amicalement",
    "salutations",
    "bien",
    "bonne",
];

fn bare(word: &str) -> String {
    fold(word)
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

fn ends_sentence(word: &str) -> bool {
    word.ends_with(['.', '?', '!', ',', ':', ';'])
}

/// Drops the greeting and the sign-off of a mail-like question ("Hi team,
/// … Thanks, Sam"): they carry no topic, and a name in them would count as
/// an unknown word. The greeting is dropped up to its first punctuation
/// (at most 4 words in); the sign-off from a closing word that starts a
/// sentence in the last 5 words. A text made only of those becomes empty.
pub fn strip_salutations(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut start = 0;
    if let Some(first) = words.first() {
        let b = bare(first);
        let two = words.get(1).map(|w| bare(w));
        let greets = GREETINGS.contains(&b.as_str())
            || (GREETINGS_2.contains(&b.as_str())
                && two.as_deref().is_some_and(|t| {
                    [
                        "morning",
                        "afternoon",
                        "evening",
                        "day",
                        "journee",
                        "soiree",
                    ]
                    .contains(&t)
                }));
        if greets {
            start = words
                .iter()
                .take(4)
                .position(|w| ends_sentence(w))
                .map_or(1, |p| p + 1);
        }
    }
    let mut end = words.len();
    let from = words.len().saturating_sub(5).max(start);
    for i in from..words.len() {
        let at_sentence_start = i == start
            || words
                .get(i.wrapping_sub(1))
                .is_some_and(|w| ends_sentence(w));
        if at_sentence_start && SIGN_OFFS.contains(&bare(words[i]).as_str()) {
            end = i;
            break;
        }
    }
    words[start..end.max(start)].join(" ")
}

/// Spells English contractions' negation out ("won't", "doesn’t", "cant"
/// → "… not"): the tokenizer would split "won't" into two stop words and
/// lose the negation that concept phrases such as "not work" rely on.
pub fn expand_negations(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let lower = word.to_lowercase().replace('’', "'");
        let core = lower.trim_end_matches(|c: char| !c.is_alphanumeric());
        let stem = core.strip_suffix("n't").or_else(|| {
            [
                "cant", "wont", "dont", "doesnt", "didnt", "isnt", "wasnt", "couldnt",
            ]
            .contains(&core)
            .then(|| &core[..core.len() - 2])
        });
        match stem {
            Some(stem) => {
                out.push_str(match stem {
                    "wo" => "will",
                    "ca" => "can",
                    other => other,
                });
                out.push_str(" not");
                out.push_str(&lower[core.len()..]);
            }
            None => out.push_str(word),
        }
    }
    out
}

/// Normalized form used to compare question strings (eval files name the
/// expected entries by their question text, with varying quotes/dashes).
pub fn question_key(text: &str) -> String {
    words(text).collect::<Vec<_>>().join(" ")
}

/// A URL-safe id fragment from the first content words of a question.
pub fn slug(text: &str, stop: &[&str], max_words: usize) -> String {
    let parts: Vec<String> = words(text)
        .filter(|w| !stop.contains(&w.as_str()))
        .take(max_words)
        .collect();
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_bookmarks_and_images() {
        assert_eq!(
            strip_markers("[bookmark: _Toc1][bookmark: x]Q:  What? [image: C:\\a.jpg] end"),
            "Q:  What?  end"
        );
        assert_eq!(strip_markers("keep [this] text"), "keep [this] text");
    }

    #[test]
    fn repairs_glued_and_doubled_links() {
        assert_eq!(
            repair_links("contact a-b@cisco.comif notifications continue."),
            "contact a-b@cisco.com if notifications continue."
        );
        assert_eq!(
            repair_links("see www.cisco.com/go/cs/www.cisco.com/go/cs/."),
            "see www.cisco.com/go/cs/."
        );
        assert_eq!(repair_links("mail x@cisco.com now"), "mail x@cisco.com now");
    }

    #[test]
    fn spells_out_negations() {
        assert_eq!(expand_negations("DLM won't start."), "DLM will not start.");
        assert_eq!(expand_negations("it doesn’t work"), "it does not work");
        assert_eq!(expand_negations("cant log in"), "can not log in");
        assert_eq!(expand_negations("Don't panic"), "do not panic");
    }

    #[test]
    fn strips_greetings_and_sign_offs() {
        assert_eq!(
            strip_salutations("Hi team, how do I stop these emails? Thanks, Sam"),
            "how do I stop these emails?"
        );
        assert_eq!(
            strip_salutations("Good morning, my PAK link fails. Best regards, Ana Lopez"),
            "my PAK link fails."
        );
        assert_eq!(
            strip_salutations("Bonjour, le lien ne marche pas. Cordialement"),
            "le lien ne marche pas."
        );
        assert_eq!(strip_salutations("merci beaucoup, bonne journée"), "");
        assert_eq!(
            strip_salutations("thanks to the DLM I can resume downloads"),
            "thanks to the DLM I can resume downloads"
        );
        assert_eq!(strip_salutations("thanks, that's all"), "");
        assert_eq!(
            strip_salutations("how do I thank the team"),
            "how do I thank the team"
        );
    }

    #[test]
    fn folds_and_keys() {
        assert_eq!(fold("Télécharger À l’œil"), "telecharger a l'oeil");
        assert_eq!(
            question_key("Why “Error ‒ invalid login”?"),
            question_key("why \"error - invalid login\"")
        );
    }
}
