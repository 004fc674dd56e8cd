//! The engine: drives the single page through a [`SiteDefinition`].
//!
//! - prepare: open the composer (home, or the target's reply dialog), type the text through CDP
//!   input (`Input.insertText`), then read it back as the editor holds it and refuse to go on if
//!   it differs in what the site would publish ([`super::text`]) — all before the irreversible
//!   step, so any failure here is safe to retry;
//! - publish: start watching the page's network, click the submit button with real mouse events,
//!   and read the new post's id from the site's own create-post answer; HTTP 429 is reported as a
//!   rate limit with the site's reset time; no answer in time is an unknown outcome;
//! - find: does the post exist? The account's timeline is read newest first and paged back (the
//!   site's "show more" link, or scrolling, as the definition says) until the post is found, or an
//!   item older than the attempt proves it absent, or the site says the list is complete. A
//!   timeline that ends early, a page that does not load, or the page bound reached is
//!   [`Lookup::Incomplete`]: the job stays uncertain rather than being published again blind.
//!   Replies are looked up among the target's replies, which are in no promised order: only the
//!   site's "complete" marker proves one absent. Texts are compared as the site shows them
//!   (trimmed, links rewritten), never as raw characters;
//! - session: is the browser logged in, or on a login wall / challenge, and as whom?
//!
//! Values reach page scripts only as call arguments, never spliced into source, so quotes, emoji,
//! newlines, `</script>` and right-to-left text are published exactly as written.

use super::{text, More, SiteDefinition};
use crate::browser::{Browser, BrowserError};
use crate::clock::{format_ts, parse_ts};
use crate::jobs::{Job, Kind};
use crate::sites::{ActionError, Lookup, Published, Session, Site};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

const NAVIGATE: Duration = Duration::from_secs(30);
const APPEAR: Duration = Duration::from_secs(20);
const CALL: Duration = Duration::from_secs(10);
/// How long the create-post answer may take before the outcome is called unknown.
pub const ANSWER: Duration = Duration::from_secs(20);
/// How long a list (a timeline page, older items after a scroll) may take to show.
const LIST: Duration = Duration::from_secs(10);
/// How long one lookup may search in all, well inside a tick's runtime cap; past it the answer is
/// `Incomplete` and the lookup is tried again on a later tick.
const LOOKUP_BUDGET: Duration = Duration::from_secs(120);

pub struct SiteEngine {
    def: SiteDefinition,
    base: String,
    answer: Duration,
    /// The page the last session check opened and found logged in, with the URL it landed on:
    /// an action that opens the same page next uses it as it is (see [`SiteEngine::open`]).
    checked: std::sync::Mutex<Option<(String, String)>>,
}

fn failed(context: &str) -> impl Fn(BrowserError) -> ActionError + '_ {
    move |err| ActionError::Failed(format!("{context}: {err}"))
}

/// `function (…) { const read = <text.js>; … }`: a page script that can read texts as
/// [`text::READ_TEXT_JS`] does.
fn with_reader(body: &str) -> String {
    body.replace("READ_TEXT", text::READ_TEXT_JS)
}

impl SiteEngine {
    /// `site_url` (`--site-url`) replaces the definition's base URL.
    pub fn new(def: SiteDefinition, site_url: Option<&str>) -> SiteEngine {
        let base = site_url
            .unwrap_or(&def.base_url)
            .trim_end_matches('/')
            .to_string();
        SiteEngine {
            def,
            base,
            answer: ANSWER,
            checked: std::sync::Mutex::new(None),
        }
    }

    /// How long to wait for the create-post answer before the outcome is unknown.
    pub fn with_answer_timeout(mut self, answer: Duration) -> SiteEngine {
        self.answer = answer;
        self
    }

    pub fn definition(&self) -> &SiteDefinition {
        &self.def
    }

