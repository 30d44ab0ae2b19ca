//! HTML-only mail: cut the history that follows the new text at the
//! markers top-posting clients put before it, then turn the rest into plain
//! text with line breaks where block elements were (mail-parser's converter
//! only breaks on `<br>`/`</p>`, and Outlook and Gmail write `<div>`s).
//! Blockquotes become `>` lines, so the plain-text extractor treats the
//! result as it treats plain-text mail: quoted lines dropped wherever they
//! are (inline and bottom-posted answers survive), attribution lines,
//! sign-offs and signatures recognised the same way.

/// Attribute or tag fragments (lower case) that open the quoted history of
/// a top-posted reply: everything from there on is history. (Blockquotes
/// are not cut: they are quoted lines, see [`to_text`].)
const QUOTE_MARKERS: &[&str] = &[
    "id=\"divrplyfwdmsg",
    "id=\"x_divrplyfwdmsg",
    "name=\"divrplyfwdmsg",
    "id=\"appendonsend",
    "id=\"x_appendonsend",
    "<hr id=\"stopspelling",
    "class=\"moz-forward-container",
    "class=\"outlookmessageheader",
    "id=\"mail-editor-reference-message-container",
    "class=\"yahoo_quoted",
    "id=\"yahoo_quoted",
    "<hr id=\"zwchr",
    "data-marker=\"__quoted_content__",
    "class=\"protonmail_quote",
    "border-top:solid #e1e1e1",
    "border-top:solid #b5c4df",
    "border-top: solid #e1e1e1",
    "border-top: solid #b5c4df",
];

/// The part of an HTML body above the quoted history.
pub fn cut_quoted(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    // Markers sit inside `<body>`; ignore anything in the head (styles).
    let body_start = lower.find("<body").unwrap_or(0);
    let cut = QUOTE_MARKERS
        .iter()
        .filter_map(|m| lower[body_start..].find(m).map(|i| i + body_start))
        .min();
    match cut {
        Some(i) => {
            // Back up to the start of the tag holding the attribute.
            let start = lower[..i]
                .rfind('<')
                .filter(|_| !lower[i..].starts_with('<'));
            let at = start.unwrap_or(i);
            html.get(..at).unwrap_or(html)
        }
        None => html,
    }
}

const BLOCK: &[&str] = &[
    "br",
    "p",
    "div",
    "tr",
    "li",
    "ul",
    "ol",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "dd",
    "dt",
];
const SKIP: &[&str] = &["head", "style", "script", "title", "template"];

/// Blockquotes nested deeper than this are quoted at this depth.
const MAX_QUOTE_DEPTH: usize = 32;

/// Plain text of an HTML fragment; a blockquote's lines start with `>`.
pub fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skipping: Option<String> = None;
    let mut depth = 0usize;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map(|i| &after[i + 3..]).unwrap_or("");
            continue;
        }
        if rest.starts_with('<') {
            let end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[1..end];
            rest = rest.get(end + 1..).unwrap_or("");
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if let Some(s) = &skipping {
                if closing && *s == name {
                    skipping = None;
                }
                continue;
            }
            if !closing && SKIP.contains(&name.as_str()) && !tag.ends_with('/') {
                skipping = Some(name);
                continue;
            }
            if BLOCK.contains(&name.as_str()) && !out.ends_with("\n\n") {
                out.push('\n');
            }
            if name == "blockquote" && !tag.ends_with('/') {
                depth = if closing {
                    depth.saturating_sub(1)
                } else {
                    (depth + 1).min(MAX_QUOTE_DEPTH)
                };
            }
            continue;
        }
        let next = rest.find('<').unwrap_or(rest.len());
        let chunk = &rest[..next];
        rest = &rest[next..];
        if skipping.is_none() {
            let line_start = out.is_empty() || out.ends_with('\n');
            if depth > 0 && line_start && !chunk.trim().is_empty() {
                out.push_str(&"> ".repeat(depth));
            }
            push_text(&mut out, chunk);
        }
    }
    tidy(&out)
}

/// Appends text, collapsing whitespace as a browser would and decoding entities.
fn push_text(out: &mut String, chunk: &str) {
    let decoded = decode_entities(chunk);
    for c in decoded.chars() {
        if c == '\u{a0}' {
            out.push(' ');
        } else if c.is_whitespace() {
            if !(out.ends_with(' ') || out.ends_with('\n') || out.is_empty()) {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';');
        let decoded = end.and_then(|e| entity(&rest[1..e]).map(|c| (c, e)));
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "nbsp" => '\u{a0}',
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "rsquo" | "lsquo" => '\'',
        "rdquo" | "ldquo" | "laquo" | "raquo" => '"',
        "eacute" => 'é',
        "egrave" => 'è',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "agrave" => 'à',
        "acirc" => 'â',
        "ccedil" => 'ç',
        "ocirc" => 'ô',
        "icirc" => 'î',
        "iuml" => 'ï',
        "ugrave" => 'ù',
        "ucirc" => 'û',
        "Eacute" => 'É',
        "Agrave" => 'À',
        "Ccedil" => 'Ç',
        "oelig" => 'œ',
        "hellip" => '…',
        "ndash" => '–',
        "mdash" => '—',
        "euro" => '€',
        "copy" => '©',
        "reg" => '®',
        _ => return None,
    })
}

/// Trims each line and keeps at most one blank line in a row.
fn tidy(s: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for l in s.lines().map(str::trim) {
        if l.is_empty() && out.last().is_none_or(|p| p.is_empty()) {
            continue;
        }
        out.push(l);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_quote_becomes_quoted_lines() {
        let h = "<div dir=\"ltr\">Bonjour,<div>le lien ne marche pas&nbsp;!</div></div><br><div class=\"gmail_quote\"><div class=\"gmail_attr\">Le lun. a écrit :</div><blockquote>old<br>older</blockquote></div>";
        assert_eq!(
            to_text(cut_quoted(h)),
            "Bonjour,\nle lien ne marche pas !\n\nLe lun. a écrit :\n\n> old\n> older"
        );
    }

    #[test]
    fn outlook_history_is_cut_and_inline_answers_survive() {
        let h = "<p>Top answer</p><div id=\"divRplyFwdMsg\"><b>De&nbsp;:</b> x</div><p>history</p>";
        assert_eq!(to_text(cut_quoted(h)), "Top answer");
        let h = "<div>Le 2 mars, X a écrit&nbsp;:</div><blockquote type=\"cite\">Question 1 ?</blockquote><div>Réponse 1.</div><blockquote type=\"cite\"><blockquote>Vieux</blockquote></blockquote>";
        assert_eq!(
            to_text(cut_quoted(h)),
            "Le 2 mars, X a écrit :\n\n> Question 1 ?\n\nRéponse 1.\n\n> > Vieux"
        );
    }

    #[test]
    fn style_and_entities() {
        let h = "<html><head><style>p{color:red}</style></head><body><p>A &amp; B &#233;t&eacute;</p></body></html>";
        assert_eq!(to_text(h), "A & B été");
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for h in [
            "<",
            "<div",
            "&",
            "&#xFFFFFFFF;",
            "<!--",
            "<style>x",
            "a<b>c&;",
        ] {
            let _ = to_text(cut_quoted(h));
        }
    }
}
