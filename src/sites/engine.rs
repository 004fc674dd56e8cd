//! The engine: drives the single page through a [`SiteDefinition`].
//!
//! - prepare: open the composer (home, or the target's reply dialog), type the text through CDP
//!   input (`Input.insertText`), then read it back and refuse to go on if it differs — all before
//!   the irreversible step, so any failure here is safe to retry;
//! - publish: start watching the page's network, click the submit button with real mouse events,
//!   and read the new post's id from the site's own create-post answer; HTTP 429 is reported as a
//!   rate limit with the site's reset time; no answer in time is an unknown outcome;
//! - find: does the post exist? (the account's recent posts, or the target's replies);
//! - session: is the browser logged in, or on a login wall / challenge?
//!
//! Values reach page scripts only as call arguments, never spliced into source, so quotes, emoji,
//! newlines, `</script>` and right-to-left text are published exactly as written.

use super::SiteDefinition;
use crate::browser::{Browser, BrowserError};
use crate::jobs::{Job, Kind};
use crate::lanes::{ActionError, Lookup, Published, Session, Site};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};

const NAVIGATE: Duration = Duration::from_secs(30);
const APPEAR: Duration = Duration::from_secs(20);
const CALL: Duration = Duration::from_secs(10);
/// How long the create-post answer may take before the outcome is called unknown.
pub const ANSWER: Duration = Duration::from_secs(20);

pub struct SiteEngine {
    def: SiteDefinition,
    base: String,
    answer: Duration,
}

fn failed(context: &str) -> impl Fn(BrowserError) -> ActionError + '_ {
    move |err| ActionError::Failed(format!("{context}: {err}"))
}