    fn url(&self, template: &str, job: Option<&Job>, id: Option<&str>) -> String {
        let account = job
            .map(|j| j.account.as_str())
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.def.default_account);
        let path = template
            .replace(
                "{target}",
                job.and_then(|j| j.reply_to.as_deref()).unwrap_or_default(),
            )
            .replace("{account}", account)
            .replace("{id}", id.unwrap_or_default());
        if path.starts_with("http://") || path.starts_with("https://") {
            path
        } else {
            format!("{}{}", self.base, path)
        }
    }

    async fn on_login_wall(&self, browser: &Browser) -> bool {
        match browser.current_url().await {
            Ok(url) => self.is_login_wall(&url),
            Err(_) => false,
        }
    }

    /// Who is logged in, on the page the session check opened.
    async fn read_session(&self, browser: &Browser) -> Result<Session, ActionError> {
        // Usually all there once the page has loaded: one call reads it. Else wait for each.
        let session = &self.def.session;
        let at_once = browser
            .call_function(
                "function (loggedIn, account) { if (!this.querySelector(loggedIn)) return null; \
                 if (account === null) return { named: null }; const el = this.querySelector(account); \
                 if (!el) return null; return { named: el.getAttribute('href') || el.textContent }; }",
                &[json!(session.logged_in), json!(session.account)],
                CALL,
            )
            .await;
        let named = match at_once {
            Ok(Value::Object(found)) => found.get("named").cloned().unwrap_or(Value::Null),
            _ => self.wait_for_session(browser).await?,
        };
        let Some(selector) = &session.account else {
            return Ok(Session::default());
        };
        let named = named.as_str().unwrap_or_default();
        match handle_in(named) {
            Some(handle) => Ok(Session {
                account: Some(handle),
            }),
            None => Err(ActionError::Failed(format!(
                "session.account {selector} names no account ({named:?})"
            ))),
        }
    }

    /// The session's markers, waited for one by one: what names the logged-in account (null
    /// when the definition does not say where to read it).
    async fn wait_for_session(&self, browser: &Browser) -> Result<Value, ActionError> {
        match browser.wait_for(&self.def.session.logged_in, APPEAR).await {
            Ok(()) => {}
            Err(_) if self.on_login_wall(browser).await => return Err(ActionError::AuthRequired),
            Err(err) => return Err(ActionError::Failed(format!("checking the session: {err}"))),
        }
        let Some(selector) = &self.def.session.account else {
            return Ok(Value::Null);
        };
        browser.wait_for(selector, APPEAR).await.map_err(|_| {
            ActionError::Failed(format!(
                "the page does not say who is logged in: nothing matches session.account {selector}"
            ))
        })?;
        browser
            .call_function(
                "function (s) { const el = this.querySelector(s); if (!el) return null; \
                 return el.getAttribute('href') || el.textContent; }",
                &[json!(selector)],
                CALL,
            )
            .await
            .map_err(failed("reading who is logged in"))
    }

    fn is_login_wall(&self, url: &str) -> bool {
        self.def
            .session
            .login_walls
            .iter()
            .any(|wall| url.contains(wall))
    }

    /// Navigates; a login wall there (the URL the page is on once loaded) is `AuthRequired`.
    ///
    /// The page a session check has just opened and found logged in (x.com's `/home` is both
    /// the check and the composer) is not loaded a second time: used once, and only while the
    /// page is still where the check left it.
    async fn open(&self, browser: &Browser, url: &str) -> Result<(), ActionError> {
        let checked = self.checked.lock().ok().and_then(|mut c| c.take());
        if let Some((opened, landed)) = checked {
            if opened == url && browser.current_url().await.is_ok_and(|now| now == landed) {
                return Ok(());
            }
        }
        self.navigate(browser, url).await.map(|_| ())
    }

    /// Navigates (always); the URL the page landed on, or `AuthRequired` at a login wall.
    async fn navigate(&self, browser: &Browser, url: &str) -> Result<String, ActionError> {
        if let Ok(mut checked) = self.checked.lock() {
            *checked = None;
        }
        let at = browser
            .open_url(url, NAVIGATE)
            .await
            .map_err(failed("opening the page"))?;
        if self.is_login_wall(&at) {
            return Err(ActionError::AuthRequired);
        }
        Ok(at)
    }

    /// Focuses and clears the composer, types the text, and checks what was typed.
    async fn compose(
        &self,
        browser: &Browser,
        composer: &str,
        text: &str,
    ) -> Result<(), ActionError> {
        // Focused and cleared in one call when it is there already; else waited for first.
        let focus = "function (s) { const el = this.querySelector(s); if (!el) return false; el.focus(); \
                     if (el.isContentEditable) el.textContent = ''; else el.value = ''; return true; }";
        let focused = browser
            .call_function(focus, &[json!(composer)], CALL)
            .await
            .map_err(failed("focusing the composer"))?;
        if focused != Value::Bool(true) {
            browser
                .wait_for(composer, APPEAR)
                .await
                .map_err(failed("finding the composer"))?;
            browser
                .call_function(focus, &[json!(composer)], CALL)
                .await
                .map_err(failed("focusing the composer"))?;
        }
        browser
            .insert_text(text, CALL)
            .await
            .map_err(failed("typing"))?;
        // Read back as the site's editor holds it (each paragraph a line), and compare what the
        // site would publish: not `innerText`, which counts an empty paragraph twice.
        let held = browser
            .call_function(
                &with_reader(
                    "function (s) { const el = this.querySelector(s); if (!el.isContentEditable) return el.value; \
                     const read = READ_TEXT; return read.call(el, null); }",
                ),
                &[json!(composer)],
                CALL,
            )
            .await
            .map_err(failed("reading the composer"))?;
        let held = text::published_form(held.as_str().unwrap_or_default(), &self.def.text);
        let typed = text::published_form(text, &self.def.text);
        if held != typed {
            return Err(ActionError::Failed(format!(
                "the composer holds {} characters, not the {} typed (as the site publishes them); not publishing",
                held.chars().count(),
                typed.chars().count()
            )));
        }
        Ok(())
    }

    /// Where to click the first submit button of `candidates` that exists on the page (brought
    /// into view).
    async fn submit_button(
        &self,
        browser: &Browser,
        candidates: &[String],
    ) -> Result<(f64, f64), ActionError> {
        let point = browser
            .call_function(
                "function (list) { const el = list.map(s => this.querySelector(s)).find(e => !!e); \
                 if (!el) return null; el.scrollIntoView({ block: 'center' }); \
                 const r = el.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }",
                &[json!(candidates)],
                CALL,
            )
            .await
            .map_err(failed("finding the submit button"))?;
        match (point[0].as_f64(), point[1].as_f64()) {
            (Some(x), Some(y)) => Ok((x, y)),
            _ => Err(ActionError::Failed("no submit button on the page".into())),
        }
    }

    /// Waits for the site's create-post answer and reads the new id from it.
    async fn await_answer(
        &self,
        browser: &Browser,
        mut events: crate::browser::cdp::Events,
        session: &str,
        job: &Job,
    ) -> Result<Published, ActionError> {
        let end = Instant::now() + self.answer;
        let mut request: Option<(String, i64, Value)> = None;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(left, events.recv()).await {
                Err(_) => {
                    return Err(ActionError::Failed(format!(
                        "no answer from the site within {} s",
                        self.answer.as_secs()
                    )))
                }
                Ok(Err(crate::browser::cdp::EventsEnded::Lagged(_))) => continue,
                Ok(Err(_)) => {
                    return Err(ActionError::Failed(
                        "the browser connection was lost".into(),
                    ))
                }
                Ok(Ok(event)) => event,
            };
            if event.session_id.as_deref() != Some(session) {
                continue;
            }
            match event.method.as_str() {
                "Network.responseReceived" if request.is_none() => {
                    let url = event
                        .params
                        .pointer("/response/url")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if url.contains(&self.def.result.response_url) {
                        let id = event.params["requestId"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let status = event
                            .params
                            .pointer("/response/status")
                            .and_then(Value::as_i64)
                            .unwrap_or(0);
                        let headers = event
                            .params
                            .pointer("/response/headers")
                            .cloned()
                            .unwrap_or(Value::Null);
                        if status == 429 {
                            return Err(ActionError::RateLimited {
                                reset: rate_limit_reset(&headers),
                            });
                        }
                        request = Some((id, status, headers));
                    }
                }
                "Network.loadingFailed"
                    if request
                        .as_ref()
                        .is_some_and(|(id, _, _)| event.params["requestId"] == *id) =>
                {
                    return Err(ActionError::Failed(
                        "the create-post request failed in the browser".into(),
                    ));
                }
                "Network.loadingFinished" => {
                    let Some((id, status, _)) = &request else {
                        continue;
                    };
                    if event.params["requestId"] != *id {
                        continue;
                    }
                    if !(200..300).contains(status) {
                        return Err(ActionError::Failed(format!(
                            "the site answered HTTP {status}"
                        )));
                    }
                    let body = browser
                        .page_call("Network.getResponseBody", json!({ "requestId": id }), CALL)
                        .await
                        .map_err(failed("reading the answer"))?;
                    return self.published_from(&body, job);
                }
                _ => {}
            }
        }
    }

    fn published_from(&self, body: &Value, _job: &Job) -> Result<Published, ActionError> {
        let text = body["body"].as_str().unwrap_or_default();
        let text = if body["base64Encoded"].as_bool() == Some(true) {
            return Err(ActionError::Failed(
                "the create-post answer is not text".into(),
            ));
        } else {
            text
        };
        let answer: Value = serde_json::from_str(text)
            .map_err(|_| ActionError::Failed("the create-post answer is not JSON".into()))?;
        let id = self
            .def
            .result
            .id_path
            .split('.')
            .try_fold(&answer, |value, key| value.get(key))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
            .ok_or_else(|| {
                ActionError::Failed(format!(
                    "no id at {} in the answer",
                    self.def.result.id_path
                ))
            })?;
        let url = self.url(&self.def.result.post_url, None, Some(&id));
        Ok(Published {
            post_id: Some(id),
            url: Some(url),
        })
    }
}

