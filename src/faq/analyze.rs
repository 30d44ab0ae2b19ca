//! EN/FR analysis shared by the index and the queries: tokenizing, ASCII
//! folding, stop words, Snowball stemming, and the synonym concepts.
//!
//! Folding runs before the stop list and the stemmer in both languages so an
//! unaccented question (`telecharger`) analyzes like the accented FAQ text.
//! Negations (`no`, `sans`, …) survive the stop list because concept phrases
//! such as "without java" need them; scoring ignores them.

use std::cell::RefCell;
use std::collections::HashSet;

use rustc_hash::{FxHashMap, FxHashSet};

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};

use super::model::Concept;
use crate::domain::Lang;

/// Name the English analyzer is registered under on the tantivy index.
pub const TOKENIZER_EN: &str = "edesk_en";
/// Name the French analyzer is registered under on the tantivy index.
pub const TOKENIZER_FR: &str = "edesk_fr";

const STOP_EN: &str = "a about above after again against all am an and any are as at be because been \
before being below between both but by could did do does doing during each few for from further \
had has have having he her here hers herself him himself his how i if in into is it its itself just \
me more most my myself of on once only or other ought our ours ourselves own same she \
should so some such than that the their theirs them themselves then there these they this those \
through to too under until very was we were what when where which while who whom why will with \
would you your yours yourself yourselves s t d ll m re ve doesn don didn isn wasn aren won wouldn \
couldn shouldn can cannot hi hello hey dear thanks thank cheers regards please pls kindly here \
im i'm ive id us also anyone someone something anything everything get gets got getting need needs \
want wants like know tell let lets way ok okay yes sure team guys folks cisco edelivery \
e thing things really still even already one two use using used go going make made able though although others \
whether might may must shall since without \
quick question questions exactly actually basically simply wondering wonder curious anyway currently";

const STOP_FR: &str = "a au aux avec ce ces dans de des du elle en et eux il ils je la le les leur \
lui ma mais me meme mes moi mon nos notre nous on ou par pour qu que qui sa se ses son sur ta te tes \
toi ton tu un une vos votre vous c d j l m n s t y ete etee etees etes etant suis es est sommes \
sont serai sera serait etais etait etaient ai as avons avez ont aura aurait avais avait eu \
cela ca ceci celle celui cette cet comme tres bien tout tous toute toutes aussi donc alors ici \
bonjour salut merci cordialement svp stp peux peut puis pouvez dois doit faut veux voudrais \
faire fait quel quelle quels quelles comment pourquoi quand est-ce cisco edelivery mon ma mes \
chose quelque dire on m'a dit deja encore avoir etre y \
petite question questions exactement vraiment simplement rapide actuellement";

const NEGATIONS: &str = "no not non nor without nothing never sans pas ne rien aucun aucune jamais";

/// Stop words that carry no meaning in a concept phrase: dropping them
/// keeps the phrase's sense ("get rid of" means "rid").
const FILLER: &[&str] = &[
    "get", "got", "the", "and", "for", "our", "you", "your", "les", "des", "une", "mon", "mes",
];

fn words(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_string).collect()
}

fn stop_list(lang: Lang) -> Vec<String> {
    let base = match lang {
        Lang::En => STOP_EN,
        Lang::Fr => STOP_FR,
    };
    let keep: HashSet<String> = words(NEGATIONS).into_iter().collect();
    words(base)
        .into_iter()
        .filter(|w| !keep.contains(w))
        .collect()
}

/// The tantivy analyzer for one language (also registered on the index).
pub fn text_analyzer(lang: Lang) -> TextAnalyzer {
    let language = match lang {
        Lang::En => Language::English,
        Lang::Fr => Language::French,
    };
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(StopWordFilter::remove(stop_list(lang)))
        .filter(Stemmer::new(language))
        .build()
}

/// The registered tokenizer name for a language's fields.
pub fn tokenizer_name(lang: Lang) -> &'static str {
    match lang {
        Lang::En => TOKENIZER_EN,
        Lang::Fr => TOKENIZER_FR,
    }
}

/// Registers both analyzers; tantivy does not persist custom tokenizers, so
/// this must run on every open.
pub fn register(index: &tantivy::Index) {
    for lang in Lang::ALL {
        index
            .tokenizers()
            .register(tokenizer_name(lang), text_analyzer(lang));
    }
}

/// Phrase → concept matcher over analyzed tokens of one language.
#[derive(Debug, Default)]
struct PhraseTable {
    /// first token → (remaining tokens, concept index), longest first.
    by_first: FxHashMap<String, Vec<(Vec<String>, usize)>>,
}

/// Both languages' analyzers plus the concept phrase tables built from
/// `synonyms.toml`; shared by indexing and querying so both see the same tokens.
pub struct Analyzer {
    en: TextAnalyzer,
    fr: TextAnalyzer,
    phrases: [PhraseTable; 2],
    negations: [FxHashSet<String>; 2],
    /// Every token of every concept phrase, per language.
    concept_words: [FxHashSet<String>; 2],
    /// Concept ids by index, as returned by [`Analyzer::concepts`].
    pub concept_ids: Vec<String>,
}

fn slot(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Fr => 1,
    }
}

