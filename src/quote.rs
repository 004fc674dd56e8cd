//! Text we did not write (a file's content, a setting's value, an argument, a library's message
//! that carries one) as it appears in a log line or an error message: quoted or escaped, and
//! bounded.
//!
//! Raw, such text forges and floods: a stale lock file holding
//! `\n[EXECUTOR_DAEMON] ts=… pages=7` became a tick line that the seed's grep counts, a 100 MB
//! one became a 100 MB log line, and a 10 MB setting value was echoed back whole. Two rules:
//!
//! - a value is shown with [`quoted`]: in double quotes and escaped as a Rust string literal (a
//!   newline is `\n`), so it is one line and where it ends is plain; past [`SHOWN_CHARS`]
//!   characters it is cut, and says its full size: `"abc…"…(104857600 bytes)`;
//! - every log line and every `error:` line passes through [`single_line`] as a last guard,
//!   whatever its message carries: control characters escaped, length capped. A message can
//!   then never start a line of its own.

use std::fmt::Write as _;

/// How much of a value is shown.
pub const SHOWN_CHARS: usize = 200;

/// How much of a library's message is shown (a parser's, which may quote a value of the file):
/// enough for its own text, such as the list of the keys it expected.
pub const MESSAGE_CHARS: usize = 1000;

/// `text` safe inside an HTML element or a quoted attribute (the dashboard's and the sandbox's
/// pages show text from outside: a post's, a job's).
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` quoted, escaped and bounded: see the module docs.
pub fn quoted(text: &str) -> String {
    quoted_part(text, text.len() as u64)
}

/// `text`, the start of something `total_bytes` long (the head of a file), shown as [`quoted`]
/// shows a value: the size given is the whole one.
pub fn quoted_part(text: &str, total_bytes: u64) -> String {
    let cut = text.char_indices().nth(SHOWN_CHARS).map(|(at, _)| at);
    let shown = &text[..cut.unwrap_or(text.len())];
    if cut.is_none() && total_bytes <= text.len() as u64 {
        format!("{shown:?}")
    } else {
        format!("{shown:?}…({total_bytes} bytes)")
    }
}

/// `message` as one line of at most `max_chars` characters (plus the cut mark): control
/// characters (newline, carriage return, escape, …) escaped as in a Rust string literal, the
/// rest as it is; a longer message is cut and says its full size.
pub fn single_line(message: &str, max_chars: usize) -> String {
    let mut line = String::with_capacity(message.len().min(max_chars) + 24);
    for (count, c) in message.chars().enumerate() {
        if count == max_chars {
            let _ = write!(line, "…({} bytes)", message.len());
            break;
        }
        if c.is_control() {
            line.extend(c.escape_debug());
        } else {
            line.push(c);
        }
    }
    line
}

/// `text` cut after `max_chars` characters, saying its full size (control characters kept: for
/// stored data, which is JSON-escaped anyway); `None` when it is short enough.
pub fn cut(text: &str, max_chars: usize) -> Option<String> {
    let (at, _) = text.char_indices().nth(max_chars)?;
    Some(format!("{}…({} bytes)", &text[..at], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_stored_text_is_cut_saying_its_size() {
        assert_eq!(cut("short", 10), None);
        assert_eq!(cut("éééé", 2).as_deref(), Some("éé…(8 bytes)"));
    }

    #[test]
    fn a_value_is_one_quoted_line_that_cannot_pass_for_a_log_line() {
        let forged = "123:456\n[EXECUTOR_DAEMON] ts=2026-01-01T00:00:00.000Z pages=7\r\u{1b}[2K";
        let shown = quoted(forged);
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(shown.starts_with('"') && shown.ends_with('"'), "{shown}");
        assert!(shown.contains(r"\n[EXECUTOR_DAEMON]"), "{shown}");
        assert_eq!(quoted("plain"), "\"plain\"");
        assert_eq!(quoted("quote \" and \\"), r#""quote \" and \\""#);
        assert_eq!(
            quoted("émoji 🎉"),
            "\"émoji 🎉\"",
            "printable text stays readable"
        );
    }

    #[test]
    fn a_long_value_is_cut_and_says_its_size() {
        let long = "é".repeat(10_000);
        let shown = quoted(&long);
        assert_eq!(
            shown,
            format!("{:?}…(20000 bytes)", "é".repeat(SHOWN_CHARS))
        );
        let exact = "a".repeat(SHOWN_CHARS);
        assert_eq!(quoted(&exact), format!("{exact:?}"), "at the bound: whole");
        // The head of a larger file says the file's size, even when the head itself is short.
        assert_eq!(
            quoted_part("12:34", 104_857_600),
            "\"12:34\"…(104857600 bytes)"
        );
        assert_eq!(quoted_part("", 0), "\"\"");
    }

    #[test]
    fn a_message_becomes_one_bounded_line() {
        assert_eq!(single_line("a\nb\tc", 100), r"a\nb\tc");
        assert_eq!(
            single_line("already fine: ünïcode", 100),
            "already fine: ünïcode"
        );
        let long = format!("x{}", "\n".repeat(1_000_000));
        let line = single_line(&long, 50);
        assert!(!line.contains('\n'));
        assert!(line.ends_with("…(1000001 bytes)"), "{line}");
        assert!(line.chars().count() < 50 * 2 + 30, "{}", line.len());
    }
}
