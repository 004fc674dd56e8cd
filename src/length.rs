//! How long a text is, as a site counts it, and whether it says anything at all.
//!
//! Most sites count characters. x.com counts a weighted length: a character of the Latin,
//! Greek, Cyrillic, … scripts (code points up to U+10FF) and a few punctuation ranges count 1,
//! every other character (CJK, most emoji) counts 2, an emoji sequence (a skin tone, a family
//! joined with zero-width joiners, a flag) counts 2 as a whole, and every link counts 23
//! whatever its length, because the site shortens it. A site definition says which rule its
//! site applies (`[text] count`), so that a text the site would refuse is refused at enqueue.

use serde::Deserialize;

/// How a site counts the length of a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    /// Unicode characters (code points).
    #[default]
    Chars,
    /// x.com's weighted length (see the module docs).
    Weighted,
}

impl Count {
    /// How the rule is named in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Count::Chars => "characters",
            Count::Weighted => "weighted length: most emoji and CJK count 2, a link 23",
        }
    }
}

/// The length a link counts for in a weighted length, whatever it is.
pub const WEIGHTED_LINK: usize = 23;

/// The length of `text` by `count`.
pub fn length(text: &str, count: Count) -> usize {
    match count {
        Count::Chars => text.chars().count(),
        Count::Weighted => weighted(text),
    }
}

/// Does `text` hold nothing a reader would see? White space and invisible format characters
/// (zero-width spaces and joiners, word joiners, byte-order marks, soft hyphens) only.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// x.com's weighted length.
fn weighted(text: &str) -> usize {
    let mut total = 0;
    for word in split_keeping_spaces(text) {
        if is_link(word) {
            total += WEIGHTED_LINK;
        } else {
            total += weighted_chars(word);
        }
    }
    total
}

/// `text` cut into runs of white space and runs of anything else, in order.
fn split_keeping_spaces(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_space = None;
    for (at, c) in text.char_indices() {
        let space = c.is_whitespace();
        if in_space.is_some_and(|was| was != space) {
            pieces.push(&text[start..at]);
            start = at;
        }
        in_space = Some(space);
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces.into_iter()
}

/// A word the site turns into a link: it begins with `http://`, `https://` or `www.` and has
/// something after that. (Addresses written without either, such as `example.com/page`, are
/// counted as characters: telling them from a sentence needs the list of top-level domains.)
fn is_link(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    ["https://", "http://", "www."]
        .iter()
        .any(|prefix| lower.len() > prefix.len() + 2 && lower.starts_with(prefix))
}

/// Counts 1 or 2 per character; the parts of an emoji sequence after its first count 0.
fn weighted_chars(word: &str) -> usize {
    let mut total = 0;
    let mut joined = false;
    let mut open_flag = false;
    let mut previous_emoji = false;
    for c in word.chars() {
        let code = c as u32;
        let weight = if joined {
            // The character after a zero-width joiner is part of the same emoji.
            joined = false;
            0
        } else if c == '\u{200D}' && previous_emoji {
            joined = true;
            0
        } else if matches!(code, 0xFE0E | 0xFE0F | 0x20E3 | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F) {
            // Variation selectors, keycaps, skin tones, tag characters: part of the emoji.
            0
        } else if (0x1F1E6..=0x1F1FF).contains(&code) {
            // Regional indicators: a pair is one flag.
            open_flag = !open_flag;
            if open_flag {
                2
            } else {
                0
            }
        } else if light(code) {
            1
        } else {
            2
        };
        previous_emoji = !light(code) || matches!(code, 0xFE0F | 0x20E3);
        total += weight;
    }
    total
}

/// The code point ranges x.com counts as 1.
fn light(code: u32) -> bool {
    matches!(code, 0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_counted_as_code_points() {
        assert_eq!(length("héllo", Count::Chars), 5);
        assert_eq!(length("日本", Count::Chars), 2);
    }

    #[test]
    fn weighted_length_counts_as_x_does() {
        let w = |t: &str| length(t, Count::Weighted);
        assert_eq!(w("hello world"), 11);
        assert_eq!(w("héllo"), 5, "Latin with accents counts 1");
        assert_eq!(w("日本語"), 6, "CJK counts 2");
        assert_eq!(w("😀"), 2);
        assert_eq!(w("👍🏽"), 2, "a skin tone is part of the emoji");
        assert_eq!(w("👨\u{200D}👩\u{200D}👧"), 2, "a family is one emoji");
        assert_eq!(w("🇫🇷"), 2, "a flag is one emoji");
        assert_eq!(w("❤\u{FE0F}"), 2);
        assert_eq!(
            w("see https://example.com/a/very/long/path?with=query"),
            4 + 23
        );
        assert_eq!(w("http://a.co"), 23, "short links count 23 too");
        assert_eq!(w("www.example.com/x and"), 23 + 4);
        assert_eq!(w("https://"), 8, "a scheme alone is not a link");
        assert_eq!(w(&"字".repeat(140)), 280);
        assert_eq!(w(&"字".repeat(141)), 282);
        assert_eq!(
            w(&format!("{} https://example.com", "a".repeat(270))),
            270 + 1 + 23
        );
    }

    #[test]
    fn invisible_texts_are_blank() {
        assert!(is_blank(""));
        assert!(is_blank(" \n\t"));
        assert!(is_blank("\u{200B}\u{200B}\u{FEFF}\u{2060}"));
        assert!(is_blank("\u{200D}\u{00AD} \u{200C}"));
        assert!(!is_blank("\u{200B}a"));
        assert!(!is_blank("😀"));
    }
}