/// `x-rate-limit-reset` (Unix seconds) → when the lane may resume.
fn rate_limit_reset(headers: &Value) -> Option<SystemTime> {
    let object = headers.as_object()?;
    let value = object
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-rate-limit-reset"))?
        .1
        .as_str()?;
    let seconds: u64 = value.trim().parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

#[async_trait::async_trait]
impl Site for SiteEngine {
    async fn session(&self, browser: &Browser) -> Result<Session, ActionError> {
        let check_url = self.url(&self.def.session.check_url, None, None);
        let landed = self.navigate(browser, &check_url).await?;
        let session = self.read_session(browser).await?;
        if let Ok(mut checked) = self.checked.lock() {
            *checked = Some((check_url, landed));
        }
        Ok(session)
    }

    async fn prepare(&self, browser: &Browser, job: &Job) -> Result<(), ActionError> {
        // A text longer than the site takes is refused before the page is touched. Enqueueing
        // checks it too, but a producer may have given the SQL function a larger limit than this
        // site's (docs/producers.md): typed, the text would leave the site's button disabled,
        // and a click on it would make the outcome unknown instead of failing the job.
        self.def
            .text_limit()
            .check(&job.text)
            .map_err(|refused| ActionError::Failed(format!("not published: {refused}")))?;
        match job.kind {
            Kind::Post => {
                self.open(browser, &self.url(&self.def.post.url, Some(job), None))
                    .await?;
                self.compose(browser, &self.def.post.composer, &job.text)
                    .await
            }
            Kind::Reply => {
                self.open(browser, &self.url(&self.def.reply.url, Some(job), None))
                    .await?;
                browser
                    .wait_for(&self.def.reply.open, APPEAR)
                    .await
                    .map_err(failed("finding the reply button"))?;
                browser
                    .click(&self.def.reply.open, CALL)
                    .await
                    .map_err(failed("opening the reply"))?;
                self.compose(browser, &self.def.reply.composer, &job.text)
                    .await
            }
        }
    }

    async fn publish(&self, browser: &Browser, job: &Job) -> Result<Published, ActionError> {
        let candidates = match job.kind {
            Kind::Post => &self.def.post.submit,
            Kind::Reply => &self.def.reply.submit,
        };
        // Watch the network before the click so the answer cannot be missed.
        let (events, session) = browser.page_events().map_err(failed("watching the page"))?;
        browser
            .enable("Network", CALL)
            .await
            .map_err(failed("watching the network"))?;
        let (x, y) = self.submit_button(browser, candidates).await?;
        browser
            .click_at(x, y, CALL)
            .await
            .map_err(failed("clicking"))?;
        self.await_answer(browser, events, &session, job).await
    }

    async fn find(
        &self,
        browser: &Browser,
        job: &Job,
        account: Option<&str>,
        since: SystemTime,
    ) -> Result<Lookup, ActionError> {
        let account = [
            account,
            Some(job.account.as_str()),
            Some(&self.def.default_account),
        ]
        .into_iter()
        .flatten()
        .map(|a| a.trim().trim_start_matches('@'))
        .find(|a| !a.is_empty());
        let (template, ordered) = match job.kind {
            Kind::Post => (&self.def.find.posts_url, true),
            Kind::Reply => (&self.def.find.replies_url, false),
        };
        if template.contains("{account}") && account.is_none() {
            return Ok(Lookup::Incomplete {
                reason: "no account to look the post up under: the session does not say who is logged in, and neither the job nor the site definition names one".into(),
            });
        }
        let url = self.url(
            &template.replace("{account}", account.unwrap_or_default()),
            Some(job),
            None,
        );
        let mut search = Search {
            typed: job.text.clone(),
            rules: self.def.text.clone(),
            target: match job.kind {
                Kind::Post => None,
                Kind::Reply => job.reply_to.clone(),
            },
            account: account.map(str::to_string),
            since,
            ordered,
            seen: HashSet::new(),
            items: 0,
            oldest: None,
            passed: false,
            collected: None,
        };
        self.search(browser, &url, &mut search).await
    }
}

/// What an account's timeline shows, back to a point in time (`executor verify --on-site`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The account's own posts newer than the horizon, newest first as the site lists them.
    pub posts: Vec<SitePost>,
    /// `None`: the list reached back past the horizon (or the site said it is complete), so a
    /// post missing from it is not on the site; otherwise why it could not.
    pub incomplete: Option<String>,
}

