//! The command language every bot speaks: one word (English or French),
//! then its argument. Plain text is a FAQ question when the bot is
//! addressed (a DM, a mention, the console, the web chat).

use crate::domain::fold;
use crate::domain::{EmailAddress, Lang, OrderId};

/// A command's name, as `help` lists it and `bots/*.toml` enables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// Ask the FAQ.
    Faq,
    /// Show an order's status (details only for a verified recipient).
    Order,
    /// Restore an archived order.
    Restore,
    /// Send an order's notification again to the linked address.
    Resend,
    /// Mail a code to link the chat account to an address.
    Link,
    /// Enter the mailed code.
    Verify,
    /// Open a ticket for a team.
    Escalate,
    /// Stop order notifications to the linked address.
    Unsubscribe,
    /// Show or set the reply language.
    Lang,
    /// List the commands.
    Help,
}

impl Verb {
    /// Every verb, in the order `help` lists them.
    pub const ALL: [Verb; 10] = [
        Verb::Faq,
        Verb::Order,
        Verb::Restore,
        Verb::Resend,
        Verb::Link,
        Verb::Verify,
        Verb::Escalate,
        Verb::Unsubscribe,
        Verb::Lang,
        Verb::Help,
    ];

    /// The English name (slash-command name, `bots/*.toml` key).
    pub fn name(self) -> &'static str {
        match self {
            Verb::Faq => "faq",
            Verb::Order => "order",
            Verb::Restore => "restore",
            Verb::Resend => "resend",
            Verb::Link => "link",
            Verb::Verify => "verify",
            Verb::Escalate => "escalate",
            Verb::Unsubscribe => "unsubscribe",
            Verb::Lang => "lang",
            Verb::Help => "help",
        }
    }

    /// The name shown to a French speaker.
    pub fn name_in(self, lang: Lang) -> &'static str {
        match (lang, self) {
            (Lang::En, v) => v.name(),
            (Lang::Fr, Verb::Faq) => "faq",
            (Lang::Fr, Verb::Order) => "commande",
            (Lang::Fr, Verb::Restore) => "restaurer",
            (Lang::Fr, Verb::Resend) => "renvoyer",
            (Lang::Fr, Verb::Link) => "lier",
            (Lang::Fr, Verb::Verify) => "verifier",
            (Lang::Fr, Verb::Escalate) => "transmettre",
            (Lang::Fr, Verb::Unsubscribe) => "desabonner",
            (Lang::Fr, Verb::Lang) => "langue",
            (Lang::Fr, Verb::Help) => "aide",
        }
    }

    /// The verb with this English name (as `bots/*.toml` enables it); no aliases.
    pub fn from_name(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// The words that call a command, accents folded, and the language they
/// belong to (`None`: the same word in both languages).
const ALIASES: &[(&str, Verb, Option<Lang>)] = &[
    ("faq", Verb::Faq, None),
    ("ask", Verb::Faq, Some(Lang::En)),
    ("question", Verb::Faq, None),
    ("order", Verb::Order, Some(Lang::En)),
    ("status", Verb::Order, Some(Lang::En)),
    ("commande", Verb::Order, Some(Lang::Fr)),
    ("statut", Verb::Order, Some(Lang::Fr)),
    ("restore", Verb::Restore, Some(Lang::En)),
    ("restaurer", Verb::Restore, Some(Lang::Fr)),
    ("resend", Verb::Resend, Some(Lang::En)),
    ("renvoyer", Verb::Resend, Some(Lang::Fr)),
    ("link", Verb::Link, Some(Lang::En)),
    ("lier", Verb::Link, Some(Lang::Fr)),
    ("verify", Verb::Verify, Some(Lang::En)),
    ("verifier", Verb::Verify, Some(Lang::Fr)),
    ("code", Verb::Verify, None),
    ("escalate", Verb::Escalate, Some(Lang::En)),
    ("human", Verb::Escalate, Some(Lang::En)),
    ("transmettre", Verb::Escalate, Some(Lang::Fr)),
    ("escalader", Verb::Escalate, Some(Lang::Fr)),
    ("humain", Verb::Escalate, Some(Lang::Fr)),
    ("unsubscribe", Verb::Unsubscribe, Some(Lang::En)),
    ("desabonner", Verb::Unsubscribe, Some(Lang::Fr)),
    ("desinscrire", Verb::Unsubscribe, Some(Lang::Fr)),
    ("lang", Verb::Lang, Some(Lang::En)),
    ("language", Verb::Lang, Some(Lang::En)),
    ("langue", Verb::Lang, Some(Lang::Fr)),
    ("help", Verb::Help, Some(Lang::En)),
    ("aide", Verb::Help, Some(Lang::Fr)),
];

/// What the user asked for, with its argument checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A question (the text after the word, or the whole message when addressed).
    Faq(String),
    /// `order SO`; `Err` holds the argument that is not an order number.
    Order(Result<OrderId, String>),
    /// `restore SO`; `Err` as for `Order`.
    Restore(Result<OrderId, String>),
    /// `resend SO`; `Err` as for `Order`.
    Resend(Result<OrderId, String>),
    /// `link EMAIL`; `Err` holds the argument that is not an address.
    Link(Result<EmailAddress, String>),
    /// `verify CODE`: the first word after the command (may be empty).
    Verify(String),
    /// `escalate TEXT`: the question for the team (may be empty).
    Escalate(String),
    /// `unsubscribe`.
    Unsubscribe,
    /// `lang` alone shows the current choice; `lang auto` clears it.
    Lang(Option<String>),
    /// `help`, or `faq` with nothing after it.
    Help,
}

