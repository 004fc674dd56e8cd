//! Session cookies exported from a desktop browser, read for `executor login --cookies FILE`:
//! the way onto a server that has no display to log in on (docs/login.md).
//!
//! Two formats, told apart by the first character: a JSON array (`[`) as the common
//! cookie-export extensions write it (EditThisCookie, Cookie-Editor: `expirationDate`,
//! `hostOnly`, `sameSite` = `no_restriction`/`lax`/`strict`/`unspecified`; Playwright and
//! Puppeteer: `expires`, `-1` for a session cookie, `sameSite` = `None`/`Lax`/`Strict`), and
//! otherwise the Netscape `cookies.txt` of curl, wget and yt-dlp (seven tab-separated fields,
//! `#HttpOnly_` before the domain of an HttpOnly cookie, `#` comments, expiry `0` for a session
//! cookie).
//!
//! The file holds the keys to an account, so: it is read only if it is a regular file (a symbolic
//! link is refused, never followed) of at most [`MAX_FILE_BYTES`]; an error names the file, the
//! line and what is wrong, never a value; and a [`Cookie`] prints its value as `…` in `{:?}`.

use serde_json::{json, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// The largest cookie file read: a browser's whole jar exported is far below this.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Which cookies the site may send back (`SameSite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    fn cdp(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// One cookie, as it is given to the browser (CDP `Network.CookieParam`).
#[derive(Clone, PartialEq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// Without a leading dot.
    pub domain: String,
    /// Sent to `domain` only, not to its subdomains.
    pub host_only: bool,
    pub path: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<SameSite>,
    /// Unix seconds; `None`: a session cookie, gone when the browser closes.
    pub expires: Option<f64>,
}

/// Everything but the value, which is a secret.
impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookie")
            .field("name", &self.name)
            .field("value", &"…")
            .field("domain", &self.domain)
            .field("host_only", &self.host_only)
            .field("path", &self.path)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("expires", &self.expires)
            .finish()
    }
}

impl Cookie {
    /// The cookie as CDP's `Network.CookieParam`. A host-only cookie is given by URL (a
    /// `domain` would make it a domain cookie, sent to subdomains too).
    pub fn to_cdp(&self) -> Value {
        let mut param = json!({
            "name": self.name,
            "value": self.value,
            "path": self.path,
            "secure": self.secure,
            "httpOnly": self.http_only,
        });
        if self.host_only {
            let scheme = if self.secure { "https" } else { "http" };
            param["url"] = json!(format!("{scheme}://{}/", self.domain));
        } else {
            param["domain"] = json!(format!(".{}", self.domain));
        }
        if let Some(same_site) = self.same_site {
            param["sameSite"] = json!(same_site.cdp());
        }
        if let Some(expires) = self.expires {
            param["expires"] = json!(expires);
        }
        param
    }

    /// Is this a cookie of `host` (a site's host name): for it, for a domain above it, or for
    /// one of its subdomains?
    pub fn belongs_to(&self, host: &str) -> bool {
        let domain = self.domain.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        domain == host
            || (!self.host_only && host.ends_with(&format!(".{domain}")))
            || domain.ends_with(&format!(".{host}"))
    }

