//! Template loading and rendering (tera 2). Templates are read from
//! `templates/` when that directory exists (or the configured one), else from
//! the copy built into the binary. Every template of every kind and language is
//! parsed at start: a broken one is a start-up error naming the file and line.
//! Templates are only ever loaded from those files: user text reaches them as
//! context values, autoescaped in `.html`.

use std::path::{Path, PathBuf};

use tera::{Context, Tera};

use super::Kind;
use crate::domain::Lang;

/// A template that cannot be loaded or rendered: at start a start-up error;
/// when queuing a mail, that mail fails.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template file cannot be read or does not parse.
    #[error("template {file}: {message}")]
    Load {
        /// The file (`origin/lang/name`, or its path on disk).
        file: String,
        /// The I/O error or tera's parse report (with the line).
        message: String,
    },
    /// An English template of a kind is absent (`origin/en/KIND.PART`); English is the fallback, so every kind needs one.
    #[error("missing template {0}")]
    Missing(String),
    /// Rendering failed (a value the template needs is missing or of the wrong type).
    #[error("rendering {name}: {message}")]
    Render {
        /// The template (`lang/KIND.PART`), or the kind when the context does not serialize.
        name: String,
        /// Tera's report.
        message: String,
    },
}

/// The parts every kind has, as template file extensions.
pub const PARTS: [&str; 3] = ["subject", "txt", "html"];
const SHARED: [&str; 4] = ["_layout.html", "_footer.txt", "_lines.txt", "_lines.html"];

macro_rules! tpl {
    ($path:expr) => {
        (
            $path,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path)),
        )
    };
}

macro_rules! embed_all {
    ($($kind:literal),*) => {
        &[
            tpl!("en/_layout.html"), tpl!("en/_footer.txt"), tpl!("en/_lines.txt"), tpl!("en/_lines.html"),
            tpl!("fr/_layout.html"), tpl!("fr/_footer.txt"), tpl!("fr/_lines.txt"), tpl!("fr/_lines.html"),
            $(
                tpl!(concat!("en/", $kind, ".subject")), tpl!(concat!("en/", $kind, ".txt")), tpl!(concat!("en/", $kind, ".html")),
                tpl!(concat!("fr/", $kind, ".subject")), tpl!(concat!("fr/", $kind, ".txt")), tpl!(concat!("fr/", $kind, ".html")),
            )*
        ]
    };
}

static EMBEDDED: &[(&str, &str)] = embed_all!(
    "order_available",
    "oba_access",
    "order_on_hold",
    "hold_released",
    "order_archived",
    "order_restored",
    "pak_reminder",
    "download_window_closing",
    "escalation_ack",
    "team_reply",
    "account_link_code",
    "faq_answer",
    "command_done",
    "team_escalation",
    "sla_reminder"
);

/// The templates built into the binary, as (name, source).
pub fn embedded_sources() -> Vec<(String, String)> {
    EMBEDDED
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

/// The rendered parts of one mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The subject line, whitespace collapsed to single spaces.
    pub subject: String,
    /// The `text/plain` body.
    pub text: String,
    /// The `text/html` body (context values autoescaped).
    pub html: String,
    /// The language actually used (French falls back to English).
    pub lang: Lang,
}

/// Every template of every kind and language, parsed once at start.
pub struct Templates {
    tera: Tera,
    /// Where they came from: the directory, or `embedded`.
    pub source: String,
}

impl Templates {
    /// Loads from `dir` if given, else `./templates` when it exists, else the
    /// embedded copy.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let dir: Option<PathBuf> = match dir {
            Some(d) => Some(d.to_path_buf()),
            None => Some(PathBuf::from("templates")).filter(|d| d.join("en").is_dir()),
        };
        match dir {
            Some(d) => Self::from_dir(&d),
            None => Self::from_sources(
                EMBEDDED.iter().map(|(n, s)| (n.to_string(), s.to_string())),
                "embedded".into(),
            ),
        }
    }

    /// The copy built into the binary, whatever is on disk (tests).
    pub fn embedded() -> Result<Templates, TemplateError> {
        Self::load_embedded()
    }

    fn load_embedded() -> Result<Templates, TemplateError> {
        Self::from_sources(
            EMBEDDED.iter().map(|(n, s)| (n.to_string(), s.to_string())),
            "embedded".into(),
        )
    }

    /// Reads `dir/{en,fr}/…`; a French template may be missing (English is used), an English one may not.
    pub fn from_dir(dir: &Path) -> Result<Templates, TemplateError> {
        let mut sources = Vec::new();
        for lang in Lang::ALL {
            let names = SHARED.iter().map(|s| s.to_string()).chain(
                Kind::ALL
                    .iter()
                    .flat_map(|k| PARTS.map(|p| format!("{k}.{p}"))),
            );
            for name in names {
                let path = dir.join(lang.as_str()).join(&name);
                match std::fs::read_to_string(&path) {
                    Ok(text) => sources.push((format!("{lang}/{name}"), text)),
                    // French may lack a template (English is used); English may not.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && lang != Lang::En => {}
                    Err(e) => {
                        return Err(TemplateError::Load {
                            file: path.display().to_string(),
                            message: e.to_string(),
                        });
                    }
                }
            }
        }
        Self::from_sources(sources, dir.display().to_string())
    }

    /// Parses every template; an error names the file (and tera's report the line).
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
        origin: String,
    ) -> Result<Templates, TemplateError> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html"]);
        let sources: Vec<(String, String)> = sources.into_iter().collect();
        // Layouts first so that templates extending them resolve.
        let (shared, rest): (Vec<_>, Vec<_>) =
            sources.into_iter().partition(|(n, _)| n.contains("/_"));
        for (name, text) in shared.iter().chain(rest.iter()) {
            tera.add_raw_template(name, text)
                .map_err(|e| TemplateError::Load {
                    file: format!("{origin}/{name}"),
                    message: e.to_string(),
                })?;
        }
        for kind in Kind::ALL {
            for part in PARTS {
                let name = format!("en/{kind}.{part}");
                if !tera.contains_template(&name) {
                    return Err(TemplateError::Missing(format!("{origin}/{name}")));
                }
            }
        }
        Ok(Templates {
            tera,
            source: origin,
        })
    }

    /// Renders the three parts of `kind` in `lang` (falling back to English).
    pub fn render(
        &self,
        kind: Kind,
        lang: Lang,
        ctx: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let used = if self
            .tera
            .contains_template(&format!("{lang}/{kind}.subject"))
        {
            lang
        } else {
            tracing::info!(kind = %kind, lang = %lang, "no template in this language, using English");
            Lang::En
        };
        let context = Context::from_serialize(ctx).map_err(|e| TemplateError::Render {
            name: kind.to_string(),
            message: e.to_string(),
        })?;
        let render = |part: &str| {
            let name = format!("{used}/{kind}.{part}");
            self.tera
                .render(&name, &context)
                .map_err(|e| TemplateError::Render {
                    name,
                    message: e.to_string(),
                })
        };
        Ok(Rendered {
            subject: render("subject")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: render("txt")?,
            html: render("html")?,
            lang: used,
        })
    }
}
