//! Shaping replies for a platform: splitting at its length limit on line
//! boundaries (never inside a code block or a link), and neutralising mass
//! mentions in text that echoes what a user wrote.

/// Discord's limit on one message's content, in characters.
pub const DISCORD_LIMIT: usize = 2000;

/// A unit that must stay in one message: a line, or a whole code block.
struct Unit {
    text: String,
    code: bool,
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// Lines grouped into units: fenced code blocks (```…```) are one unit.
fn units(text: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.split('\n') {
        let fence = line.trim_start().starts_with("```");
        match block.as_mut() {
            Some(b) => {
                b.push('\n');
                b.push_str(line);
                if fence {
                    out.push(Unit {
                        text: block.take().unwrap_or_default(),
                        code: true,
                    });
                }
            }
            None if fence && line.trim_start()[3..].contains("```") => out.push(Unit {
                text: line.to_string(),
                code: true,
            }),
            None if fence => block = Some(line.to_string()),
            None => out.push(Unit {
                text: line.to_string(),
                code: false,
            }),
        }
    }
    // An unclosed fence: keep it as a block, closed so each part renders.
    if let Some(mut b) = block {
        b.push_str("\n```");
        out.push(Unit {
            text: b,
            code: true,
        });
    }
    out
}

/// Splits `text` into messages of at most `limit` characters. Breaks fall
/// between lines; a code block too long for one message is cut between its
/// lines and each part re-fenced; a line too long is cut between words, and
/// a link (`http…` or `[text](url)`) is never cut unless it alone exceeds
/// the limit.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(16);
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let push = |piece: &str, parts: &mut Vec<String>, cur: &mut String| {
        let sep = usize::from(!cur.is_empty());
        if len(cur) + sep + len(piece) > limit && !cur.is_empty() {
            parts.push(std::mem::take(cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(piece);
    };
    for unit in units(text) {
        let pieces = if len(&unit.text) <= limit {
            vec![unit.text]
        } else if unit.code {
            split_block(&unit.text, limit)
        } else {
            split_line(&unit.text, limit)
        };
        for p in pieces {
            push(&p, &mut parts, &mut cur);
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts.retain(|p| !p.trim().is_empty());
    parts
}

/// A long code block as several fenced blocks, cut between its lines.
fn split_block(block: &str, limit: usize) -> Vec<String> {
    let mut lines: Vec<&str> = block.split('\n').collect();
    let open = lines.remove(0).to_string();
    if lines
        .last()
        .is_some_and(|l| l.trim_start().starts_with("```"))
    {
        lines.pop();
    }
    let close = "```";
    // Room for the fences and their newlines.
    let room = limit.saturating_sub(len(&open) + len(close) + 2).max(8);
    let mut out = Vec::new();
    let mut body = String::new();
    let flush = |body: &mut String, out: &mut Vec<String>| {
        if !body.is_empty() {
            out.push(format!("{open}\n{}\n{close}", std::mem::take(body)));
        }
    };
    for line in lines {
        for piece in hard_cut(line, room) {
            let sep = usize::from(!body.is_empty());
            if len(&body) + sep + len(&piece) > room {
                flush(&mut body, &mut out);
            }
            if !body.is_empty() {
                body.push('\n');
            }
            body.push_str(&piece);
        }
    }
    flush(&mut body, &mut out);
    out
}

/// Tokens of a line: words, with a markdown link `[text](url)` kept whole.
fn tokens(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut tok = words[i].to_string();
        i += 1;
        if let Some(start) = tok.find('[') {
            // A link's text may hold spaces: extend to the closing `](…)`.
            let mut j = i;
            while !closes(&tok[start..]) && j < words.len() && j - i < 64 {
                tok.push(' ');
                tok.push_str(words[j]);
                j += 1;
            }
            if closes(&tok[start..]) {
                i = j;
            } else {
                tok = words[i - 1].to_string();
            }
        }
        out.push(tok);
    }
    out
}

fn closes(s: &str) -> bool {
    s.find("](").is_some_and(|k| s[k..].contains(')'))
}

/// A line longer than the limit, cut between words.
fn split_line(line: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for tok in tokens(line) {
        let sep = usize::from(!cur.is_empty());
        if len(&cur) + sep + len(&tok) > limit && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        if len(&tok) > limit {
            // One word (or link) longer than a whole message: nothing
            // better than cutting it.
            out.extend(hard_cut(&tok, limit));
            continue;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&tok);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn hard_cut(s: &str, limit: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars
        .chunks(limit.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Text that echoes a user: `@everyone`, `@here` and role mentions
/// (`<@&ID>`) lose their power (a zero-width space after the `@`), whatever
/// the platform's mention settings.
pub fn neutralise_mentions(text: &str) -> String {
    const ZWSP: &str = "\u{200B}";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('@') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let lower = after.get(..8).map(str::to_ascii_lowercase);
        let mass = lower.as_deref().is_some_and(|l| l.starts_with("everyone"))
            || after
                .get(..4)
                .is_some_and(|h| h.eq_ignore_ascii_case("here"));
        let role = after.starts_with('&') && out.ends_with('<');
        out.push('@');
        if mass || role {
            out.push_str(ZWSP);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split("hello\nworld", 2000), vec!["hello\nworld"]);
        assert!(split("   ", 2000).is_empty());
    }

    #[test]
    fn splits_on_line_boundaries_within_the_limit() {
        let text: String = (0..300)
            .map(|i| format!("line {i} of the answer"))
            .collect::<Vec<_>>()
            .join("\n");
        let parts = split(&text, DISCORD_LIMIT);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.chars().count() <= DISCORD_LIMIT);
            assert!(p.starts_with("line "), "cut inside a line: {p:.20}");
        }
        assert_eq!(parts.join("\n"), text, "nothing lost or added");
    }

    #[test]
    fn never_cuts_a_code_block_or_a_link() {
        let filler = "x".repeat(1500);
        let block = format!("```\n{}\n```", vec!["code line"; 40].join("\n"));
        let link = "https://software.cisco.com/download/navigator.html?mdfid=1&flowid=2";
        let text = format!(
            "{filler}\n{block}\nsee {link} for more\n{filler} [the whole guide](https://example.com/a)"
        );
        let parts = split(&text, DISCORD_LIMIT);
        let whole_block = parts.iter().any(|p| p.contains(&block));
        assert!(
            whole_block,
            "the code block stays in one message: {parts:#?}"
        );
        assert!(parts.iter().any(|p| p.contains(link)));
        for p in &parts {
            assert!(p.chars().count() <= DISCORD_LIMIT);
            assert_eq!(p.matches("```").count() % 2, 0, "fences balanced");
        }
        // A line longer than the limit breaks between words, links whole.
        let long = format!("{} {link} {}", "word ".repeat(390), "end ".repeat(100));
        let parts = split(&long, DISCORD_LIMIT);
        assert!(parts.len() >= 2);
        assert!(parts.iter().any(|p| p.contains(link)));
    }

    #[test]
    fn a_code_block_longer_than_a_message_is_refenced() {
        let block = format!("```text\n{}\n```", vec!["0123456789"; 400].join("\n"));
        let parts = split(&block, DISCORD_LIMIT);
        assert!(parts.len() >= 2);
        for p in &parts {
            assert!(
                p.starts_with("```text\n") && p.ends_with("\n```"),
                "{p:.30}"
            );
            assert!(p.chars().count() <= DISCORD_LIMIT);
        }
    }

    #[test]
    fn mass_and_role_mentions_are_neutralised() {
        let t = neutralise_mentions("hi @everyone and @Here, <@&123> but a@b.example and <@42>");
        assert!(!t.contains("@everyone") && !t.contains("@Here") && !t.contains("<@&"));
        assert!(t.contains("a@b.example") && t.contains("<@42>"));
    }
}
