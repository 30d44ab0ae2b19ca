//! The one rule for free text that reaches a mail, a page or a file name:
//! bounded length, and no character that is invisible or reorders what is
//! shown. `setup\u{202E}gpj.exe` displays as `setupexe.jpg`; a zero-width
//! space makes two names look equal that are not; a CR/LF in a name can start
//! a header. Refusing them at validation keeps every later consumer simple.
//!
//! Also the one folding of text for comparison (`fold`: lowercase, no
//! diacritics), shared by the FAQ, the routing rules and chat commands.

use std::fmt;

/// Why a text field was refused; the caller adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Longer than the field allows (lengths in characters, not bytes).
    #[error("is {len} characters long, at most {max} are allowed")]
    TooLong {
        /// The text's length.
        len: usize,
        /// The field's limit.
        max: usize,
    },
    /// Contains a control, bidi or invisible character.
    #[error("contains {0}")]
    Forbidden(CodePoint),
}

/// A code point shown as `U+202E RIGHT-TO-LEFT OVERRIDE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePoint(pub char);

impl fmt::Display for CodePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = forbidden_name(self.0).unwrap_or("character");
        write!(f, "U+{:04X} {name}", u32::from(self.0))
    }
}

/// The name of `c` when it is refused in text fields, `None` when allowed.
/// Covers C0/C1 controls (TAB included: every field it applies to is one
/// line), the bidirectional embeddings, overrides, isolates and marks, and
/// the invisible format characters.
pub fn forbidden_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{0}' => "NULL",
        '\t' => "CHARACTER TABULATION",
        '\n' => "LINE FEED",
        '\r' => "CARRIAGE RETURN",
        '\u{1B}' => "ESCAPE",
        '\u{7F}' => "DELETE",
        '\u{85}' => "NEXT LINE",
        '\u{0}'..='\u{1F}' | '\u{80}'..='\u{9F}' => "CONTROL CHARACTER",
        '\u{AD}' => "SOFT HYPHEN",
        '\u{61C}' => "ARABIC LETTER MARK",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}'..='\u{2064}' => "INVISIBLE OPERATOR",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{206A}'..='\u{206F}' => "DEPRECATED FORMAT CHARACTER",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE",
        '\u{FFF9}'..='\u{FFFB}' => "INTERLINEAR ANNOTATION CHARACTER",
        _ => return None,
    })
}

/// Checks one single-line text field: at most `max_chars` characters and
/// none that [`forbidden_name`] names.
pub fn check_text(s: &str, max_chars: usize) -> Result<(), TextError> {
    // Counting stops just past the limit: a 1 MB value costs no more than a
    // short one to refuse.
    let len = s.chars().take(max_chars + 1).count();
    if len > max_chars {
        return Err(TextError::TooLong {
            len: s.chars().count(),
            max: max_chars,
        });
    }
    match s.chars().find(|&c| forbidden_name(c).is_some()) {
        Some(c) => Err(TextError::Forbidden(CodePoint(c))),
        None => Ok(()),
    }
}

/// Refuses the characters of [`forbidden_name`] except the C0/C1 controls,
/// for fields where line breaks are mere separators (an address list pasted
/// one per line).
pub fn check_invisible(s: &str) -> Result<(), TextError> {
    match s
        .chars()
        .find(|&c| !c.is_control() && forbidden_name(c).is_some())
    {
        Some(c) => Err(TextError::Forbidden(CodePoint(c))),
        None => Ok(()),
    }
}

/// A value short enough to echo in an error: a refused 1 MB field is named,
/// not sent back.
pub fn clip(s: &str) -> String {
    const KEEP: usize = 64;
    match s.char_indices().nth(KEEP) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Lowercases and strips diacritics of Latin letters (é → e, œ → oe, ’ → '):
/// the form text is compared in, so "deja" finds "déjà".
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        push_folded(&mut out, c);
    }
    out
}