impl Command {
    /// The command's verb (what bot configs enable).
    pub fn verb(&self) -> Verb {
        match self {
            Command::Faq(_) => Verb::Faq,
            Command::Order(_) => Verb::Order,
            Command::Restore(_) => Verb::Restore,
            Command::Resend(_) => Verb::Resend,
            Command::Link(_) => Verb::Link,
            Command::Verify(_) => Verb::Verify,
            Command::Escalate(_) => Verb::Escalate,
            Command::Unsubscribe => Verb::Unsubscribe,
            Command::Lang(_) => Verb::Lang,
            Command::Help => Verb::Help,
        }
    }
}

/// A parsed message: the command and the language its words point to.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// What was asked.
    pub command: Command,
    /// The language of the command word, when it belongs to one.
    pub word_lang: Option<Lang>,
}

/// The alias a word names, if any.
pub fn alias(word: &str) -> Option<(Verb, Option<Lang>)> {
    let w = fold(
        word.trim_start_matches(['/', '!'])
            .trim_end_matches([':', ',']),
    );
    ALIASES
        .iter()
        .find(|(a, _, _)| *a == w)
        .map(|(_, v, l)| (*v, *l))
}

/// Parses one message. `None` when it is neither a command nor something
/// the bot should answer (plain text in a channel where it was not addressed).
pub fn parse(text: &str, addressed: bool) -> Option<Parsed> {
    let text = text.trim();
    if text.is_empty() {
        return addressed.then_some(Parsed {
            command: Command::Help,
            word_lang: None,
        });
    }
    let (word, rest) = match text.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (text, ""),
    };
    let Some((verb, word_lang)) = alias(word) else {
        return addressed.then(|| Parsed {
            command: Command::Faq(text.to_string()),
            word_lang: None,
        });
    };
    let command = match verb {
        // "question" alone, or "faq" with nothing after it, is a request for help.
        Verb::Faq if rest.is_empty() => Command::Help,
        Verb::Faq => Command::Faq(rest.to_string()),
        Verb::Order => Command::Order(order_arg(rest)),
        Verb::Restore => Command::Restore(order_arg(rest)),
        Verb::Resend => Command::Resend(order_arg(rest)),
        Verb::Link => Command::Link(first_word(rest).parse().map_err(|_| rest.to_string())),
        Verb::Verify => Command::Verify(first_word(rest).to_string()),
        Verb::Escalate => Command::Escalate(rest.to_string()),
        Verb::Unsubscribe => Command::Unsubscribe,
        Verb::Lang => Command::Lang((!rest.is_empty()).then(|| fold(first_word(rest)))),
        Verb::Help => Command::Help,
    };
    // A sentence that merely starts with a command word ("commande de plus
    // de 15 mois, comment la récupérer ?") is a question, not a command
    // with a bad argument.
    if addressed && malformed(&command) && text.split_whitespace().count() >= QUESTION_WORDS {
        return Some(Parsed {
            command: Command::Faq(text.to_string()),
            word_lang: None,
        });
    }
    Some(Parsed { command, word_lang })
}

