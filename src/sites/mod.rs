//! How the lanes act on a site: the [`Site`] trait (who is logged in, prepare, publish, find a
//! post again) and its types, implemented once by the engine.
//!
//! Sites as data (SPEC §7): a TOML file says how to detect a logged-in session and the login
//! walls and who is logged in, how to post and reply, where the new post's id is in the site's own
//! create-post answer, how to look a post up again (and page back through the account's
//! timeline), and the text limit. One engine ([`engine::SiteEngine`])
//! interprets any definition through the single page. Built in: `x` and `sandbox`
//! (`sites/*.toml`, embedded); `--site FILE` loads another without recompiling.

pub mod engine;
pub mod text;

use crate::browser::Browser;
use crate::jobs::Job;
use serde::Deserialize;
use std::path::Path;
use std::time::SystemTime;

/// What a published post is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub post_id: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The site answered 429; `reset` is when it said to come back, if it said.
    #[error("the site is rate limiting (HTTP 429)")]
    RateLimited { reset: Option<SystemTime> },
    /// A login wall or challenge.
    #[error("the site wants a login")]
    AuthRequired,
    #[error("{0}")]
    Failed(String),
}

/// Who the browser is logged in as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The account's handle as the site shows it; `None` when the site definition does not say
    /// where to read it.
    pub account: Option<String>,
}

/// What a lookup of an unknown outcome found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Published),
    /// Searched the whole window back to the attempt: the post is not there.
    NotFound,
    /// Could not search back to the attempt (the timeline ended early, a page did not load):
    /// nothing can be concluded, and the job stays `uncertain`.
    Incomplete {
        reason: String,
    },
}

/// How to act on one web application through the single page (docs/extending.md). The lanes
/// act through it; [`engine::SiteEngine`] implements it for any site definition; tests provide
/// doubles.
#[async_trait::async_trait]
pub trait Site: Send + Sync {
    /// Is the browser logged in to the site, and as whom? (`AuthRequired` on a login wall or
    /// challenge.)
    async fn session(&self, _browser: &Browser) -> Result<Session, ActionError> {
        Ok(Session::default())
    }
    /// Everything before the irreversible step: navigate, open the composer, type. Must be
    /// safe to repeat.
    async fn prepare(&self, browser: &Browser, job: &Job) -> Result<(), ActionError>;
    /// The irreversible step (the click that publishes) and learning the new post's id.
    async fn publish(&self, browser: &Browser, job: &Job) -> Result<Published, ActionError>;
    /// Does the job's post exist on the site? `account` is the handle the browser is logged in
    /// as (its timeline holds the post); the search must reach back to `since`, when the attempt
    /// began, before it may answer [`Lookup::NotFound`].
    async fn find(
        &self,
        browser: &Browser,
        job: &Job,
        account: Option<&str>,
        since: SystemTime,
    ) -> Result<Lookup, ActionError>;
}

