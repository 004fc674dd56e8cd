//! Who may use the dashboard, and what a page may do in the browser.
//!
//! The dashboard can retry and cancel jobs and add new ones, so it is never open: every request
//! carries the token kept in `<profile>/ui-token` (created once, `0600`, never through a link),
//! in one of three ways:
//!
//! - `?token=…` on the URL `executor ui` prints: answered with a cookie (`HttpOnly`,
//!   `SameSite=Strict`) and a redirect to the same page without the token, so the token leaves
//!   the address bar and the history;
//! - that cookie, on every later request of the browser;
//! - `Authorization: Bearer …`, for programs (`POST /api/jobs`).
//!
//! A request with none of them, or a wrong one, gets 401 and nothing else.
//!
//! Actions are POSTs, and a POST is refused (403) when the browser says it comes from another
//! site: `Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` that is not this
//! server's. `SameSite=Strict` already keeps the cookie off a cross-site request; forms also
//! carry a per-server CSRF field ([`Dashboard::csrf`](super::Dashboard)) for browsers that send
//! neither header. Every answer carries a Content-Security-Policy that allows only this page's
//! own nonce-tagged script and style (no other source at all, no framing) and
//! `X-Content-Type-Options: nosniff`.

use crate::files::{self, Links, Write};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The name of the token file in the profile.
pub const TOKEN_FILE: &str = "ui-token";
/// The cookie that carries the token after the first visit.
pub const COOKIE: &str = "executor_ui";

/// Why the token could not be read or made: names the file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a dashboard token (expected 32 to 128 letters and digits); delete it to make a new one")]
    Malformed { path: PathBuf },
}

/// The dashboard's secret. Compared in constant time.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// 64 hex digits of fresh randomness (two v4 UUIDs: 244 random bits).
pub fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Token {
    /// The token of `profile`: read from `<profile>/ui-token`, or made and written there (`0600`)
    /// on the first start. A link in its place is refused, never followed.
    pub fn load_or_create(profile: &Path) -> Result<Token, TokenError> {
        let path = profile.join(TOKEN_FILE);
        let io = |source| TokenError::Io {
            path: path.clone(),
            source,
        };
        files::create_private_dir(profile).map_err(io)?;
        match files::read_text_limited(&path, 1024, Links::Refuse) {
            Ok(text) => Token::parse(text.trim()).ok_or(TokenError::Malformed { path }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let token = random_hex();
                let mut file = files::open_for_writing(&path, Write::CreateNew).map_err(io)?;
                file.write_all(token.as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .and_then(|()| file.sync_all())
                    .map_err(io)?;
                Ok(Token(token))
            }
            Err(err) => Err(io(err)),
        }
    }

    fn parse(text: &str) -> Option<Token> {
        let fits =
            (32..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric());
        fits.then(|| Token(text.to_string()))
    }

    /// The token as it goes into the URL printed at start.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), given.as_bytes())
    }
}

/// Byte-wise comparison that looks at every byte whatever the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a request proved it may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// `?token=` on the URL: the browser gets the cookie and a clean URL.
    Query,
    Cookie,
    Bearer,
}

/// The credential the request carries, if it carries the right token.
pub fn credential(token: &Token, headers: &HeaderMap, query: Option<&str>) -> Option<Credential> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(given) = value.strip_prefix("Bearer ") {
            // A wrong bearer is a wrong request, even if a cookie would have let it in.
            return token.matches(given.trim()).then_some(Credential::Bearer);
        }
    }
    if query_token(query).is_some_and(|given| token.matches(&given)) {
        return Some(Credential::Query);
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    for line in cookies {
        for pair in line.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if name == COOKIE && token.matches(value) {
                    return Some(Credential::Cookie);
                }
            }
        }
    }
    None
}

/// The `token` parameter of a query string.
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value.to_string())
}

/// The query string without its `token` parameter (for the redirect after a token URL).
pub fn query_without_token(query: Option<&str>) -> String {
    let rest: Vec<&str> = query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("token="))
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        format!("?{}", rest.join("&"))
    }
}

/// The `Set-Cookie` that keeps the token for the browser's later requests.
pub fn session_cookie(token: &Token) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
        token.reveal()
    )
}

/// Why a state-changing request is refused as cross-site, if it is: the browser's own
/// `Sec-Fetch-Site`, else an `Origin` that is not this server (`Host`).
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some(format!("Sec-Fetch-Site: {site}"));
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or_default();
        if origin != format!("http://{host}") {
            return Some(format!("Origin: {origin}"));
        }
    }
    None
}

/// The headers every answer carries; `nonce` tags the page's own script and style.
pub fn protect(headers: &mut HeaderMap, nonce: &str) {
    let policy = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: with it a browser sends `Origin: null` on our own form posts.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token("a".repeat(64))
    }

    #[test]
    fn a_request_is_let_in_only_with_the_token() {
        let mut headers = HeaderMap::new();
        assert_eq!(credential(&token(), &headers, None), None);
        assert_eq!(
            credential(
                &token(),
                &headers,
                Some(&format!("x=1&token={}", "a".repeat(64)))
            ),
            Some(Credential::Query)
        );
        assert_eq!(credential(&token(), &headers, Some("token=b")), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={}", "a".repeat(64))).expect("v"),
        );
        assert_eq!(
            credential(&token(), &headers, None),
            Some(Credential::Cookie)
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer nope"),
        );
        assert_eq!(credential(&token(), &headers, None), None);
    }

    #[test]
    fn a_post_from_another_site_is_named() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9465"));
        assert_eq!(cross_site(&Method::POST, &headers), None);
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9465"),
        );
        assert_eq!(cross_site(&Method::POST, &headers), None);
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&Method::POST, &headers).is_some());
        assert_eq!(cross_site(&Method::GET, &headers), None);
        let mut fetch = HeaderMap::new();
        fetch.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&Method::POST, &fetch).is_some());
    }

    #[test]
    fn the_redirect_drops_only_the_token() {
        assert_eq!(query_without_token(Some("token=x")), "");
        assert_eq!(
            query_without_token(Some("state=dead&token=x&kind=post")),
            "?state=dead&kind=post"
        );
    }
}