fn push_folded(out: &mut String, c: char) {
    match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => out.push('a'),
        'ç' => out.push('c'),
        'è' | 'é' | 'ê' | 'ë' => out.push('e'),
        'ì' | 'í' | 'î' | 'ï' => out.push('i'),
        'ñ' => out.push('n'),
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' => out.push('o'),
        'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
        'ÿ' => out.push('y'),
        'œ' => out.push_str("oe"),
        'æ' => out.push_str("ae"),
        '’' | '‘' | 'ʼ' => out.push('\''),
        _ => out.push(c),
    }
}

/// [`fold`], then every character still outside ASCII (no-break spaces,
/// «», emoji, other scripts) becomes a space: an ASCII haystack lets the
/// regex engine use its fast DFA even with Unicode word boundaries, which it
/// otherwise abandons at the first non-ASCII byte.
pub fn fold_ascii(text: &str) -> String {
    fold(text)
        .chars()
        .map(|c| if c.is_ascii() { c } else { ' ' })
        .collect()
}

/// A regex pattern for [`fold_ascii`]ed text: its accented letters folded
/// the same way (ASCII, escapes and case untouched), so a pattern written
/// with accents matches text typed with or without them. A hyphen joining
/// two letters outside a character class also matches a space: people
/// type "pouvez vous", "est il", "e mail" as often as the hyphenated form;
/// an elision's apostrophe may be a space or missing ("n a pas", "cant").
pub fn fold_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len());
    let (mut in_class, mut escaped) = (false, false);
    for (i, &c) in chars.iter().enumerate() {
        // "n'a", "qu'est", "can't": typed as often without the apostrophe
        // or with a space ("n a pas", "cant").
        let elides = || {
            i > 0
                && chars[i - 1].is_alphabetic()
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_alphabetic() || *n == '(')
        };
        // Between words or groups of words: "est-il", "(peut|pourrait)-(il|on)".
        let joins_letters = || {
            i > 0
                && (chars[i - 1].is_alphabetic() || chars[i - 1] == ')')
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_alphabetic() || *n == '(')
        };
        match c {
            _ if escaped => out.push(c),
            '-' if !in_class && joins_letters() => out.push_str("[- ]"),
            '\'' if !in_class && elides() => out.push_str("[' ]?"),
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            _ if c.is_ascii() => out.push(c),
            _ => {
                for l in c.to_lowercase() {
                    push_folded(&mut out, l);
                }
            }
        }
        escaped = !escaped && c == '\\';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_pattern_hyphen_between_letters_also_matches_a_space() {
        let re = |p: &str| regex::Regex::new(&fold_pattern(p)).unwrap();
        let polite = re(r"(?i)\b(pouvez-vous|est-il possible)\b");
        assert!(polite.is_match("pouvez vous regarder"));
        assert!(polite.is_match("Pouvez-vous regarder"));
        assert!(polite.is_match("est il possible"));
        let groups = re(r"(?i)\b(peut|pourrait)-(il|on)\b");
        assert!(groups.is_match("peut on") && groups.is_match("pourrait-il"));
        // Classes and escapes keep their meaning.
        let class = re(r"^[a-c]+\-x$");
        assert!(class.is_match("abc-x"));
        assert!(!class.is_match("abd-x") && !class.is_match("abc x"));
        assert!(re(r"r[ée]ponse").is_match("reponse"));
        let elided = re(r"(?i)\bn'(a|ont) pas [ée]t[ée] enregistr|\bcan't find\b");
        for t in [
            "n'a pas été enregistrée",
            "n a pas ete enregistree",
            "cant find it",
            "can't find",
        ] {
            assert!(elided.is_match(&crate::domain::fold_ascii(t)), "{t}");
        }
    }

    #[test]
    fn names_the_code_point() {
        let e = check_text("setup\u{202E}gpj.exe", 255).unwrap_err();
        assert_eq!(e.to_string(), "contains U+202E RIGHT-TO-LEFT OVERRIDE");
        let e = check_text("a\u{200B}b", 255).unwrap_err();
        assert_eq!(e.to_string(), "contains U+200B ZERO WIDTH SPACE");
        let e = check_text("x\r\nBcc: y", 255).unwrap_err();
        assert_eq!(e.to_string(), "contains U+000D CARRIAGE RETURN");
        let e = check_text("\u{FEFF}Ana", 255).unwrap_err();
        assert_eq!(e.to_string(), "contains U+FEFF ZERO WIDTH NO-BREAK SPACE");
        let e = check_text("a\u{9B}b", 255).unwrap_err();
        assert_eq!(e.to_string(), "contains U+009B CONTROL CHARACTER");
    }

    #[test]
    fn every_listed_range_is_refused() {
        for c in ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain('\u{200B}'..='\u{200F}')
            .chain(['\u{2028}', '\u{2029}', '\u{FEFF}', '\t', '\0', '\u{7F}'])
            .chain('\u{80}'..='\u{9F}')
        {
            assert!(
                check_text(&format!("a{c}b"), 10).is_err(),
                "U+{:04X} accepted",
                u32::from(c)
            );
        }
    }

    #[test]
    fn real_names_pass() {
        for ok in [
            "John Harper",
            "Zoë Lefèvre-Dupont",
            "O'Brien, Seán",
            "محمد الأحمد",
            "שרה כהן",
            "山田太郎",
            "asa-9.20.2-lfbff-k8.SPA",
            "Carton 4 of 7 — Rack B / PO 55-1",
        ] {
            assert_eq!(check_text(ok, 256), Ok(()), "{ok}");
        }
    }

    #[test]
    fn length_is_in_characters() {
        assert_eq!(check_text(&"é".repeat(256), 256), Ok(()));
        assert_eq!(
            check_text(&"é".repeat(257), 256),
            Err(TextError::TooLong { len: 257, max: 256 })
        );
        let e = check_text(&"x".repeat(1_000_000), 256).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is 1000000 characters long, at most 256 are allowed"
        );
    }

    #[test]
    fn invisible_only_lets_line_breaks_through() {
        assert_eq!(check_invisible("a@x.com,\r\nb@y.com"), Ok(()));
        assert!(check_invisible("Ana\u{202E} <a@x.com>").is_err());
    }

    #[test]
    fn clip_keeps_a_prefix() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(1000);
        assert_eq!(clip(&long).chars().count(), 65);
        assert!(clip(&long).ends_with('…'));
    }

    proptest! {
        #[test]
        fn accepted_text_has_no_forbidden_char(s in any::<String>()) {
            if check_text(&s, 1000).is_ok() {
                prop_assert!(s.chars().all(|c| forbidden_name(c).is_none()));
                prop_assert!(!s.chars().any(char::is_control));
            }
        }

        #[test]
        fn inserting_a_bidi_control_is_always_refused(
            s in "[a-zA-Z0-9 .-]{0,40}",
            at in 0usize..40,
            c in prop::sample::select(vec!['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}']),
        ) {
            let mut v: Vec<char> = s.chars().collect();
            v.insert(at.min(v.len()), c);
            let t: String = v.into_iter().collect();
            let e = check_text(&t, 100).unwrap_err();
            let want = format!("U+{:04X}", u32::from(c));
            prop_assert!(e.to_string().contains(&want));
        }
    }

    #[test]
    fn folding_for_comparison() {
        assert_eq!(fold("Déjà REÇU l’œuvre"), "deja recu l'oeuvre");
        assert_eq!(fold_ascii("déjà\u{a0}vu «ok» ✓"), "deja vu  ok   ");
        assert!(fold_ascii("Ça n'a rien changé\u{202f}!").is_ascii());
        // Escapes and classes survive; accents in the pattern fold.
        assert_eq!(fold_pattern(r"\bd[ée]j[àa]\B\W"), r"\bd[ee]j[aa]\B\W");
        assert_eq!(fold_pattern("ŒUVRE"), "oeUVRE");
    }
}
