//! Language of the text a person wrote, English or French only. Ambiguous
//! text (a greeting, an order number) gives `None`, and the caller falls
//! back to what it knows about the sender.

use std::sync::OnceLock;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

use crate::domain::Lang;

/// Chars looked at: the first lines carry the language, and lingua's cost
/// grows with the text.
const SAMPLE_CHARS: usize = 400;
/// Fewer letters than this is too little to tell.
const MIN_LETTERS: usize = 6;

fn detector() -> &'static LanguageDetector {
    static D: OnceLock<LanguageDetector> = OnceLock::new();
    D.get_or_init(|| {
        LanguageDetectorBuilder::from_languages(&[Language::English, Language::French])
            .with_minimum_relative_distance(0.2)
            .build()
    })
}

/// Function words of one language that do not exist in the other.
const EN_WORDS: &[&str] = &[
    "the", "and", "is", "you", "your", "to", "of", "for", "my", "we", "our", "please", "can",
    "could", "with", "not", "have", "this", "that", "it", "be", "do", "i", "are", "was", "will",
    "would", "there", "what", "where", "when", "how", "thanks", "hi", "hello", "from", "but",
];
const FR_WORDS: &[&str] = &[
    "le", "la", "les", "de", "des", "du", "et", "est", "je", "vous", "nous", "pour", "pas", "une",
    "un", "ne", "que", "qui", "dans", "sur", "avec", "mon", "ma", "mes", "votre", "vos", "au",
    "aux", "il", "elle", "ce", "cette", "merci", "bonjour", "j", "l", "d", "n", "qu", "c", "s",
    "mais", "ou", "où", "quel", "quelle", "pouvez", "pourriez",
];

/// Counts unambiguous function words; lingua is costly (it dominates the
/// analysis time) and only needed when these do not settle it.
fn by_function_words(sample: &str) -> Option<Lang> {
    let lower = sample.to_lowercase();
    let (mut en, mut fr) = (0usize, 0usize);
    for w in lower.split(|c: char| !c.is_alphabetic()) {
        if w.is_empty() {
            continue;
        }
        if EN_WORDS.contains(&w) {
            en += 1;
        } else if FR_WORDS.contains(&w) {
            fr += 1;
        }
    }
    if en + fr < 6 {
        None
    } else if en >= 4 * fr.max(1) {
        Some(Lang::En)
    } else if fr >= 4 * en.max(1) {
        Some(Lang::Fr)
    } else {
        None
    }
}

pub fn detect(text: &str) -> Option<Lang> {
    let sample: String = text.chars().take(SAMPLE_CHARS).collect();
    if sample.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
    }
    if let Some(l) = by_function_words(&sample) {
        return Some(l);
    }
    match detector().detect_language_of(sample)? {
        Language::French => Some(Lang::Fr),
        Language::English => Some(Lang::En),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn en_fr_and_abstain() {
        assert_eq!(
            detect("Could you resend the download link for my order?"),
            Some(Lang::En)
        );
        assert_eq!(
            detect("Pourriez-vous renvoyer le lien de téléchargement ?"),
            Some(Lang::Fr)
        );
        assert_eq!(detect("SO#10458321"), None);
        // Too few function words: lingua decides.
        assert_eq!(detect("Merci beaucoup !"), Some(Lang::Fr));
    }

    #[test]
    fn function_words_settle_clear_cases_only() {
        assert_eq!(
            by_function_words(
                "Could you please check what is going on with the order and the link?"
            ),
            Some(Lang::En)
        );
        assert_eq!(
            by_function_words(
                "Pouvez-vous me dire ce qu'il faut faire pour la débloquer et où est le lien ?"
            ),
            Some(Lang::Fr)
        );
        assert_eq!(by_function_words("le the de of"), None);
    }
}