/// Texts as the site shows them: no trailing newline, non-breaking spaces as spaces.
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\u{a0}', " ")
        .trim_end_matches(['\n', ' '])
        .to_string()
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
            Ok(url) => self
                .def
                .session
                .login_walls
                .iter()
                .any(|wall| url.contains(wall)),
            Err(_) => false,
        }
    }

    /// Navigates; a login wall there is `AuthRequired`.
    async fn open(&self, browser: &Browser, url: &str) -> Result<(), ActionError> {
        browser
            .navigate(url, NAVIGATE)
            .await
            .map_err(failed("opening the page"))?;
        if self.on_login_wall(browser).await {
            return Err(ActionError::AuthRequired);
        }
        Ok(())
    }

    /// Focuses and clears the composer, types the text, and checks what was typed.
    async fn compose(
        &self,
        browser: &Browser,
        composer: &str,
        text: &str,
    ) -> Result<(), ActionError> {
        browser
            .wait_for(composer, APPEAR)
            .await
            .map_err(failed("finding the composer"))?;
        browser
            .call_function(
                "function (s) { const el = this.querySelector(s); el.focus(); \
                 if (el.isContentEditable) el.textContent = ''; else el.value = ''; return true; }",
                &[json!(composer)],
                CALL,
            )
            .await
            .map_err(failed("focusing the composer"))?;
        browser
            .insert_text(text, CALL)
            .await
            .map_err(failed("typing"))?;
        let typed = browser
            .call_function(
                "function (s) { const el = this.querySelector(s); return el.isContentEditable ? el.innerText : el.value; }",
                &[json!(composer)],
                CALL,
            )
            .await
            .map_err(failed("reading the composer"))?;
        let typed = typed.as_str().unwrap_or_default();
        if normalise(typed) != normalise(text) {
            return Err(ActionError::Failed(format!(
                "the composer holds {} characters, not the {} typed; not publishing",
                typed.chars().count(),
                text.chars().count()
            )));
        }
        Ok(())
    }

    /// The first submit selector that exists on the page.
    async fn submit_button(
        &self,
        browser: &Browser,
        candidates: &[String],
    ) -> Result<String, ActionError> {
        let index = browser
            .call_function(
                "function (list) { return list.findIndex(s => !!this.querySelector(s)); }",
                &[json!(candidates)],
                CALL,
            )
            .await
            .map_err(failed("finding the submit button"))?;
        index
            .as_i64()
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| candidates.get(i).cloned())
            .ok_or_else(|| ActionError::Failed("no submit button on the page".into()))
    }

    /// Waits for the site's create-post answer and reads the new id from it.
    async fn await_answer(
        &self,
        browser: &Browser,
        mut events: tokio::sync::broadcast::Receiver<crate::browser::cdp::CdpEvent>,
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
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
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
        self.open(browser, &self.url(&self.def.session.check_url, None, None))
            .await?;
        match browser.wait_for(&self.def.session.logged_in, APPEAR).await {
            Ok(()) => Ok(Session::default()),
            Err(_) if self.on_login_wall(browser).await => Err(ActionError::AuthRequired),
            Err(err) => Err(ActionError::Failed(format!("checking the session: {err}"))),
        }
    }

    async fn prepare(&self, browser: &Browser, job: &Job) -> Result<(), ActionError> {
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
        let button = self.submit_button(browser, candidates).await?;
        // Watch the network before the click so the answer cannot be missed.
        let (events, session) = browser.page_events().map_err(failed("watching the page"))?;
        browser
            .page_call("Network.enable", json!({}), CALL)
            .await
            .map_err(failed("watching the network"))?;
        browser
            .click(&button, CALL)
            .await
            .map_err(failed("clicking"))?;
        self.await_answer(browser, events, &session, job).await
    }

    async fn find(
        &self,
        browser: &Browser,
        job: &Job,
        _account: Option<&str>,
        _since: SystemTime,
    ) -> Result<Lookup, ActionError> {
        let template = match job.kind {
            Kind::Post => &self.def.find.posts_url,
            Kind::Reply => &self.def.find.replies_url,
        };
        self.open(browser, &self.url(template, Some(job), None))
            .await?;
        let find = &self.def.find;
        if browser
            .wait_for(&find.item, Duration::from_secs(10))
            .await
            .is_err()
        {
            return if find.empty_means_absent {
                Ok(Lookup::NotFound)
            } else {
                Err(ActionError::Failed(
                    "the page shows no posts yet; checking again later".into(),
                ))
            };
        }
        let items = browser
            .call_function(
                "function (item, text, link) { return Array.from(this.querySelectorAll(item)).map(a => { \
                 const t = a.querySelector(text); const l = a.querySelector(link); \
                 return { text: t ? t.innerText : '', href: l ? l.getAttribute('href') : null }; }); }",
                &[json!(find.item), json!(find.text), json!(find.link)],
                CALL,
            )
            .await
            .map_err(failed("reading the posts"))?;
        let wanted = normalise(&job.text);
        let found = items.as_array().into_iter().flatten().find(|item| {
            normalise(item["text"].as_str().unwrap_or_default()) == wanted
                && !(job.kind == Kind::Reply && status_id(item) == job.reply_to)
        });
        Ok(match found {
            Some(item) => {
                let id = status_id(item);
                Lookup::Found(Published {
                    url: id
                        .as_deref()
                        .map(|id| self.url(&self.def.result.post_url, None, Some(id))),
                    post_id: id,
                })
            }
            None => Lookup::NotFound,
        })
    }
}

/// The id in a `…/status/ID` link.
fn status_id(item: &Value) -> Option<String> {
    let href = item["href"].as_str()?;
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

    #[test]
    fn texts_compare_as_the_site_shows_them() {
        assert_eq!(normalise("a\u{a0} b\n"), "a  b");
        assert_eq!(normalise("line1\r\nline2"), "line1\nline2");
    }

    #[test]
    fn ids_come_from_status_links_and_reset_from_the_header() {
        assert_eq!(
            status_id(&json!({ "href": "/demo/status/123?x=1" })),
            Some("123".into())
        );
        assert_eq!(status_id(&json!({ "href": "/demo" })), None);
        let reset = rate_limit_reset(&json!({ "X-Rate-Limit-Reset": "1800000000" }));
        assert_eq!(
            reset,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
    }
}
