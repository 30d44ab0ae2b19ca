//! The ranker: the tantivy index, the EN/FR analyzers and the FAQ's term
//! statistics. It turns a question into candidates with ranking features
//! (BM25 over both languages' questions and answers plus the synonym
//! concepts, re-ranked by query coverage). It knows nothing of confidence:
//! calibration (`calibrate`) fits a model on its rankings, and the engine
//! (`engine`) puts the two together with the threshold.

use std::collections::HashMap;
use std::path::Path;

use rustc_hash::{FxHashMap, FxHashSet};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{Searcher, TantivyDocument, Term};

use super::analyze::Analyzer;
use super::form::{self, Form};
use super::index::{Fields, open_or_build};
use super::langid::LangId;
use super::model::{Concept, Contact, Entry, FaqSet, Link};
use super::text::{expand_negations, strip_salutations};
use super::{FaqError, Sources};
use crate::domain::Lang;
use crate::domain::edit_distance;

// Field weights of the BM25 query. Questions are short and written like the
// user's question, so they weigh most; the other language's questions carry
// shared words (DLM, PAK, CCW, product names). Its answers are left out: they
// add little and cost a third of the query time.
const W_QUESTION: f32 = 3.0;
const W_ANSWER: f32 = 1.0;
/// A long query (a mail rather than a chat question) describes what it
/// wants, often in the words of an entry's answer ("which operating systems
/// and browsers does the download manager work with") rather than its
/// question: from this many analyzed tokens on, answers weigh
/// [`W_ANSWER_LONG`]. Chat questions are shorter and keep [`W_ANSWER`].
/// Measured on the nine routing sets (810 mails, `mail route-eval`): 2.0
/// from 20 tokens won 5 cases and lost 1; from 12 or 16 tokens it lost 3–4
/// of its wins back; the chat dev set did not move.
const LONG_QUERY_TOKENS: usize = 20;
const W_ANSWER_LONG: f32 = 2.0;
const W_OTHER_QUESTION: f32 = 0.8;
const W_CONCEPT_Q: f32 = 2.0;
const W_CONCEPT_A: f32 = 0.7;
const W_TYPO: f32 = 0.7;
const CANDIDATES: usize = 10;
/// Re-ranking: score = BM25 × (0.25 + coverage + this × question coverage).
/// An entry whose *question* names everything asked is the likelier answer
/// than one whose long answer happens to mention it (held-out: 0.5 → 1.0
/// moved R@1 0.862 → 0.874).
const W_QUESTION_COVERAGE: f64 = 1.0;
/// Re-ranking: an entry whose question has the user's form (what is / how
/// do I / why / where, see `form`) scores this much more. Neighbouring
/// entries share most words and differ in the form.
const W_SAME_FORM: f64 = 0.3;

/// Per-topic term and concept sets, for coverage features.
struct TopicTerms {
    all: [FxHashSet<String>; 2],
    question: [FxHashSet<String>; 2],
    concepts: FxHashSet<usize>,
    question_concepts: FxHashSet<usize>,
}

/// A unit of the query for coverage: a plain token or a concept phrase.
#[derive(Debug)]
struct Unit {
    tokens: Vec<String>,
    concepts: Vec<usize>,
    weight: f64,
}

/// One ranked candidate with its features.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The topic: its position in [`Ranker::entries`] of either language.
    pub topic: usize,
    /// tantivy's BM25 score of the query.
    pub bm25: f64,
    /// idf-weighted share of the query's units found anywhere in the topic.
    pub coverage: f64,
    /// The same share, found in the topic's question.
    pub question_coverage: f64,
    /// How many query units (words or concept phrases) the entry contains.
    pub matched: usize,
    /// The re-ranked score candidates are sorted by.
    pub score: f64,
}