    /// Has it expired by `now_unix_seconds`? (A browser drops such a cookie as it is set.)
    pub fn expired(&self, now_unix_seconds: f64) -> bool {
        self.expires.is_some_and(|at| at <= now_unix_seconds)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieFileError {
    #[error("--cookies {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("--cookies {path} line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("--cookies {path}: no cookies in it")]
    Empty { path: PathBuf },
}

/// Reads and parses a cookie file (see the module docs for the formats and the limits).
pub fn read_file(path: &Path) -> Result<Vec<Cookie>, CookieFileError> {
    let text = read_bounded(path).map_err(|reason| CookieFileError::Unreadable {
        path: path.to_path_buf(),
        reason,
    })?;
    let cookies = parse(&text).map_err(|(line, reason)| CookieFileError::Line {
        path: path.to_path_buf(),
        line,
        reason,
    })?;
    if cookies.is_empty() {
        return Err(CookieFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(cookies)
}

/// The file's text: a regular file (not followed if it is a symbolic link), at most
/// [`MAX_FILE_BYTES`], UTF-8.
fn read_bounded(path: &Path) -> Result<String, String> {
    crate::files::read_text_limited(path, MAX_FILE_BYTES, crate::files::Links::Refuse).map_err(
        |err| match crate::files::refused(&err) {
            Some(crate::files::Refused::TooLarge { .. }) => format!(
                "larger than {} KiB; export only the site's cookies",
                MAX_FILE_BYTES / 1024
            ),
            _ => err.to_string(),
        },
    )
}

/// Parses either format. An error is `(line, reason)`, 1-based, with no value in it.
pub fn parse(text: &str) -> Result<Vec<Cookie>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('[') {
        parse_json(text)
    } else {
        parse_netscape(text)
    }
}

/// Netscape `cookies.txt`: `domain, include subdomains, path, secure, expiry, name, value`.
fn parse_netscape(text: &str) -> Result<Vec<Cookie>, (usize, String)> {
    let mut cookies = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = raw.trim_end_matches('\r');
        let (line, http_only) = match line.strip_prefix("#HttpOnly_") {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| (line_number, reason);
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 7 {
            return Err(bad(format!(
                "expected 7 tab-separated fields (domain, include subdomains, path, secure, expiry, name, value), found {}",
                fields.len()
            )));
        }
        let flag = |field: &str, what: &str| match field.to_ascii_uppercase().as_str() {
            "TRUE" => Ok(true),
            "FALSE" => Ok(false),
            _ => Err(bad(format!("{what} must be TRUE or FALSE"))),
        };
        let include_subdomains = flag(fields[1], "field 2 (include subdomains)")?;
        let secure = flag(fields[3], "field 4 (secure)")?;
        let expiry: f64 = fields[4]
            .trim()
            .parse()
            .ok()
            .filter(|at: &f64| at.is_finite() && *at >= 0.0)
            .ok_or_else(|| {
                bad("field 5 (expiry) must be Unix seconds, or 0 for a session cookie".into())
            })?;
        let (domain, dotted) = domain_of(fields[0]).map_err(bad)?;
        let name = fields[5];
        if name.is_empty() {
            return Err(bad("field 6 (name) is empty".into()));
        }
        cookies.push(Cookie {
            name: name.to_string(),
            value: fields[6].to_string(),
            domain,
            host_only: !include_subdomains && !dotted,
            path: path_of(fields[2]),
            secure,
            http_only,
            same_site: None,
            expires: (expiry > 0.0).then_some(expiry),
        });
    }
    Ok(cookies)
}

/// The JSON array of the export extensions (and Playwright / Puppeteer).
fn parse_json(text: &str) -> Result<Vec<Cookie>, (usize, String)> {
    // serde_json's syntax errors name a line and a column, never the input's text.
    let items: Vec<Value> = serde_json::from_str(text).map_err(|err| {
        (
            err.line(),
            format!(
                "not a JSON array of cookies (column {}: {})",
                err.column(),
                syntax_only(&err)
            ),
        )
    })?;
    let lines = element_lines(text);
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let line = lines.get(index).copied().unwrap_or(1);
            json_cookie(item).map_err(|reason| (line, format!("cookie #{}: {reason}", index + 1)))
        })
        .collect()
}

/// What is wrong with a JSON text, without quoting any of it.
fn syntax_only(err: &serde_json::Error) -> String {
    match err.classify() {
        serde_json::error::Category::Syntax => "a syntax error".into(),
        serde_json::error::Category::Eof => "it ends too early".into(),
        serde_json::error::Category::Data => "it is not an array".into(),
        serde_json::error::Category::Io => "it cannot be read".into(),
    }
}

fn json_cookie(item: &Value) -> Result<Cookie, String> {
    let object = item
        .as_object()
        .ok_or("is not an object with name, value and domain")?;
    let text = |key: &str| -> Result<Option<&str>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(format!("\"{key}\" is not a string")),
        }
    };
    let flag = |key: &str| -> Result<Option<bool>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(format!("\"{key}\" is not true or false")),
        }
    };
    let number = |key: &str| -> Result<Option<f64>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_f64()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| format!("\"{key}\" is not a number of Unix seconds")),
        }
    };
    let name = text("name")?
        .filter(|n| !n.is_empty())
        .ok_or("no \"name\"")?;
    let value = text("value")?.ok_or("no \"value\"")?;
    let (domain, dotted) = domain_of(text("domain")?.ok_or("no \"domain\"")?)?;
    let same_site = match text("sameSite")?.map(str::to_ascii_lowercase).as_deref() {
        None | Some("unspecified") | Some("") => None,
        Some("no_restriction") | Some("none") => Some(SameSite::None),
        Some("lax") => Some(SameSite::Lax),
        Some("strict") => Some(SameSite::Strict),
        Some(_) => {
            return Err(
                "\"sameSite\" is none of no_restriction, lax, strict, unspecified (or None, Lax, Strict)"
                    .into(),
            )
        }
    };
    // `expirationDate` (the extensions) or `expires` (Playwright, Puppeteer: -1 for a session).
    let expires = match number("expirationDate")? {
        Some(at) => Some(at),
        None => number("expires")?,
    }
    .filter(|at| *at > 0.0);
    let session = flag("session")?.unwrap_or(false);
    Ok(Cookie {
        name: name.to_string(),
        value: value.to_string(),
        domain,
        host_only: flag("hostOnly")?.unwrap_or(!dotted),
        path: path_of(text("path")?.unwrap_or("/")),
        secure: flag("secure")?.unwrap_or(false),
        http_only: flag("httpOnly")?.unwrap_or(false),
        same_site,
        expires: if session { None } else { expires },
    })
}

