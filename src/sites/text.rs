//! Texts in the form a site publishes and shows them ([`TextDef`]), and the comparison a lookup
//! makes between a typed text and a post on the page.
//!
//! A site does not show a post exactly as typed: it drops trailing white space (x.com trims both
//! ends), may limit blank lines, and rewrites links (x.com shows `https://t.co/…` links whose
//! text is the address shortened: `github.com/rust-lang/ru…`). Comparing raw characters makes a
//! published post impossible to find again, which leaves its job uncertain (or, with a text the
//! composer reads back differently, unpublishable). So every comparison is made between
//! [`published_form`]s, and a rewritten link — read from the page as U+E000 + its shown text +
//! U+E001 (see `text.js`) — stands for the one typed link whose address it shows.

use super::{TextDef, Trim};

/// Starts a rewritten link's shown text, as `text.js` marks it.
pub const LINK_START: char = '\u{E000}';
/// Ends a rewritten link's shown text.
pub const LINK_END: char = '\u{E001}';

/// The page script that reads an element's text (`this`), given the definition's link selector.
pub const READ_TEXT_JS: &str = include_str!("text.js");

/// `text` as the site publishes it: `\r\n` as `\n`, non-breaking spaces as spaces, trimmed and
/// with blank lines limited as the definition says.
pub fn published_form(text: &str, rules: &TextDef) -> String {
    let text = text.replace("\r\n", "\n").replace('\u{a0}', " ");
    let text = match rules.trim {
        Trim::None => text.as_str(),
        Trim::End => text.trim_end(),
        Trim::Both => text.trim(),
    };
    match rules.max_blank_lines {
        None => text.to_string(),
        Some(most) => {
            let mut kept: Vec<&str> = Vec::new();
            let mut blank_run = 0;
            for line in text.split('\n') {
                if line.trim().is_empty() {
                    blank_run += 1;
                    if blank_run > most {
                        continue;
                    }
                } else {
                    blank_run = 0;
                }
                kept.push(line);
            }
            kept.join("\n")
        }
    }
}

/// Does a post showing `shown` (as read by `text.js`) hold the text `typed`?
pub fn shows(shown: &str, typed: &str, rules: &TextDef) -> bool {
    let shown = published_form(shown, rules);
    let typed = published_form(typed, rules);
    if !shown.contains(LINK_START) {
        return shown == typed;
    }
    let typed: Vec<char> = typed.chars().collect();
    matches(&segments(&shown), &typed)
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(Vec<char>),
    /// A rewritten link: what it shows.
    Link(String),
}

fn segments(shown: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = shown;
    while let Some(start) = rest.find(LINK_START) {
        if start > 0 {
            out.push(Segment::Literal(rest[..start].chars().collect()));
        }
        let inside = &rest[start + LINK_START.len_utf8()..];
        let end = inside.find(LINK_END).unwrap_or(inside.len());
        out.push(Segment::Link(inside[..end].to_string()));
        rest = inside.get(end + LINK_END.len_utf8()..).unwrap_or_default();
    }
    if !rest.is_empty() {
        out.push(Segment::Literal(rest.chars().collect()));
    }
    out
}

/// Matches the segments against all of `typed`; a link takes a run of non-space characters
/// whose address it shows (trying each length, so that `https://a.com.` can leave the `.`).
fn matches(segments: &[Segment], typed: &[char]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return typed.is_empty();
    };
    match first {
        Segment::Literal(literal) => {
            typed.starts_with(literal) && matches(rest, &typed[literal.len()..])
        }
        Segment::Link(shown) => {
            let run = typed
                .iter()
                .position(|c| c.is_whitespace())
                .unwrap_or(typed.len());
            (1..=run).any(|end| {
                let token: String = typed[..end].iter().collect();
                link_shows(&token, shown) && matches(rest, &typed[end..])
            })
        }
    }
}

/// Is `shown` how the site shows the typed link `token`? The scheme and `www.` may be hidden;
/// a shortened text ends in `…` and must begin the address, a whole one must equal it.
fn link_shows(token: &str, shown: &str) -> bool {
    fn bare(address: &str) -> &str {
        let address = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"))
            .unwrap_or(address);
        address.strip_prefix("www.").unwrap_or(address)
    }
    let shown = shown.trim();
    let (shown, shortened) = match shown.strip_suffix('…') {
        Some(start) => (start, true),
        None => (shown, false),
    };
    let (token, shown) = (bare(token), bare(shown));
    if shown.is_empty() {
        return false;
    }
    if shortened {
        token.starts_with(shown)
    } else {
        token == shown || token.strip_suffix('/') == Some(shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(trim: Trim, max_blank_lines: Option<usize>) -> TextDef {
        TextDef {
            trim,
            max_blank_lines,
            links: None,
            count: Default::default(),
        }
    }

    #[test]
    fn the_published_form_follows_the_sites_rules() {
        let end = rules(Trim::End, None);
        assert_eq!(published_form("a\u{a0} b\n", &end), "a  b");
        assert_eq!(published_form("line1\r\nline2", &end), "line1\nline2");
        assert_eq!(
            published_form("  lead\n\n\npara \n\n", &end),
            "  lead\n\n\npara"
        );
        assert_eq!(
            published_form("\n  both \n", &rules(Trim::Both, None)),
            "both"
        );
        assert_eq!(published_form(" x \n", &rules(Trim::None, None)), " x \n");
        let one_blank = rules(Trim::End, Some(1));
        assert_eq!(published_form("a\n\n\n\nb\n\nc", &one_blank), "a\n\nb\n\nc");
        assert_eq!(published_form("a\nb", &one_blank), "a\nb");
        assert_eq!(
            published_form("a\n\n\nb", &rules(Trim::End, Some(0))),
            "a\nb"
        );
    }

    fn link(shown: &str) -> String {
        format!("{LINK_START}{shown}{LINK_END}")
    }

    #[test]
    fn rewritten_links_stand_for_the_links_typed() {
        let r = TextDef::default();
        let typed =
            "Read https://github.com/rust-lang/rust/issues/12345 and http://www.example.com.";
        let shown = format!(
            "Read {} and {}.",
            link("github.com/rust-lang/ru…"),
            link("example.com")
        );
        assert!(shows(&shown, typed, &r));
        // The hidden parts x.com keeps in the link may be read too.
        let whole = format!(
            "Read {} and {}.",
            link("https://github.com/rust-lang/rust/issues/12345…"),
            link("http://www.example.com")
        );
        assert!(shows(&whole, typed, &r));
        // Another address, another text around it, a link missing: not the post.
        let other = format!(
            "Read {} and {}.",
            link("github.com/tokio-rs/tok…"),
            link("example.com")
        );
        assert!(!shows(&other, typed, &r));
        assert!(!shows(
            &format!(
                "Read {} or {}.",
                link("github.com/rust-lang/ru…"),
                link("example.com")
            ),
            typed,
            &r
        ));
        assert!(!shows(&format!("Read {}", link("example.com")), "Read", &r));
        assert!(
            !shows(&link("example.co"), "https://example.com", &r),
            "a whole text must equal"
        );
        assert!(shows(&link("example.com"), "https://example.com/", &r));
    }

    #[test]
    fn texts_without_links_compare_exactly_in_published_form() {
        let r = TextDef::default();
        assert!(shows("two\nlines\n", "two\nlines", &r));
        assert!(!shows("two lines", "two\nlines", &r));
        assert!(
            !shows(" lead", "lead", &r),
            "leading spaces count where the site keeps them"
        );
    }
}