/// Index, analyzers and statistics of the FAQ. Cheap to share behind an `Arc`.
pub struct Ranker {
    set: FaqSet,
    analyzer: Analyzer,
    searcher: Searcher,
    fields: Fields,
    doc_topic: HashMap<(u32, u32), usize>,
    topics: Vec<TopicTerms>,
    idf: [FxHashMap<String, f64>; 2],
    concept_idf: Vec<f64>,
    oov_idf: f64,
    vocab_by_first: [HashMap<char, Vec<String>>; 2],
    langid: LangId,
    /// `c:<id>` index terms of the concepts.
    concept_terms: Vec<String>,
    /// The form of each topic's question, per language slot.
    forms: Vec<[Form; 2]>,
}

/// Per-language statistics of the FAQ's analyzed words.
struct Vocabulary {
    idf: [FxHashMap<String, f64>; 2],
    by_first: [HashMap<char, Vec<String>>; 2],
}

fn slot(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Fr => 1,
    }
}

fn idf(n: usize, df: usize) -> f64 {
    (1.0 + (n as f64 - df as f64 + 0.5) / (df as f64 + 0.5)).ln()
}

impl Ranker {
    /// Opens (building when the sources changed) the index under `data_dir`
    /// and computes the statistics ranking needs.
    pub fn open(sources: &Sources, data_dir: &Path) -> Result<Ranker, FaqError> {
        let set = FaqSet::load(sources)?;
        let analyzer = Analyzer::new(&set.synonyms.concept);
        let (index, fields) = open_or_build(&set, &analyzer, data_dir)?;
        let reader = index.reader().map_err(|e| FaqError::Index(e.to_string()))?;
        let searcher = reader.searcher();
        let doc_topic = doc_topics(&searcher, &fields, &set)?;
        let topics = topic_terms(&set, &analyzer);
        let n = topics.len();
        let vocabulary = vocabulary(&topics);
        let concept_idf = (0..analyzer.concept_ids.len())
            .map(|c| idf(n, topics.iter().filter(|t| t.concepts.contains(&c)).count()))
            .collect();
        let langid = LangId::new(&set);
        let concept_terms = analyzer
            .concept_ids
            .iter()
            .map(|c| format!("c:{c}"))
            .collect();
        let forms = question_forms(&set);
        Ok(Ranker {
            forms,
            concept_terms,
            set,
            analyzer,
            searcher,
            fields,
            doc_topic,
            topics,
            idf: vocabulary.idf,
            concept_idf,
            oov_idf: idf(n, 1),
            vocab_by_first: vocabulary.by_first,
            langid,
        })
    }

    /// The synonym concepts (id and terms in both languages).
    pub fn concepts(&self) -> &[Concept] {
        &self.set.synonyms.concept
    }

    /// The entry of a topic in one language.
    pub fn entry(&self, id: &str, lang: Lang) -> Option<&Entry> {
        self.set.entries(lang).iter().find(|e| e.id == id)
    }

    /// Every entry in one language; a topic's index is its position.
    pub fn entries(&self, lang: Lang) -> &[Entry] {
        self.set.entries(lang)
    }

    /// Support contacts (team, names, address, description in both languages).
    pub fn contacts(&self) -> &[Contact] {
        &self.set.contacts.contact
    }

    /// Links the FAQ refers to.
    pub fn links(&self) -> &[Link] {
        &self.set.contacts.link
    }

    /// The language of a question (FAQ vocabulary evidence, else lingua).
    pub fn detect_lang(&self, text: &str) -> Lang {
        self.langid.detect(text)
    }

    /// The language detector built from the FAQ.
    pub fn langid(&self) -> &LangId {
        &self.langid
    }