/// A cookie's domain without its leading dot, and whether it had one.
fn domain_of(field: &str) -> Result<(String, bool), String> {
    let field = field.trim();
    let (domain, dotted) = match field.strip_prefix('.') {
        Some(rest) => (rest, true),
        None => (field, false),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if domain.is_empty() || !domain.chars().all(allowed) {
        return Err("the domain is not a host name".into());
    }
    Ok((domain.to_string(), dotted))
}

fn path_of(field: &str) -> String {
    if field.starts_with('/') {
        field.to_string()
    } else {
        "/".to_string()
    }
}

/// The line on which each element of a (valid) JSON array starts.
fn element_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut line, mut depth) = (1, 0usize);
    let (mut in_string, mut escaped, mut expecting) = (false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if depth == 1 && expecting && !c.is_whitespace() && c != ']' {
            lines.push(line);
            expecting = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expecting = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-t0ken";

    #[test]
    fn netscape_lines_give_domain_scope_flags_and_expiry() {
        let text = format!(
            "# Netscape HTTP Cookie File\n\
             # a comment\n\
             \n\
             #HttpOnly_.x.com\tTRUE\t/\tTRUE\t1893456000\tauth_token\t{SECRET}\r\n\
             127.0.0.1\tFALSE\t/\tFALSE\t0\tlang\ten\n\
             x.com\tFALSE\t/i\tTRUE\t1893456000\tempty\t\n"
        );
        let cookies = parse(&text).expect("parses");
        assert_eq!(cookies.len(), 3);
        let auth = &cookies[0];
        assert_eq!(
            (
                auth.name.as_str(),
                auth.value.as_str(),
                auth.domain.as_str()
            ),
            ("auth_token", SECRET, "x.com")
        );
        assert!(auth.http_only && auth.secure && !auth.host_only);
        assert_eq!(auth.expires, Some(1_893_456_000.0));
        assert_eq!(
            auth.to_cdp()["domain"],
            ".x.com",
            "a domain cookie stays one"
        );
        let lang = &cookies[1];
        assert!(lang.host_only && !lang.http_only && !lang.secure);
        assert_eq!(lang.expires, None, "expiry 0 is a session cookie");
        assert_eq!(lang.to_cdp()["url"], "http://127.0.0.1/");
        assert!(lang.to_cdp().get("domain").is_none());
        assert_eq!(lang.to_cdp().get("expires"), None);
        assert_eq!(
            (cookies[2].path.as_str(), cookies[2].value.as_str()),
            ("/i", "")
        );
    }

    #[test]
    fn json_exports_of_the_extensions_and_of_playwright_both_read() {
        let text = format!(
            r#"[
  {{"domain": ".x.com", "expirationDate": 1893456000.5, "hostOnly": false, "httpOnly": true,
    "name": "auth_token", "path": "/", "sameSite": "no_restriction", "secure": true,
    "session": false, "storeId": "0", "value": "{SECRET}", "id": 1}},
  {{"domain": "x.com", "hostOnly": true, "name": "ct0", "value": "v", "sameSite": "lax",
    "session": true, "expirationDate": 1893456000}},
  {{"name": "pw", "value": "v", "domain": "127.0.0.1", "path": "/", "expires": -1,
    "httpOnly": false, "secure": false, "sameSite": "Strict"}}
]"#
        );
        let cookies = parse(&text).expect("parses");
        assert_eq!(cookies.len(), 3);
        assert_eq!(cookies[0].same_site, Some(SameSite::None));
        assert_eq!(cookies[0].expires, Some(1_893_456_000.5));
        assert!(!cookies[0].host_only && cookies[0].http_only && cookies[0].secure);
        assert_eq!(cookies[0].to_cdp()["sameSite"], "None");
        assert_eq!(
            cookies[1].expires, None,
            "session: true wins over a stray expiry"
        );
        assert!(cookies[1].host_only);
        assert_eq!(cookies[1].same_site, Some(SameSite::Lax));
        assert_eq!(
            cookies[2].expires, None,
            "Playwright's -1 is a session cookie"
        );
        assert_eq!(cookies[2].same_site, Some(SameSite::Strict));
        assert!(cookies[2].host_only, "no dot and no hostOnly: host only");
    }

    #[test]
    fn bad_lines_are_named_by_number_and_never_show_a_value() {
        let cases: [(String, usize, &str); 7] = [
            (
                format!("# c\nx.com\tFALSE\t/\tFALSE\t0\tname {SECRET}\n"),
                2,
                "expected 7 tab-separated fields",
            ),
            (
                format!("x.com\tFALSE\t/\tFALSE\t0\ta\tb\n\nx.com\tMAYBE\t/\tFALSE\t0\tn\t{SECRET}\n"),
                3,
                "field 2 (include subdomains) must be TRUE or FALSE",
            ),
            (
                format!("x.com\tFALSE\t/\tFALSE\tsoon\tn\t{SECRET}\n"),
                1,
                "field 5 (expiry)",
            ),
            (
                format!("[\n  {{\"name\": \"a\", \"value\": \"{SECRET}\", \"domain\": \"x.com\"}},\n  {{\"value\": \"{SECRET}\", \"domain\": \"x.com\"}}\n]"),
                3,
                "cookie #2: no \"name\"",
            ),
            (
                format!("[{{\"name\": \"a\",\n\"value\": \"{SECRET}\", \"domain\": \"x.com\"\n}},\n{{\"name\": \"b\", \"value\": \"{SECRET}\", \"domain\": \"x.com\", \"sameSite\": \"{SECRET}\"}}]"),
                4,
                "cookie #2: \"sameSite\" is none of",
            ),
            (
                format!("[\n{{\"name\": \"a\", \"value\": \"{SECRET}\"\n\"domain\": \"x.com\"}}]"),
                3,
                "not a JSON array of cookies",
            ),
            (
                format!("[{{\"name\": \"a\", \"value\": \"{SECRET}\", \"domain\": \"x.com/{SECRET}\"}}]"),
                1,
                "the domain is not a host name",
            ),
        ];
        for (text, line, expected) in cases {
            let (at, reason) = parse(&text).expect_err(expected);
            assert_eq!(at, line, "{reason}");
            assert!(reason.contains(expected), "{reason}");
            assert!(!reason.contains(SECRET), "a value leaked: {reason}");
            assert!(!reason.contains('\n'), "one line: {reason}");
        }
    }

    #[test]
    fn a_cookie_belongs_to_its_host_its_parent_domain_and_its_subdomains() {
        let cookie = |domain: &str, host_only: bool| Cookie {
            name: "n".into(),
            value: SECRET.into(),
            domain: domain.into(),
            host_only,
            path: "/".into(),
            secure: false,
            http_only: false,
            same_site: None,
            expires: None,
        };
        assert!(cookie("x.com", false).belongs_to("x.com"));
        assert!(cookie("x.com", false).belongs_to("www.x.com"));
        assert!(!cookie("x.com", true).belongs_to("www.x.com"));
        assert!(cookie("api.x.com", true).belongs_to("x.com"));
        assert!(cookie("127.0.0.1", true).belongs_to("127.0.0.1"));
        assert!(!cookie("notx.com", false).belongs_to("x.com"));
        assert!(!cookie("example.org", false).belongs_to("x.com"));
        assert!(
            !format!("{:?}", cookie("x.com", false)).contains(SECRET),
            "Debug hides the value"
        );
        assert!(!cookie("x.com", false).expired(1.0));
        let mut old = cookie("x.com", false);
        old.expires = Some(10.0);
        assert!(old.expired(11.0) && !old.expired(9.0));
    }

    #[test]
    fn links_directories_and_huge_files_are_refused_before_reading() {
        let dir = std::env::temp_dir().join(format!("executor-cookies-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let real = dir.join("cookies.txt");
        std::fs::write(&real, "x.com\tFALSE\t/\tFALSE\t0\tn\tv\n").expect("write");
        assert_eq!(read_file(&real).expect("reads").len(), 1);
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let err = read_file(&link).expect_err("a link").to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let err = read_file(&dir).expect_err("a directory").to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let huge = dir.join("huge.txt");
        std::fs::write(&huge, vec![b'#'; MAX_FILE_BYTES as usize + 1]).expect("write");
        let err = read_file(&huge).expect_err("too large").to_string();
        assert!(err.contains("larger than 1024 KiB"), "{err}");
        let empty = dir.join("empty.txt");
        std::fs::write(&empty, "# Netscape HTTP Cookie File\n").expect("write");
        let err = read_file(&empty).expect_err("no cookies").to_string();
        assert!(err.contains("no cookies"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