const BUILT_IN: &[(&str, &str)] = &[
    ("x", include_str!("../../sites/x.toml")),
    ("sandbox", include_str!("../../sites/sandbox.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDefinition {
    pub name: String,
    pub base_url: String,
    pub max_chars: usize,
    #[serde(default)]
    pub default_account: String,
    pub session: SessionDef,
    pub post: ComposeDef,
    pub reply: ReplyDef,
    pub result: ResultDef,
    pub find: FindDef,
    /// What the site does to a text it publishes (default: drops trailing white space).
    #[serde(default)]
    pub text: TextDef,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDef {
    pub check_url: String,
    pub logged_in: String,
    pub login_walls: Vec<String>,
    /// The element whose `href` (or else text) names the logged-in account, e.g. the side bar's
    /// profile link. `None`: the definition does not say who is logged in.
    #[serde(default)]
    pub account: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeDef {
    pub url: String,
    pub composer: String,
    pub submit: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyDef {
    pub url: String,
    pub open: String,
    pub composer: String,
    pub submit: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultDef {
    pub response_url: String,
    pub id_path: String,
    pub post_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindDef {
    pub posts_url: String,
    pub replies_url: String,
    pub item: String,
    pub text: String,
    pub link: String,
    /// Inside an item, the element whose `datetime` attribute is when it was posted.
    #[serde(default = "default_time")]
    pub time: String,
    /// Items holding this element are neither matched nor taken as a sign of the timeline's
    /// age: a pinned post, a repost (x.com's `socialContext`).
    #[serde(default)]
    pub skip: Option<String>,
    /// How to reach older items; `None`: the first page only.
    #[serde(default)]
    pub more: Option<More>,
    /// An element the site shows only when a list holds everything there is (the end of a
    /// timeline, an empty profile, all of a post's replies).
    #[serde(default)]
    pub end: Option<String>,
    /// The most pages (or scroll steps) one lookup reads.
    #[serde(default = "default_max_pages")]
    pub max_pages: usize,
    /// Replaced by `end`; kept only to refuse old files with a pointer to the new key.
    #[serde(default)]
    empty_means_absent: Option<bool>,
}

/// How the site turns a typed text into the one it publishes and shows. The typed text, the
/// composer's contents and the posts read back are all compared in that form ([`text`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextDef {
    /// White space (spaces, tabs, newlines) the site drops from the ends of a text.
    #[serde(default)]
    pub trim: Trim,
    /// At most this many blank lines in a row; `None`: kept as typed.
    #[serde(default)]
    pub max_blank_lines: Option<usize>,
    /// Inside a shown post's text, the elements that show a link the site rewrote (x.com: t.co
    /// links with a shortened text); each stands for one typed link.
    #[serde(default)]
    pub links: Option<String>,
    /// How the site counts a text's length against `max_chars`: `"chars"` (default) or
    /// `"weighted"` (x.com's rule, see [`crate::length`]).
    #[serde(default)]
    pub count: crate::length::Count,
}

impl Default for TextDef {
    fn default() -> TextDef {
        TextDef {
            trim: Trim::End,
            max_blank_lines: None,
            links: None,
            count: crate::length::Count::Chars,
        }
    }
}

/// Which ends of a text the site trims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trim {
    None,
    #[default]
    End,
    Both,
}

/// How a lookup reaches older items.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum More {
    /// `more = { link = "SELECTOR" }`: the link whose `href` is the next older page.
    Link(String),
    /// `more = "scroll"`: scroll to the bottom; the page loads older items by itself.
    Scroll,
}

fn default_time() -> String {
    "time".into()
}

fn default_max_pages() -> usize {
    50
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(
        "--site / EXECUTOR_SITE {}: neither a built-in site (x, sandbox) nor a readable file", crate::quote::quoted(.0)
    )]
    Unknown(String),
    #[error("site file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// The most of a site file that is read: a definition is a few KiB.
pub const SITE_FILE_MAX_BYTES: u64 = 1024 * 1024;

impl SiteDefinition {
    /// The longest text the site takes, as it counts (`max_chars`, `[text] count`).
    pub fn text_limit(&self) -> crate::jobs::TextLimit {
        crate::jobs::TextLimit {
            max: self.max_chars,
            count: self.text.count,
        }
    }

    /// A built-in name, or a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<SiteDefinition, SiteError> {
        if let Some((_, text)) = BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
            return Self::parse(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        // The operator's own file, wherever a link sends it; but a regular file of a sane size
        // (a FIFO or /dev/zero would hang the command or fill its memory).
        let text =
            crate::files::read_text_limited(path, SITE_FILE_MAX_BYTES, crate::files::Links::Follow)
                .map_err(|err| match err.kind() {
                    std::io::ErrorKind::NotFound => SiteError::Unknown(name_or_path.to_string()),
                    _ => SiteError::Invalid {
                        path: path.display().to_string(),
                        reason: err.to_string(),
                    },
                })?;
        Self::parse(&path.display().to_string(), &text)
    }

    fn parse(source: &str, text: &str) -> Result<SiteDefinition, SiteError> {
        let invalid = |reason: String| SiteError::Invalid {
            path: source.to_string(),
            reason,
        };
        // The parser's message may quote the file (a value of the wrong type): bounded, one line.
        let def: SiteDefinition =
            toml::from_str(text).map_err(|e| invalid(crate::settings::toml_error(text, &e)))?;
        if def.max_chars == 0 {
            return Err(invalid("max_chars must be at least 1".into()));
        }
        if def.post.submit.is_empty() || def.reply.submit.is_empty() {
            return Err(invalid(
                "post.submit and reply.submit need at least one selector".into(),
            ));
        }
        let blank = |value: Option<&String>| value.is_some_and(|v| v.trim().is_empty());
        if blank(def.session.account.as_ref()) {
            return Err(invalid(
                "session.account is empty: give the CSS selector of the element whose href or text names the logged-in account, or leave the key out".into(),
            ));
        }
        let find = &def.find;
        let more_link = match &find.more {
            Some(More::Link(selector)) => Some(selector),
            _ => None,
        };
        for (key, value) in [
            ("find.time", Some(&find.time)),
            ("find.skip", find.skip.as_ref()),
            ("find.end", find.end.as_ref()),
            ("find.more.link", more_link),
            ("text.links", def.text.links.as_ref()),
        ] {
            if blank(value) {
                return Err(invalid(format!(
                    "{key} is empty: give a CSS selector, or leave the key out"
                )));
            }
        }
        // Every selector is checked now: a broken one would otherwise burn every job's attempts.
        let mut selectors: Vec<(String, &String)> = vec![
            ("session.logged_in".into(), &def.session.logged_in),
            ("post.composer".into(), &def.post.composer),
            ("reply.open".into(), &def.reply.open),
            ("reply.composer".into(), &def.reply.composer),
            ("find.item".into(), &find.item),
            ("find.text".into(), &find.text),
            ("find.link".into(), &find.link),
            ("find.time".into(), &find.time),
        ];
        for (key, value) in [
            ("session.account", def.session.account.as_ref()),
            ("find.skip", find.skip.as_ref()),
            ("find.end", find.end.as_ref()),
            ("find.more.link", more_link),
            ("text.links", def.text.links.as_ref()),
        ] {
            if let Some(value) = value {
                selectors.push((key.into(), value));
            }
        }
        for (index, value) in def.post.submit.iter().enumerate() {
            selectors.push((format!("post.submit[{index}]"), value));
        }
        for (index, value) in def.reply.submit.iter().enumerate() {
            selectors.push((format!("reply.submit[{index}]"), value));
        }
        for (key, value) in selectors {
            if let Err(reason) = check_selector(value) {
                return Err(invalid(format!(
                    "{key} {} is not a CSS selector: {reason}",
                    crate::quote::quoted(value)
                )));
            }
        }
        if find.max_pages == 0 {
            return Err(invalid("find.max_pages must be at least 1".into()));
        }
        if find.empty_means_absent.is_some() {
            return Err(invalid(
                "find.empty_means_absent is replaced by find.end, the element the site shows when a list is complete (docs/extending.md)".into(),
            ));
        }
        if !def.base_url.starts_with("http://") && !def.base_url.starts_with("https://") {
            return Err(invalid(format!(
                "base_url {:?} is not an http(s) URL",
                def.base_url
            )));
        }
        Ok(def)
    }
}

/// A light syntax check of a CSS selector, for the mistakes a hand-written file makes: empty,
/// unbalanced brackets, parentheses or quotes, a combinator or comma with nothing on one side.
/// (The browser is the judge of the rest; this catches what would fail every job.)
fn check_selector(selector: &str) -> Result<(), &'static str> {
    let selector = selector.trim();
    if selector.is_empty() {
        return Err("it is empty");
    }
    let mut closers = Vec::new();
    let mut quote = None;
    let mut escaped = false;
    for c in selector.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, c) {
            (_, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => closers.push(']'),
            (None, '(') => closers.push(')'),
            (None, ']' | ')') if closers.pop() != Some(c) => {
                return Err("its brackets or parentheses do not match");
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed");
    }
    if !closers.is_empty() {
        return Err("a bracket or parenthesis is not closed");
    }
    for part in selector.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err("a comma has nothing on one side");
        }
        let ends = [part.chars().next(), part.chars().last()];
        if ends.iter().any(|c| matches!(c, Some('>' | '+' | '~'))) {
            return Err("a combinator (>, +, ~) has nothing on one side");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_selectors_are_refused_at_load_naming_the_key() {
        for good in [
            "[data-testid=\"tweetTextarea_0\"]",
            "a[href^=\"https://t.co/\"]",
            "[role=\"dialog\"] [data-testid=\"tweetButton\"]",
            "div > a, span ~ b",
            ":is(a, b) [x=\",\"]",
            "a:has(> b)",
            "a\\[b",
        ] {
            assert_eq!(check_selector(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "  ",
            "[data-testid=\"x\"",
            "a)",
            "[x='y]",
            "div >",
            "> div",
            "a,,b",
            "a,",
            "(a]",
        ] {
            assert!(check_selector(bad).is_err(), "{bad:?}");
        }
        let x = include_str!("../../sites/x.toml");
        let broken = x.replace(
            "composer = '[data-testid=\"tweetTextarea_0\"]'",
            "composer = '[data-testid=\"tweetTextarea_0\"'",
        );
        assert_ne!(broken, x);
        let err = SiteDefinition::parse("broken.toml", &broken)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("post.composer"), "{err}");
        assert!(err.contains("is not a CSS selector"), "{err}");
        let err = SiteDefinition::parse("bad.toml", "name = \"x\"\nmax_chars = [")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("line 2, column"), "{err}");
    }

    #[test]
    fn built_ins_load_and_carry_the_spec_selectors() {
        let x = SiteDefinition::load("x").expect("x");
        assert_eq!(x.max_chars, 280);
        assert_eq!(x.post.composer, "[data-testid=\"tweetTextarea_0\"]");
        assert!(x
            .post
            .submit
            .contains(&"[data-testid=\"tweetButtonInline\"]".to_string()));
        assert!(x
            .post
            .submit
            .contains(&"[data-testid=\"tweetButton\"]".to_string()));
        assert_eq!(
            x.result.id_path,
            "data.create_tweet.tweet_results.result.rest_id"
        );
        for wall in ["/i/flow/login", "/account/access", "/i/flow/challenge"] {
            assert!(x.session.login_walls.contains(&wall.to_string()));
        }
        assert!(SiteDefinition::load("sandbox").is_ok());
    }

    #[test]
    fn built_ins_say_who_is_logged_in_and_how_to_page_back() {
        for name in ["x", "sandbox"] {
            let def = SiteDefinition::load(name).expect("loads");
            assert_eq!(
                def.session.account.as_deref(),
                Some("[data-testid=\"AppTabBar_Profile_Link\"]"),
                "{name}"
            );
            assert_eq!(def.find.max_pages, 50);
        }
        assert_eq!(
            SiteDefinition::load("x").expect("x").find.more,
            Some(More::Scroll)
        );
        assert_eq!(
            SiteDefinition::load("sandbox").expect("sandbox").find.more,
            Some(More::Link("a[data-testid=\"ShowMoreCursor\"]".into()))
        );
    }

    #[test]
    fn empty_selectors_and_the_old_key_are_one_line_load_errors() {
        let x = include_str!("../../sites/x.toml");
        let cases = [
            (
                x.replace(
                    "account = '[data-testid=\"AppTabBar_Profile_Link\"]'",
                    "account = ' '",
                ),
                "session.account is empty",
            ),
            (
                x.replace("more = \"scroll\"", "more = { link = '' }"),
                "find.more.link is empty",
            ),
            (
                x.replace("more = \"scroll\"", "more = \"sideways\""),
                "unknown variant",
            ),
            (
                x.replace("max_pages = 50", "max_pages = 0"),
                "find.max_pages must be at least 1",
            ),
            (
                x.replace(
                    "max_pages = 50",
                    "max_pages = 50\nempty_means_absent = true",
                ),
                "replaced by find.end",
            ),
        ];
        for (text, expected) in cases {
            let err = SiteDefinition::parse("my.toml", &text)
                .expect_err(expected)
                .to_string();
            assert!(err.starts_with("site file my.toml: "), "{err}");
            assert!(err.contains(expected), "{err}");
            assert!(!err.trim_end().contains('\n'), "one line: {err}");
        }
        let without = x.replace("account = '[data-testid=\"AppTabBar_Profile_Link\"]'", "");
        let def = SiteDefinition::parse("my.toml", &without).expect("the key is optional");
        assert_eq!(def.session.account, None);
    }

    #[test]
    fn unknown_names_and_bad_files_are_clear_errors() {
        assert!(matches!(
            SiteDefinition::load("myspace"),
            Err(SiteError::Unknown(_))
        ));
        let dir = std::env::temp_dir().join(format!("executor-site-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "name = \"bad\"\n").expect("write");
        let err = SiteDefinition::load(file.to_str().expect("utf8")).expect_err("invalid");
        assert!(err.to_string().contains("bad.toml"), "{err}");
    }
}