/// One post as a timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePost {
    pub id: Option<String>,
    /// The text as the site shows it.
    pub text: String,
    pub author: Option<String>,
    pub time: Option<SystemTime>,
}

impl SiteEngine {
    /// Every post of `account` its timeline shows back to `since`, paging back as the definition
    /// says (the same reading as a lookup, collecting instead of matching).
    pub async fn timeline(
        &self,
        browser: &Browser,
        account: &str,
        since: SystemTime,
    ) -> Result<Timeline, ActionError> {
        let account = account.trim().trim_start_matches('@');
        let url = self.url(
            &self.def.find.posts_url.replace("{account}", account),
            None,
            None,
        );
        let mut search = Search {
            typed: String::new(),
            rules: self.def.text.clone(),
            target: None,
            account: Some(account.to_string()),
            since,
            ordered: true,
            seen: HashSet::new(),
            items: 0,
            oldest: None,
            passed: false,
            collected: Some(Vec::new()),
        };
        let lookup = self.search(browser, &url, &mut search).await?;
        let posts = search
            .collected
            .unwrap_or_default()
            .into_iter()
            .map(|item| SitePost {
                id: item.href.as_deref().and_then(status_id_of),
                author: item.href.as_deref().and_then(author_of),
                time: item.time.as_deref().and_then(parse_ts),
                text: item.text,
            })
            .collect();
        Ok(Timeline {
            posts,
            incomplete: match lookup {
                Lookup::Incomplete { reason } => Some(reason),
                _ => None,
            },
        })
    }