    /// Replaces a token unknown to the FAQ by its closest known spelling.
    fn correct(&self, lang: Lang, token: &str) -> Option<String> {
        let len = token.chars().count();
        // Short stems are too often another real word ("resel" → "reset").
        if len < 6
            || self.idf[slot(lang)].contains_key(token)
            || self.analyzer.in_concepts(lang, token)
            || token.chars().any(|c| c.is_ascii_digit())
        {
            return None;
        }
        let max = if len >= 9 { 2 } else { 1 };
        let first = token.chars().next()?;
        let mut best: Option<(usize, &String)> = None;
        for w in self.vocab_by_first[slot(lang)].get(&first)? {
            // Over bytes: the analyzed tokens are ASCII-folded.
            let d = edit_distance(token.as_bytes(), w.as_bytes(), max);
            if d <= max && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, w));
            }
        }
        best.map(|(_, w)| w.clone())
    }

    /// Analyzed, typo-corrected tokens; the flag marks corrected ones.
    fn query_tokens(&self, lang: Lang, text: &str) -> Vec<(String, bool)> {
        self.analyzer
            .tokens(lang, text)
            .into_iter()
            .map(|t| match self.correct(lang, &t) {
                Some(c) => (c, true),
                None => (t, false),
            })
            .collect()
    }

    fn units(&self, lang: Lang, toks: &[(String, bool)]) -> (Vec<Unit>, Vec<usize>) {
        let plain: Vec<String> = toks.iter().map(|(t, _)| t.clone()).collect();
        let found = self.analyzer.concepts(lang, &plain);
        let all_concepts: Vec<usize> = found.iter().map(|c| c.0).collect();
        let s = slot(lang);
        let mut units: Vec<Unit> = Vec::new();
        let mut covered_to = 0usize;
        for (pos, (tok, corrected)) in toks.iter().enumerate() {
            let starting: Vec<&(usize, usize, usize)> =
                found.iter().filter(|c| c.1 == pos).collect();
            if pos < covered_to {
                if let Some(u) = units.last_mut() {
                    u.concepts.extend(starting.iter().map(|c| c.0));
                    u.tokens.push(tok.clone());
                    covered_to =
                        covered_to.max(starting.iter().map(|c| pos + c.2).max().unwrap_or(0));
                }
                continue;
            }
            if self.analyzer.is_negation(lang, tok) && starting.is_empty() {
                continue;
            }
            let known = self.idf[s].get(tok).copied();
            let concept_w = starting
                .iter()
                .map(|c| self.concept_idf[c.0])
                .fold(0.0, f64::max);
            let weight = match (known, starting.is_empty()) {
                (Some(w), _) if !corrected => w.max(concept_w),
                (Some(w), _) => w * 0.8,
                (None, false) => concept_w,
                (None, true) => self.oov_idf,
            };
            covered_to = starting.iter().map(|c| pos + c.2).max().unwrap_or(pos + 1);
            units.push(Unit {
                tokens: vec![tok.clone()],
                concepts: starting.iter().map(|c| c.0).collect(),
                weight,
            });
        }
        (units, all_concepts)
    }

    fn coverage(&self, units: &[Unit], lang: Lang, topic: usize) -> (f64, f64, usize) {
        let t = &self.topics[topic];
        let s = slot(lang);
        let (mut total, mut all, mut question, mut matched) = (0.0, 0.0, 0.0, 0);
        for u in units {
            total += u.weight;
            let in_q = u.tokens.iter().any(|w| t.question[s].contains(w))
                || u.concepts.iter().any(|c| t.question_concepts.contains(c));
            let in_all = in_q
                || u.tokens.iter().any(|w| t.all[s].contains(w))
                || u.concepts.iter().any(|c| t.concepts.contains(c));
            if in_all {
                all += u.weight;
                matched += 1;
            }
            if in_q {
                question += u.weight;
            }
        }
        if total <= 0.0 {
            return (0.0, 0.0, 0);
        }
        (all / total, question / total, matched)
    }

    fn build_query<'a>(
        &'a self,
        lang: Lang,
        toks: &'a [(String, bool)],
        other: &'a [String],
        concepts: &[usize],
    ) -> BooleanQuery {
        let f = &self.fields;
        let (l, o) = (slot(lang), slot(lang.other()));
        let w_answer = if toks.len() >= LONG_QUERY_TOKENS {
            W_ANSWER_LONG
        } else {
            W_ANSWER
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut seen: FxHashSet<(tantivy::schema::Field, &str)> = FxHashSet::default();
        let mut add = |field, text: &'a str, boost: f32| {
            if seen.insert((field, text)) {
                let q = TermQuery::new(
                    Term::from_field_text(field, text),
                    IndexRecordOption::WithFreqs,
                );
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        };
        for (t, corrected) in toks {
            if self.analyzer.is_negation(lang, t) {
                continue;
            }
            let k = if *corrected { W_TYPO } else { 1.0 };
            add(f.question[l], t, W_QUESTION * k);
            add(f.answer[l], t, w_answer * k);
        }
        for t in other {
            if self.analyzer.is_negation(lang.other(), t) {
                continue;
            }
            add(f.question[o], t, W_OTHER_QUESTION);
        }
        for c in concepts {
            if let Some(term) = self.concept_terms.get(*c) {
                add(f.concepts_q, term, W_CONCEPT_Q);
                add(f.concepts_a, term, W_CONCEPT_A);
            }
        }
        BooleanQuery::new(clauses)
    }

    /// All candidates, best first, with their features.
    pub fn rank(&self, question: &str, lang: Lang) -> Vec<Candidate> {
        let stripped = expand_negations(&strip_salutations(question));
        let question = stripped.as_str();
        let toks = self.query_tokens(lang, question);
        // The other language only contributes shared words: no typo pass.
        let other_plain = self.analyzer.tokens(lang.other(), question);
        let (units, mut concepts) = self.units(lang, &toks);
        concepts.extend(
            self.analyzer
                .concepts(lang.other(), &other_plain)
                .into_iter()
                .map(|c| c.0),
        );
        concepts.sort_unstable();
        concepts.dedup();
        if units.is_empty() && concepts.is_empty() {
            return Vec::new();
        }
        let query = self.build_query(lang, &toks, &other_plain, &concepts);
        let asked = form::of(question);
        let collector = TopDocs::with_limit(CANDIDATES).order_by_score();
        let Ok(hits) = self.searcher.search(&query, &collector) else {
            return Vec::new();
        };
        let mut out: Vec<Candidate> = hits
            .into_iter()
            .filter_map(|(score, addr)| {
                let topic = *self.doc_topic.get(&(addr.segment_ord, addr.doc_id))?;
                let (coverage, question_coverage, matched) = self.coverage(&units, lang, topic);
                let bm25 = f64::from(score);
                let same_form = asked != Form::Other
                    && self
                        .forms
                        .get(topic)
                        .is_some_and(|f| f[slot(lang)] == asked);
                let form_factor = if same_form { 1.0 + W_SAME_FORM } else { 1.0 };
                Some(Candidate {
                    topic,
                    bm25,
                    coverage,
                    question_coverage,
                    matched,
                    score: bm25
                        * (0.25 + coverage + W_QUESTION_COVERAGE * question_coverage)
                        * form_factor,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.topic.cmp(&b.topic)));
        out
    }

    /// How a question is analyzed (tokens, concepts, weighted units) and the
    /// five best of its candidates `ranked` with their features.
    pub fn trace(&self, question: &str, lang: Lang, ranked: &[Candidate]) -> String {
        let stripped = expand_negations(&strip_salutations(question));
        let toks = self.query_tokens(lang, &stripped);
        let (units, concepts) = self.units(lang, &toks);
        let mut s = format!("lang {lang}\ntokens {toks:?}\nconcepts [");
        for c in concepts {
            s.push_str(&self.analyzer.concept_ids[c]);
            s.push(' ');
        }
        s.push_str("]\nunits:\n");
        for u in &units {
            s.push_str(&format!(
                "  {:?} {:?} w={:.2}\n",
                u.tokens, u.concepts, u.weight
            ));
        }
        for c in ranked.iter().take(5) {
            let e = &self.set.entries(lang)[c.topic];
            s.push_str(&format!(
                "  {:.2} bm25 {:.2} cov {:.2} qcov {:.2} matched {}  {}\n",
                c.score, c.bm25, c.coverage, c.question_coverage, c.matched, e.id
            ));
        }
        s
    }
}

/// Maps each index document to its topic (position in the entry lists), and
/// checks the index holds every topic.
/// The form of every topic's question in each language.
fn question_forms(set: &FaqSet) -> Vec<[Form; 2]> {
    let (en, fr) = (set.entries(Lang::En), set.entries(Lang::Fr));
    (0..en.len().max(fr.len()))
        .map(|i| {
            let of = |e: &[Entry]| e.get(i).map_or(Form::Other, |e| form::of(&e.question));
            let mut f = [Form::Other; 2];
            f[slot(Lang::En)] = of(en);
            f[slot(Lang::Fr)] = of(fr);
            f
        })
        .collect()
}

fn doc_topics(
    searcher: &Searcher,
    fields: &Fields,
    set: &FaqSet,
) -> Result<HashMap<(u32, u32), usize>, FaqError> {
    let ids: HashMap<&str, usize> = set
        .en
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let mut doc_topic = HashMap::new();
    for (ord, seg) in searcher.segment_readers().iter().enumerate() {
        for doc in 0..seg.max_doc() {
            let addr = tantivy::DocAddress::new(ord as u32, doc);
            let d: TantivyDocument = searcher
                .doc(addr)
                .map_err(|e| FaqError::Index(e.to_string()))?;
            if let Some(t) = d
                .get_first(fields.id)
                .and_then(|v| v.as_str())
                .and_then(|id| ids.get(id))
            {
                doc_topic.insert((ord as u32, doc), *t);
            }
        }
    }
    if doc_topic.len() != set.en.len() {
        return Err(FaqError::Index(format!(
            "the index holds {} of {} topics",
            doc_topic.len(),
            set.en.len()
        )));
    }
    Ok(doc_topic)
}

/// Each topic's analyzed words and concepts, in its question and in all of
/// it, per language.
fn topic_terms(set: &FaqSet, analyzer: &Analyzer) -> Vec<TopicTerms> {
    let mut topics = Vec::new();
    for (en, fr) in set.en.iter().zip(&set.fr) {
        let mut t = TopicTerms {
            all: [FxHashSet::default(), FxHashSet::default()],
            question: [FxHashSet::default(), FxHashSet::default()],
            concepts: FxHashSet::default(),
            question_concepts: FxHashSet::default(),
        };
        for (lang, e) in [(Lang::En, en), (Lang::Fr, fr)] {
            let q = analyzer.tokens(lang, &e.question);
            let a = analyzer.tokens(lang, &e.answer);
            for (c, _, _) in analyzer.concepts(lang, &q) {
                t.question_concepts.insert(c);
                t.concepts.insert(c);
            }
            for (c, _, _) in analyzer.concepts(lang, &a) {
                t.concepts.insert(c);
            }
            t.question[slot(lang)].extend(q.iter().cloned());
            t.all[slot(lang)].extend(q);
            t.all[slot(lang)].extend(a);
        }
        topics.push(t);
    }
    topics
}

/// Word idf over topics, and the known words by first letter (the
/// candidates of typo correction), per language.
fn vocabulary(topics: &[TopicTerms]) -> Vocabulary {
    let n = topics.len();
    let mut idf_maps = [FxHashMap::default(), FxHashMap::default()];
    let mut by_first: [HashMap<char, Vec<String>>; 2] = [HashMap::new(), HashMap::new()];
    for lang in Lang::ALL {
        let s = slot(lang);
        let mut df: HashMap<&str, usize> = HashMap::new();
        for t in topics {
            for w in &t.all[s] {
                *df.entry(w.as_str()).or_default() += 1;
            }
        }
        for (w, d) in &df {
            idf_maps[s].insert((*w).to_string(), idf(n, *d));
        }
        let mut words: Vec<String> = df.keys().map(|w| (*w).to_string()).collect();
        words.sort();
        for w in words {
            if let Some(c) = w.chars().next() {
                by_first[s].entry(c).or_default().push(w);
            }
        }
    }
    Vocabulary {
        idf: idf_maps,
        by_first,
    }
}