impl Analyzer {
    /// Builds the phrase tables; a multi-word term whose content words the
    /// stop list removes is skipped, since it would match far too much.
    pub fn new(concepts: &[Concept]) -> Analyzer {
        let mut a = Analyzer {
            en: text_analyzer(Lang::En),
            fr: text_analyzer(Lang::Fr),
            phrases: [PhraseTable::default(), PhraseTable::default()],
            negations: [FxHashSet::default(), FxHashSet::default()],
            concept_words: [FxHashSet::default(), FxHashSet::default()],
            concept_ids: concepts.iter().map(|c| c.id.clone()).collect(),
        };
        for lang in Lang::ALL {
            let neg: FxHashSet<String> = a.tokens(lang, NEGATIONS).into_iter().collect();
            a.negations[slot(lang)] = neg;
            let mut table = PhraseTable::default();
            for (ci, c) in concepts.iter().enumerate() {
                for term in &c.terms {
                    let toks = a.tokens(lang, term);
                    // A phrase whose words the stop list ate ("switch off" →
                    // "switch") would match far too much, unless what was
                    // eaten is filler ("get rid of" → "rid").
                    let dropped_content = term
                        .split([' ', '\'', '-'])
                        .filter(|w| w.chars().count() > 2)
                        .filter(|w| !FILLER.contains(&w.to_lowercase().as_str()))
                        .filter(|w| a.tokens(lang, w).is_empty())
                        .count();
                    let long_words = term
                        .split([' ', '\'', '-'])
                        .filter(|w| w.chars().count() > 2)
                        .count();
                    if long_words > 1 && toks.len() < 2 && dropped_content > 0 {
                        continue;
                    }
                    a.concept_words[slot(lang)].extend(toks.iter().cloned());
                    let Some((first, rest)) = toks.split_first() else {
                        continue;
                    };
                    let list = table.by_first.entry(first.clone()).or_default();
                    if !list.iter().any(|(r, i)| r == rest && *i == ci) {
                        list.push((rest.to_vec(), ci));
                    }
                }
            }
            for list in table.by_first.values_mut() {
                list.sort_by(|x, y| y.0.len().cmp(&x.0.len()).then(x.1.cmp(&y.1)));
            }
            a.phrases[slot(lang)] = table;
        }
        a
    }

    /// Analyzed tokens (folded, stop words removed, stemmed).
    pub fn tokens(&self, lang: Lang, text: &str) -> Vec<String> {
        // tantivy analyzers need `&mut`; one clone per thread, not per call.
        thread_local! {
            static LOCAL: RefCell<Option<[TextAnalyzer; 2]>> = const { RefCell::new(None) };
        }
        LOCAL.with(|cell| {
            let mut cell = cell.borrow_mut();
            let pair = cell.get_or_insert_with(|| [self.en.clone(), self.fr.clone()]);
            let mut out = Vec::new();
            let mut stream = pair[slot(lang)].token_stream(text);
            while let Some(tok) = stream.next() {
                out.push(tok.text.clone());
            }
            out
        })
    }

    /// The token is part of some concept phrase (so not a typo).
    pub fn in_concepts(&self, lang: Lang, token: &str) -> bool {
        self.concept_words[slot(lang)].contains(token)
    }

    /// The analyzed token is a negation (`no`, `sans`, …), kept for concept
    /// phrases but ignored by scoring.
    pub fn is_negation(&self, lang: Lang, token: &str) -> bool {
        self.negations[slot(lang)].contains(token)
    }

    /// Concepts named in a token sequence: at each position the longest
    /// phrase wins (all concepts sharing that phrase are emitted).
    /// Returns (concept, first token position, phrase length).
    pub fn concepts(&self, lang: Lang, tokens: &[String]) -> Vec<(usize, usize, usize)> {
        let table = &self.phrases[slot(lang)];
        let mut out = Vec::new();
        for (pos, tok) in tokens.iter().enumerate() {
            let Some(cands) = table.by_first.get(tok) else {
                continue;
            };
            let mut best_len: Option<usize> = None;
            for (rest, ci) in cands {
                if let Some(len) = best_len
                    && rest.len() < len
                {
                    break;
                }
                let end = pos + 1 + rest.len();
                if end <= tokens.len() && tokens[pos + 1..end] == rest[..] {
                    best_len = Some(rest.len());
                    out.push((*ci, pos, rest.len() + 1));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> Analyzer {
        Analyzer::new(&[
            Concept {
                id: "dlm".into(),
                terms: vec![
                    "download manager".into(),
                    "gestionnaire de téléchargement".into(),
                ],
            },
            Concept {
                id: "non-java".into(),
                terms: vec!["without java".into()],
            },
        ])
    }

    #[test]
    fn english_stems_and_drops_stop_words() {
        let a = analyzer();
        assert_eq!(
            a.tokens(Lang::En, "The downloads are failing"),
            vec!["download", "fail"]
        );
        assert_eq!(
            a.tokens(Lang::En, "Registering PAKs"),
            vec!["regist", "pak"]
        );
    }

    #[test]
    fn french_folds_accents_and_stems() {
        let a = analyzer();
        let accented = a.tokens(Lang::Fr, "Les téléchargements archivées");
        let plain = a.tokens(Lang::Fr, "les telechargement archivee");
        assert_eq!(accented, plain);
        assert_eq!(accented.len(), 2);
        assert_eq!(
            a.tokens(Lang::Fr, "l'adresse"),
            a.tokens(Lang::Fr, "adresse")
        );
    }

    #[test]
    fn concepts_match_phrases_in_both_languages() {
        let a = analyzer();
        let en = a.tokens(Lang::En, "my download manager hangs");
        assert_eq!(a.concepts(Lang::En, &en).first().map(|c| c.0), Some(0));
        let fr = a.tokens(Lang::Fr, "le gestionnaire de téléchargements plante");
        assert_eq!(a.concepts(Lang::Fr, &fr).first().map(|c| c.0), Some(0));
        let nj = a.tokens(Lang::En, "download without Java");
        assert!(a.concepts(Lang::En, &nj).iter().any(|c| c.0 == 1));
        assert!(a.is_negation(Lang::En, &a.tokens(Lang::En, "without")[0]));
    }
}