    /// Compares a job's text with a text as the site shows it, by the definition's rules.
    pub fn shows(&self, shown: &str, typed: &str) -> bool {
        text::shows(shown, typed, &self.def.text)
    }
}

/// What one lookup has seen so far.
struct Search {
    /// The job's text, compared with what items show in the site's published form.
    typed: String,
    rules: super::TextDef,
    /// For a reply: its target, which is on the same page and never the match.
    target: Option<String>,
    /// Whose post it is: items by others (reposts, other people's replies) do not count.
    account: Option<String>,
    /// When the attempt began (minus a margin): a match must be newer, and an older item of an
    /// ordered list proves that nothing newer is further down.
    since: SystemTime,
    /// The list is newest first (a timeline), so an older item ends the search.
    ordered: bool,
    /// Items already judged (a scrolled page shows some of them again).
    seen: HashSet<String>,
    items: usize,
    oldest: Option<SystemTime>,
    /// An item older than `since` was seen in an ordered list.
    passed: bool,
    /// Reading a whole timeline: every item of the account newer than `since` is kept here,
    /// and nothing is a match.
    collected: Option<Vec<Item>>,
}

/// One item as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Item {
    text: String,
    href: Option<String>,
    time: Option<String>,
    skip: bool,
}

/// What a list page shows now.
#[derive(Debug, Default)]
struct View {
    items: Vec<Item>,
    /// The next older page's URL (the definition's `more` link), absolute.
    more: Option<String>,
    /// The site says the list is complete.
    end: bool,
}