/// Words from which a message whose argument does not parse is read as a question.
const QUESTION_WORDS: usize = 4;

/// A command whose argument is not what it takes.
fn malformed(c: &Command) -> bool {
    match c {
        Command::Order(r) | Command::Restore(r) | Command::Resend(r) => r.is_err(),
        Command::Link(r) => r.is_err(),
        Command::Verify(code) => !code.chars().all(|c| c.is_ascii_digit()),
        Command::Lang(Some(l)) => !matches!(l.as_str(), "en" | "fr" | "auto"),
        // "help me download my order": a question.
        Command::Help => true,
        Command::Faq(_) | Command::Escalate(_) | Command::Unsubscribe | Command::Lang(None) => {
            false
        }
    }
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

/// `SO 10458321`, `SO#10458321`, `#10458321`, `10458321`.
fn order_arg(rest: &str) -> Result<OrderId, String> {
    let mut s = rest.trim();
    for p in ["SO#", "so#", "SO", "so", "#"] {
        if let Some(r) = s.strip_prefix(p) {
            s = r.trim_start();
            break;
        }
    }
    let s = s.trim_start_matches('#').trim();
    let word = first_word(s);
    word.parse().map_err(|_| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(t: &str) -> Command {
        parse(t, true).unwrap().command
    }

    #[test]
    fn english_and_french_aliases_name_the_same_commands() {
        assert_eq!(cmd("order 10458321"), cmd("commande SO#10458321"));
        assert_eq!(cmd("ORDER so 10458321").verb(), Verb::Order);
        assert_eq!(cmd("vérifier 123456"), Command::Verify("123456".into()));
        assert_eq!(cmd("/verify 123456"), Command::Verify("123456".into()));
        assert_eq!(cmd("désabonner"), Command::Unsubscribe);
        assert_eq!(cmd("aide"), Command::Help);
        assert_eq!(cmd("langue fr"), Command::Lang(Some("fr".into())));
        assert_eq!(
            parse("restaurer 10458321", true).unwrap().word_lang,
            Some(Lang::Fr)
        );
        assert_eq!(parse("faq where", true).unwrap().word_lang, None);
    }

    #[test]
    fn arguments_are_checked() {
        assert!(matches!(cmd("order 123"), Command::Order(Err(_))));
        assert!(matches!(cmd("order"), Command::Order(Err(_))));
        assert!(matches!(cmd("link not-an-address"), Command::Link(Err(_))));
        match cmd("link Ana@Example.com please") {
            Command::Link(Ok(e)) => assert_eq!(e.key(), "ana@example.com"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_text_is_a_question_only_when_addressed() {
        assert_eq!(
            cmd("How do I download my order?"),
            Command::Faq("How do I download my order?".into())
        );
        assert_eq!(parse("hello everyone", false), None);
        assert_eq!(cmd("faq"), Command::Help);
        assert_eq!(cmd(""), Command::Help);
        // A sentence starting with a command word is a question.
        let q = "commande de plus de 15 mois, comment la récupérer ?";
        assert_eq!(cmd(q), Command::Faq(q.into()));
        assert_eq!(
            cmd("help me download my order"),
            Command::Faq("help me download my order".into())
        );
        assert!(
            matches!(cmd("order 12345"), Command::Order(Err(_))),
            "short: a bad argument"
        );
        assert!(matches!(
            cmd("order SO 10458321 please now"),
            Command::Order(Ok(_))
        ));
    }
}
