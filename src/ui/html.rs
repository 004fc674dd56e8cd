//! HTML written by hand: one escape function every store value goes through, and the page
//! around each view (navigation, the inline style and script, both tagged with the response's
//! CSP nonce). No template engine: the pages are a few tables and forms, and plain `format!`
//! with [`escape`] keeps every inserted value visible in review.

use std::fmt::Write;

/// Job texts, account names, errors and everything else from the store are hostile input: all
/// of it goes through here (the sandbox's pages use the same function).
pub use crate::quote::html as escape;

/// `text` as a query-string value (for the links the pages build).
pub fn url_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#20232a;color:#fff;padding:.6em 1em;display:flex;gap:1.5em;align-items:baseline}
header a{color:#9cf;text-decoration:none}header strong{font-size:1.1em}
main{padding:1em}section{margin-bottom:1.5em}h2{font-size:1.05em;margin:.2em 0 .5em}
table{border-collapse:collapse;background:#fff;min-width:40%}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f0f0f0;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.text{min-width:16em;max-width:40em;white-space:pre-wrap;word-break:break-word}
td.t{white-space:nowrap}
.s-active,.s-succeeded{color:#176f2c}.s-dead,.s-failed{color:#b3261e}.s-standby,.s-uncertain{color:#8a5a00}
.muted{color:#777}.err{color:#b3261e}form.inline{display:inline;margin:0}
.note{background:#fff8e1;border:1px dashed #d9b44a;padding:.3em .6em;display:inline-block}
svg{background:#fff;border:1px solid #ddd}svg text{font-size:10px;fill:#555}
.flash{background:#e8f5e9;border:1px solid #8bc34a;padding:.4em .8em;margin-bottom:1em}
ul.why{margin:.2em 0;padding-left:1.2em}td.paused{color:#8a5a00;font-weight:600}
";

/// Keeps `#live` up to date without reloading the page: fetches this page again every few
/// seconds and swaps the fresh `#live` in (the server renders and escapes it; nothing here
/// builds HTML). Without JavaScript the page is simply static.
const SCRIPT: &str = "
(function(){var live=document.getElementById('live');if(!live||!window.fetch)return;
function tick(){fetch(location.href,{credentials:'same-origin',headers:{'Accept':'text/html'}})
.then(function(r){return r.ok?r.text():null}).then(function(t){if(!t)return;
var d=new DOMParser().parseFromString(t,'text/html');var n=d.getElementById('live');
if(n){live.replaceWith(n);live=n;}}).catch(function(){});}
setInterval(tick,5000);})();
";

/// A whole page: `body` (already escaped HTML) inside the navigation, with the nonce-tagged
/// style and, when `live`, the refresh script.
pub fn page(title: &str, nonce: &str, live: bool, body: &str) -> String {
    let script = if live {
        format!("<script nonce=\"{nonce}\">{SCRIPT}</script>")
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} · executor</title><style nonce=\"{nonce}\">{STYLE}</style></head>\
         <body><header><strong>executor</strong><a href=\"/\">Overview</a>\
         <a href=\"/jobs\">Jobs</a></header><main>{body}</main>{script}</body></html>",
        title = escape(title)
    )
}

/// A table: `head` are column names; each row is already-escaped cells (`<td>` included).
pub fn table(id: &str, head: &[&str], rows: &[String], empty: &str) -> String {
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for name in head {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        let _ = write!(out, "<tr>{row}</tr>");
    }
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr class=\"empty\"><td colspan=\"{}\" class=\"muted\">{}</td></tr>",
            head.len(),
            escape(empty)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A cell with `text` escaped; `class` may be empty.
pub fn cell(class: &str, text: &str) -> String {
    if class.is_empty() {
        format!("<td>{}</td>", escape(text))
    } else {
        format!("<td class=\"{}\">{}</td>", escape(class), escape(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_value_stays_text() {
        assert_eq!(
            escape("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(url_component("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }
}
