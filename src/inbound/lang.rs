//! Language of the text a person wrote, English or French only. Ambiguous
//! text (a greeting, an order number) gives `None`, and the caller falls
//! back to what it knows about the sender and the thread.
//!
//! Evidence is counted on folded words (no diacritics), so French typed
//! without accents ("impossible de me connecter, identifiant invalide")
//! counts as French: function words of each language plus, from the
//! caller, the FAQ's own vocabulary (words found only in the English or
//! only in the French entries).

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
    "mais", "ou", "quel", "quelle", "pouvez", "pourriez", "ces", "ca", "etre", "deja", "tres",
    "apres", "pourquoi", "comment", "quand", "veux", "peux", "dois", "faut", "besoin", "rien",
    "toujours", "encore", "depuis", "avoir", "fait", "suis", "sommes", "avez", "sont", "sans",
    "chez", "moi", "leur", "trop", "aussi", "puis", "svp", "dit",
];

/// Function words of each language in a text, on folded words.
pub fn function_words(sample: &str) -> (usize, usize) {
    let folded = crate::faq::text::fold(sample);
    let (mut en, mut fr) = (0usize, 0usize);
    for w in folded.split(|c: char| !c.is_alphabetic()) {
        if w.is_empty() {
            continue;
        }
        if EN_WORDS.contains(&w) {
            en += 1;
        } else if FR_WORDS.contains(&w) {
            fr += 1;
        }
    }
    (en, fr)
}

/// Words written with a French diacritic (é, è, à, ç, …), at most 3: an
/// accent is French evidence when the writer typed one, and a name such as
/// "Société Générale" in English text is outweighed by its function words.
fn french_accented_words(sample: &str) -> usize {
    sample
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().any(|c| "éèêëàâçùûôîïœÉÈÀÇ".contains(c)))
        .take(3)
        .count()
}

/// How sure a detection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Clear word evidence: beats what is known about the thread.
    Strong(Lang),
    /// Some evidence, or lingua's guess: loses to a thread's language.
    Weak(Lang),
    /// No evidence and no guess (e.g. too few letters).
    None,
}

/// Detection with the FAQ vocabulary's counts `(en, fr)` for the text:
/// clear word evidence is `Strong`; otherwise lingua's guess or the side
/// with more words is `Weak`.
pub fn detect_with(text: &str, vocabulary: (usize, usize)) -> Evidence {
    let sample: String = text.chars().take(SAMPLE_CHARS).collect();
    if sample.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return Evidence::None;
    }
    let (fe, ff) = function_words(&sample);
    let (en, fr) = (
        fe + vocabulary.0,
        ff + vocabulary.1 + french_accented_words(&sample),
    );
    if en + fr >= 2 && fr > 2 * en {
        return Evidence::Strong(Lang::Fr);
    }
    if en + fr >= 2 && en > 2 * fr {
        return Evidence::Strong(Lang::En);
    }
    // One word of one language and none of the other says more than
    // lingua's letter statistics on three words ("cle pak refusee").
    match (en, fr) {
        (0, 1..) => return Evidence::Weak(Lang::Fr),
        (1.., 0) => return Evidence::Weak(Lang::En),
        _ => {}
    }
    match detector().detect_language_of(sample) {
        Some(Language::French) => Evidence::Weak(Lang::Fr),
        Some(Language::English) => Evidence::Weak(Lang::En),
        None if fr > en => Evidence::Weak(Lang::Fr),
        None if en > fr => Evidence::Weak(Lang::En),
        None => Evidence::None,
    }
}

/// Counts unambiguous function words; lingua is costly (it dominates the
/// analysis time) and only needed when these do not settle it.
fn by_function_words(sample: &str) -> Option<Lang> {
    let (en, fr) = function_words(sample);
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

/// Language of a text from its first characters: function words first,
/// then lingua; `None` when the text is too short or lingua is undecided.
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

    #[test]
    fn one_sided_word_evidence_beats_a_guess_on_three_words() {
        // "cle" is a FAQ French word; nothing English.
        assert_eq!(
            detect_with("cle pak refusee", (0, 1)),
            Evidence::Weak(Lang::Fr)
        );
        assert_eq!(detect_with("PAK refusée", (0, 0)), Evidence::Weak(Lang::Fr));
        assert_eq!(detect_with("link dead", (1, 0)), Evidence::Weak(Lang::En));
        // English with a French company name stays English.
        assert_eq!(
            detect_with(
                "Could you check the order of Société Générale for me?",
                (0, 0)
            ),
            Evidence::Strong(Lang::En)
        );
    }

    #[test]
    fn accentless_french_with_the_faq_vocabulary() {
        // "courriels", "commande", "alertes" are FAQ French words.
        assert_eq!(
            detect_with(
                "trop de courriels de commande, je veux couper ces alertes",
                (0, 3)
            ),
            Evidence::Strong(Lang::Fr)
        );
        assert_eq!(
            detect_with(
                "impossible de me connecter, on me dit identifiant invalide",
                (0, 2)
            ),
            Evidence::Strong(Lang::Fr)
        );
        assert!(matches!(
            detect_with("Could you resend the download link for my order?", (3, 0)),
            Evidence::Strong(Lang::En)
        ));
    }
}