impl Search {
    /// Judges the items not seen before; returns the match, if one is among them.
    fn judge(&mut self, items: &[Item]) -> Option<Item> {
        for item in items {
            let key = item.href.clone().unwrap_or_else(|| {
                format!(
                    "{}\u{0}{}",
                    item.time.as_deref().unwrap_or_default(),
                    item.text
                )
            });
            // A skipped item is remembered too, so that seeing it again is not news.
            if !self.seen.insert(key) || item.skip {
                continue;
            }
            let id = item.href.as_deref().and_then(status_id_of);
            if id.is_some() && id == self.target {
                continue;
            }
            let by_account = match (item.href.as_deref().and_then(author_of), &self.account) {
                (Some(author), Some(account)) => author.eq_ignore_ascii_case(account),
                _ => true,
            };
            if !by_account {
                continue;
            }
            self.items += 1;
            let time = item.time.as_deref().and_then(parse_ts);
            if let Some(time) = time {
                self.oldest = Some(self.oldest.map_or(time, |oldest| oldest.min(time)));
            }
            let before = time.is_some_and(|time| time < self.since);
            if let (false, Some(collected)) = (before, self.collected.as_mut()) {
                collected.push(item.clone());
            } else if !before && text::shows(&item.text, &self.typed, &self.rules) {
                return Some(item.clone());
            }
            if before && self.ordered {
                self.passed = true;
            }
        }
        None
    }

    /// Why the search cannot conclude, for the operator.
    fn incomplete(&self, pages: usize, why: &str) -> Lookup {
        let oldest = self
            .oldest
            .map(|t| format!(", the oldest from {}", format_ts(t)))
            .unwrap_or_default();
        Lookup::Incomplete {
            reason: format!(
                "{why} after {pages} page(s) ({} item(s){oldest}), before reaching the attempt's start {}: the post's absence is not proven",
                self.items,
                format_ts(self.since)
            ),
        }
    }
}

impl SiteEngine {
    /// Reads the list at `url`, paging back as the definition says, until the post is found or
    /// proven absent, or the search can go no further.
    async fn search(
        &self,
        browser: &Browser,
        url: &str,
        search: &mut Search,
    ) -> Result<Lookup, ActionError> {
        let find = &self.def.find;
        let started = Instant::now();
        self.open(browser, url).await?;
        if !self.list_shown(browser).await? {
            return Ok(search.incomplete(
                0,
                &format!("{url} showed no posts within {} s", LIST.as_secs()),
            ));
        }
        let mut pages = 1;
        loop {
            let view = self.read_view(browser).await?;
            if let Some(item) = search.judge(&view.items) {
                let id = item.href.as_deref().and_then(status_id_of);
                return Ok(Lookup::Found(Published {
                    url: id
                        .as_deref()
                        .map(|id| self.url(&self.def.result.post_url, None, Some(id))),
                    post_id: id,
                }));
            }
            if search.passed || view.end {
                return Ok(Lookup::NotFound);
            }
            if pages >= find.max_pages {
                return Ok(search.incomplete(
                    pages,
                    &format!("stopped at find.max_pages = {}", find.max_pages),
                ));
            }
            if started.elapsed() >= LOOKUP_BUDGET {
                return Ok(search.incomplete(
                    pages,
                    &format!("stopped after {} s", LOOKUP_BUDGET.as_secs()),
                ));
            }
            match &find.more {
                None => {
                    return Ok(search
                        .incomplete(pages, "the definition reads one page only (no find.more)"));
                }
                Some(More::Link(_)) => {
                    let Some(next) = view.more else {
                        return Ok(search.incomplete(
                            pages,
                            "the site offers no older page and does not say the list is complete",
                        ));
                    };
                    self.open(browser, &next).await?;
                    if !self.list_shown(browser).await? {
                        return Ok(search.incomplete(
                            pages,
                            &format!(
                                "the next page {next} showed nothing within {} s",
                                LIST.as_secs()
                            ),
                        ));
                    }
                }
                Some(More::Scroll) => {
                    if !self.scroll_for_more(browser, search).await? {
                        return Ok(search.incomplete(
                            pages,
                            &format!("scrolling showed nothing older within {} s", LIST.as_secs()),
                        ));
                    }
                }
            }
            pages += 1;
        }
    }

