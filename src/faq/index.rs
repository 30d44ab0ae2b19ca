//! The tantivy index under `DATA/faq-index/`: one document per topic with
//! both languages, rebuilt only when the sources' content hash changes.

use std::path::{Path, PathBuf};

use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{Index, TantivyDocument};

use super::FaqError;
use super::analyze::{Analyzer, register, tokenizer_name};
use super::model::FaqSet;
use crate::domain::Lang;

/// Bumped when the schema or the analysis changes, to force a rebuild.
const ENGINE_VERSION: &str = "faq-engine-3";
const HASH_FILE: &str = "SOURCES_HASH";

#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub id: Field,
    /// question / answer per language ([en, fr]).
    pub question: [Field; 2],
    pub answer: [Field; 2],
    pub concepts_q: Field,
    pub concepts_a: Field,
}

fn schema() -> (Schema, Fields) {
    let text = |lang: Lang| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer_name(lang))
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let mut sb = Schema::builder();
    let id = sb.add_text_field("id", STRING | STORED);
    let q_en = sb.add_text_field("question_en", text(Lang::En));
    let a_en = sb.add_text_field("answer_en", text(Lang::En));
    let q_fr = sb.add_text_field("question_fr", text(Lang::Fr));
    let a_fr = sb.add_text_field("answer_fr", text(Lang::Fr));
    let concept = || {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let concepts_q = sb.add_text_field("concepts_q", concept());
    let concepts_a = sb.add_text_field("concepts_a", concept());
    (
        sb.build(),
        Fields {
            id,
            question: [q_en, q_fr],
            answer: [a_en, a_fr],
            concepts_q,
            concepts_a,
        },
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FaqError + '_ {
    move |source| FaqError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn tv(e: tantivy::TantivyError) -> FaqError {
    FaqError::Index(e.to_string())
}

/// Concept ids of a text, as `c:<id>` terms.
pub fn concept_terms(analyzer: &Analyzer, lang: Lang, text: &str) -> Vec<String> {
    let toks = analyzer.tokens(lang, text);
    analyzer
        .concepts(lang, &toks)
        .into_iter()
        .map(|(c, _, _)| format!("c:{}", analyzer.concept_ids[c]))
        .collect()
}

/// Opens the index in `data_dir/faq-index`, building it when missing, stale
/// or unreadable. Returns the index and its fields.
pub fn open_or_build(
    set: &FaqSet,
    analyzer: &Analyzer,
    data_dir: &Path,
) -> Result<(Index, Fields), FaqError> {
    let (schema, fields) = schema();
    let dir = data_dir.join("faq-index");
    let want = format!("{ENGINE_VERSION} {}", set.hash);
    let have = std::fs::read_to_string(dir.join(HASH_FILE)).unwrap_or_default();
    if have.trim() == want
        && let Ok(index) = Index::open_in_dir(&dir)
        && index.schema() == schema
    {
        register(&index);
        return Ok((index, fields));
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let tmp: PathBuf = data_dir.join(format!(
        "faq-index.tmp-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let index = Index::create_in_dir(&tmp, schema).map_err(tv)?;
    register(&index);
    write_docs(&index, fields, set, analyzer)?;
    std::fs::write(tmp.join(HASH_FILE), &want).map_err(io(&tmp))?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process won the race; use its index if it is current.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let index = Index::open_in_dir(&dir).map_err(tv)?;
    register(&index);
    Ok((index, fields))
}

fn write_docs(index: &Index, f: Fields, set: &FaqSet, analyzer: &Analyzer) -> Result<(), FaqError> {
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(1, 15_000_000)
        .map_err(tv)?;
    for (en, fr) in set.en.iter().zip(&set.fr) {
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, &en.id);
        for (k, e) in [(0, en), (1, fr)] {
            let lang = if k == 0 { Lang::En } else { Lang::Fr };
            doc.add_text(f.question[k], &e.question);
            doc.add_text(f.answer[k], &e.answer);
            for c in concept_terms(analyzer, lang, &e.question) {
                doc.add_text(f.concepts_q, &c);
            }
            for c in concept_terms(analyzer, lang, &e.answer) {
                doc.add_text(f.concepts_a, &c);
            }
        }
        writer.add_document(doc).map_err(tv)?;
    }
    writer.commit().map_err(tv)?;
    writer.wait_merging_threads().map_err(tv)?;
    Ok(())
}
