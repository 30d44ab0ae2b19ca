use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A language edesk speaks to people in. Everything user-facing exists in both.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English, the default when nothing says otherwise.
    #[default]
    En,
    /// French.
    Fr,
}

impl Lang {
    /// Both languages, English first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Fr];

    /// The ISO 639-1 code (`en`, `fr`), as in JSON and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// The other language, used when an entry only exists in one of them.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Fr,
            Lang::Fr => Lang::En,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A language name that is neither English nor French; holds the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?} (expected \"en\" or \"fr\")")]
pub struct ParseLangError(pub String);

impl FromStr for Lang {
    type Err = ParseLangError;

    /// Accepts the codes and a few common spellings (`EN`, `fr-CA`, `français`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let primary = t.split(['-', '_']).next().unwrap_or("");
        match primary {
            "en" | "eng" | "english" | "anglais" => Ok(Lang::En),
            "fr" | "fra" | "fre" | "french" | "français" | "francais" => Ok(Lang::Fr),
            _ => Err(ParseLangError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_regions() {
        assert_eq!("EN".parse::<Lang>(), Ok(Lang::En));
        assert_eq!("fr-CA".parse::<Lang>(), Ok(Lang::Fr));
        assert_eq!("français".parse::<Lang>(), Ok(Lang::Fr));
        assert!("de".parse::<Lang>().is_err());
        assert!("".parse::<Lang>().is_err());
    }
}