    /// Waits until the page shows an item or says the list is complete; false at the deadline.
    async fn list_shown(&self, browser: &Browser) -> Result<bool, ActionError> {
        let find = &self.def.find;
        let selector = match &find.end {
            Some(end) => format!("{}, {end}", find.item),
            None => find.item.clone(),
        };
        match browser.wait_for(&selector, LIST).await {
            Ok(()) => Ok(true),
            Err(BrowserError::NoPage(_)) => Ok(false),
            Err(err) => Err(ActionError::Failed(format!("reading the posts: {err}"))),
        }
    }

    /// Everything the list page shows now, in one script run (the page cannot change midway).
    async fn read_view(&self, browser: &Browser) -> Result<View, ActionError> {
        let find = &self.def.find;
        let more = match &find.more {
            Some(More::Link(selector)) => Some(selector.as_str()),
            _ => None,
        };
        let view = browser
            .call_function(
                &with_reader(
                "function (item, text, link, time, skip, more, end, links) { const read = READ_TEXT; \
                 const items = Array.from(this.querySelectorAll(item)).map(a => { \
                   const t = a.querySelector(text); const l = a.querySelector(link); const w = a.querySelector(time); \
                   return { text: t ? read.call(t, links) : '', href: l ? l.getAttribute('href') : null, \
                            time: w ? w.getAttribute('datetime') : null, skip: !!(skip && a.querySelector(skip)) }; }); \
                 const m = more ? this.querySelector(more) : null; const href = m ? m.getAttribute('href') : null; \
                 return { items: items, more: href ? new URL(href, location.href).href : null, \
                          end: !!(end && this.querySelector(end)) }; }",
                ),
                &[
                    json!(find.item),
                    json!(find.text),
                    json!(find.link),
                    json!(find.time),
                    json!(find.skip),
                    json!(more),
                    json!(find.end),
                    json!(self.def.text.links),
                ],
                CALL,
            )
            .await
            .map_err(failed("reading the posts"))?;
        Ok(view_from(&view))
    }

