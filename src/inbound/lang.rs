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

pub fn detect(text: &str) -> Option<Lang> {
    let sample: String = text.chars().take(SAMPLE_CHARS).collect();
    if sample.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return None;
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
    }
}