    /// Scrolls to the bottom and waits until an item not seen before appears, or the site says
    /// the list is complete; false at the deadline.
    async fn scroll_for_more(
        &self,
        browser: &Browser,
        search: &Search,
    ) -> Result<bool, ActionError> {
        let find = &self.def.find;
        browser
            .call_function(
                "function () { window.scrollTo(0, document.documentElement.scrollHeight); \
                 window.dispatchEvent(new Event('scroll')); return true; }",
                &[],
                CALL,
            )
            .await
            .map_err(failed("scrolling"))?;
        let seen: Vec<&String> = search.seen.iter().collect();
        let end = Instant::now() + LIST;
        loop {
            let news = browser
                .call_function(
                    "function (item, link, end, seen) { if (end && this.querySelector(end)) return true; \
                     const known = new Set(seen); \
                     return Array.from(this.querySelectorAll(item)).some(a => { \
                       const l = a.querySelector(link); return l && !known.has(l.getAttribute('href')); }); }",
                    &[json!(find.item), json!(find.link), json!(find.end), json!(seen)],
                    CALL,
                )
                .await
                .map_err(failed("waiting for older posts"))?;
            if news.as_bool() == Some(true) {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The page script's answer as a [`View`]; anything missing or malformed reads as absent.
fn view_from(value: &Value) -> View {
    let text = |v: &Value| v.as_str().map(str::to_string);
    View {
        items: value["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|item| Item {
                text: text(&item["text"]).unwrap_or_default(),
                href: text(&item["href"]),
                time: text(&item["time"]),
                skip: item["skip"].as_bool().unwrap_or(false),
            })
            .collect(),
        more: text(&value["more"]),
        end: value["end"].as_bool().unwrap_or(false),
    }
}

/// The path of an absolute URL (`https://x.com/a` → `/a`); anything else as it is.
fn url_path(href: &str) -> &str {
    match href.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
        None => href,
    }
}

/// The handle in what names the logged-in account: `/alice`, `https://x.com/alice`, `@alice`.
fn handle_in(named: &str) -> Option<String> {
    let handle = url_path(named.trim())
        .trim_start_matches('/')
        .trim_start_matches('@')
        .split(['/', '?', '#'])
        .next()?
        .trim();
    (!handle.is_empty()).then(|| handle.to_string())
}

/// The author in a `/HANDLE/status/ID` link (`None` for `/i/status/ID` and other shapes).
fn author_of(href: &str) -> Option<String> {
    let (before, _) = url_path(href).split_once("/status/")?;
    let author = before.trim_start_matches('/');
    (!author.is_empty() && author != "i" && !author.contains('/')).then(|| author.to_string())
}

/// The id in a `…/status/ID` link.
fn status_id_of(href: &str) -> Option<String> {
    let id = href
        .split("/status/")
        .nth(1)?
        .split(['/', '?', '#'])
        .next()?;
    (!id.is_empty()).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(author: &str, id: u32, text: &str, ago_s: u64, skip: bool) -> Item {
        Item {
            text: text.into(),
            href: Some(format!("/{author}/status/{id}")),
            time: Some(format_ts(SystemTime::now() - Duration::from_secs(ago_s))),
            skip,
        }
    }

    fn search(ordered: bool, target: Option<&str>) -> Search {
        Search {
            typed: "ours".into(),
            rules: crate::sites::TextDef::default(),
            target: target.map(str::to_string),
            account: Some("Alice".into()),
            since: SystemTime::now() - Duration::from_secs(600),
            ordered,
            seen: HashSet::new(),
            items: 0,
            oldest: None,
            passed: false,
            collected: None,
        }
    }

    #[test]
    fn a_match_must_be_ours_and_newer_than_the_attempt() {
        let mut s = search(true, None);
        let old_same_text = item("alice", 1, "ours", 3600, false);
        let by_someone_else = item("bob", 2, "ours", 10, false);
        let pinned = item("alice", 3, "ours", 10, true);
        assert_eq!(s.judge(&[by_someone_else, pinned]), None);
        assert!(
            !s.passed,
            "neither a repost nor a pinned post says how far back we are"
        );
        assert_eq!(
            s.judge(&[old_same_text]),
            None,
            "the same text from before is not ours"
        );
        assert!(s.passed, "an older item of our timeline ends the search");

        let mut s = search(true, None);
        let ours = item("alice", 4, "ours\n", 10, false);
        assert_eq!(s.judge(&[ours.clone(), ours.clone()]), Some(ours.clone()));
        assert_eq!(
            s.judge(&[ours]),
            None,
            "an item seen before is not judged again"
        );
    }

    #[test]
    fn an_unordered_list_is_never_passed_and_the_target_is_never_the_match() {
        let mut s = search(false, Some("9"));
        let target = item("someone", 9, "ours", 10, false);
        let old = item("alice", 1, "other", 3600, false);
        assert_eq!(s.judge(&[target, old]), None);
        assert!(!s.passed, "replies are in no promised order");
        let ours = item("ALICE", 2, "ours", 5, false);
        assert_eq!(
            s.judge(std::slice::from_ref(&ours)),
            Some(ours),
            "handles compare without case"
        );
        let Lookup::Incomplete { reason } = s.incomplete(3, "the site offers no older page") else {
            panic!("incomplete")
        };
        assert!(
            reason.starts_with(
                "the site offers no older page after 3 page(s) (2 item(s), the oldest from "
            ),
            "{reason}"
        );
    }

    #[test]
    fn the_account_is_read_from_a_profile_link() {
        assert_eq!(handle_in("/alice"), Some("alice".into()));
        assert_eq!(handle_in(" @bob "), Some("bob".into()));
        assert_eq!(handle_in("https://x.com/carol?s=1"), Some("carol".into()));
        assert_eq!(handle_in("/"), None);
        assert_eq!(handle_in("https://x.com"), None);
        assert_eq!(author_of("/alice/status/1"), Some("alice".into()));
        assert_eq!(author_of("https://x.com/bob/status/2"), Some("bob".into()));
        assert_eq!(author_of("/i/status/3"), None);
        assert_eq!(author_of("/i/web/status/3"), None);
    }

    #[test]
    fn ids_come_from_status_links_and_reset_from_the_header() {
        assert_eq!(status_id_of("/demo/status/123?x=1"), Some("123".into()));
        assert_eq!(status_id_of("/demo"), None);
        let reset = rate_limit_reset(&json!({ "X-Rate-Limit-Reset": "1800000000" }));
        assert_eq!(
            reset,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
    }
}
