//! Our page and the actions on it: CDP calls on its session, scripts, navigation, clicks and
//! typing, and halting it when it runs away.
//!
//! Every action takes a deadline. Script arguments are passed as data, never spliced into
//! source. A page that overruns the runtime cap is halted by escalation ([`HaltStep`]): script
//! terminated and loading stopped, then a new page, then (launch mode) a new browser or (attach
//! mode) a dropped connection, so that the next tick always starts from a quiet page.

use super::cdp::CdpError;
use super::targets::{attach, close_target, create_page};
use super::{Browser, BrowserError, HaltStep};
use crate::settings::BrowserMode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl Browser {
    /// A CDP call on our page's session.
    pub async fn page_call(
        &self,
        method: &str,
        params: Value,
        deadline: Duration,
    ) -> Result<Value, BrowserError> {
        let live = self.page()?;
        Ok(live
            .conn
            .call(method, params, Some(&live.session_id), deadline)
            .await?)
    }

    /// Evaluates `expression` in our page and returns its value (promises awaited).
    pub async fn evaluate(
        &self,
        expression: &str,
        deadline: Duration,
    ) -> Result<Value, BrowserError> {
        let result = self
            .page_call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
                deadline,
            )
            .await?;
        script_value(&result)
    }

    /// Calls `declaration` (a JavaScript function) in our page with `args` passed as data —
    /// never spliced into source — and `this` the document; returns its value (promises
    /// awaited). The document's handle is kept until a navigation replaces the document.
    pub async fn call_function(
        &self,
        declaration: &str,
        args: &[Value],
        deadline: Duration,
    ) -> Result<Value, BrowserError> {
        let live = self.page()?;
        let arguments: Vec<Value> = args.iter().map(|value| json!({ "value": value })).collect();
        let mut fresh = false;
        loop {
            let cached = self.cached(&live.session_id, |cache| cache.document.clone());
            let object_id = match cached {
                Some(id) => id,
                None => {
                    fresh = true;
                    let id = self.document_handle(&live, deadline).await?;
                    self.cached(&live.session_id, |cache| cache.document = Some(id.clone()));
                    id
                }
            };
            let answer = live
                .conn
                .call(
                    "Runtime.callFunctionOn",
                    json!({
                        "functionDeclaration": declaration,
                        "objectId": object_id,
                        "arguments": arguments,
                        "returnByValue": true,
                        "awaitPromise": true,
                    }),
                    Some(&live.session_id),
                    deadline,
                )
                .await;
            match answer {
                // The page replaced its document since (a navigation of its own): the function
                // did not run; ask for the new document once.
                Err(CdpError::Protocol { message, .. }) if !fresh && stale_handle(&message) => {
                    self.cached(&live.session_id, |cache| cache.document = None);
                }
                answer => return script_value(&answer?),
            }
        }
    }

    /// A handle on our page's current document.
    async fn document_handle(
        &self,
        live: &super::Live,
        deadline: Duration,
    ) -> Result<String, BrowserError> {
        let document = live
            .conn
            .call(
                "Runtime.evaluate",
                json!({ "expression": "document" }),
                Some(&live.session_id),
                deadline,
            )
            .await?;
        document
            .pointer("/result/objectId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| BrowserError::Script("the page has no document".into()))
    }

    /// Runs `f` on the cache of our page's session `session_id`.
    pub(super) fn cached<T>(
        &self,
        session_id: &str,
        f: impl FnOnce(&mut super::SessionCache) -> T,
    ) -> T {
        let mut cache = match self.shared.session.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(cache.of(session_id))
    }

    /// Enables `domain` (`Page`, `Network`) on our page's session, once per session: a domain
    /// stays enabled across navigations.
    pub async fn enable(
        &self,
        domain: &'static str,
        deadline: Duration,
    ) -> Result<(), BrowserError> {
        let live = self.page()?;
        if self.cached(&live.session_id, |cache| cache.enabled.contains(&domain)) {
            return Ok(());
        }
        live.conn
            .call(
                &format!("{domain}.enable"),
                json!({}),
                Some(&live.session_id),
                deadline,
            )
            .await?;
        self.cached(&live.session_id, |cache| cache.enabled.push(domain));
        Ok(())
    }

    /// Waits until `selector` matches an element in our page.
    pub async fn wait_for(&self, selector: &str, deadline: Duration) -> Result<(), BrowserError> {
        let end = Instant::now() + deadline;
        loop {
            let found = self
                .call_function(
                    "function (s) { return !!this.querySelector(s); }",
                    &[json!(selector)],
                    Duration::from_secs(5),
                )
                .await;
            match found {
                Ok(Value::Bool(true)) => return Ok(()),
                // A navigation in progress destroys the context: try again.
                Ok(_)
                | Err(BrowserError::Script(_))
                | Err(BrowserError::Cdp(CdpError::Protocol { .. })) => {}
                Err(err) => return Err(err),
            }
            if Instant::now() >= end {
                return Err(BrowserError::NoPage(format!(
                    "{selector} did not appear within {} s",
                    deadline.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element matching `selector` with real mouse events at its centre.
    pub async fn click(&self, selector: &str, deadline: Duration) -> Result<(), BrowserError> {
        let point = self
            .call_function(
                "function (s) { const el = this.querySelector(s); if (!el) return null; \
                 el.scrollIntoView({ block: 'center' }); const r = el.getBoundingClientRect(); \
                 return [r.left + r.width / 2, r.top + r.height / 2]; }",
                &[json!(selector)],
                deadline,
            )
            .await?;
        let (Some(x), Some(y)) = (point[0].as_f64(), point[1].as_f64()) else {
            return Err(BrowserError::NoPage(format!(
                "nothing to click at {selector}"
            )));
        };
        self.click_at(x, y, deadline).await
    }

    /// Clicks at `(x, y)` of the page's viewport with real mouse events (press, release).
    pub async fn click_at(&self, x: f64, y: f64, deadline: Duration) -> Result<(), BrowserError> {
        for kind in ["mousePressed", "mouseReleased"] {
            self.page_call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
                deadline,
            )
            .await?;
        }
        Ok(())
    }

    /// Types `text` into the focused element through CDP input, exactly as written.
    pub async fn insert_text(&self, text: &str, deadline: Duration) -> Result<(), BrowserError> {
        self.page_call("Input.insertText", json!({ "text": text }), deadline)
            .await?;
        Ok(())
    }

    /// The URL our page is on.
    pub async fn current_url(&self) -> Result<String, BrowserError> {
        let url = self
            .evaluate("location.href", Duration::from_secs(5))
            .await?;
        Ok(url.as_str().unwrap_or_default().to_string())
    }

    /// Events of our page's session (network answers, loads), from now on.
    pub fn page_events(&self) -> Result<(super::cdp::Events, String), BrowserError> {
        let live = self.page()?;
        Ok((live.conn.subscribe(), live.session_id))
    }

    /// Navigates our page and waits for its load event.
    pub async fn navigate(&self, url: &str, deadline: Duration) -> Result<(), BrowserError> {
        self.open_url(url, deadline).await.map(|_| ())
    }

    /// Navigates our page, waits for its load event and returns the URL the page is on then
    /// (after redirects, and moves of the page's own within its document), as the browser
    /// announced it — no second call to ask.
    pub async fn open_url(&self, url: &str, deadline: Duration) -> Result<String, BrowserError> {
        let live = self.page()?;
        let mut events = live.conn.subscribe();
        let started = Instant::now();
        self.enable("Page", deadline).await?;
        // The document is about to be replaced: its handle with it. A new site may bring a
        // new renderer process.
        self.cached(&live.session_id, |cache| cache.document = None);
        self.tree_may_have_grown();
        let answer = live
            .conn
            .call(
                "Page.navigate",
                json!({ "url": url }),
                Some(&live.session_id),
                deadline,
            )
            .await?;
        if let Some(error) = answer.get("errorText").and_then(Value::as_str) {
            return Err(BrowserError::Navigation {
                url: url.to_string(),
                reason: error.to_string(),
            });
        }
        let loader = answer
            .get("loaderId")
            .and_then(Value::as_str)
            .map(str::to_string);
        if loader.is_none() {
            // Same-document navigation: nothing more to wait for.
            return Ok(url.to_string());
        }
        let remaining = deadline.saturating_sub(started.elapsed());
        let main_frame = live.target_id.clone();
        let wait = async {
            let mut at = url.to_string();
            // A load event counts only once this navigation's document is in the main frame: a
            // late one of the document before (its DOM was ready before its load) is not ours.
            let mut ours = false;
            loop {
                match events.recv().await {
                    Ok(event) if event.session_id.as_deref() == Some(&live.session_id) => {
                        match event.method.as_str() {
                            "Page.loadEventFired" if ours => return Ok(at),
                            "Page.frameNavigated"
                                if event.params.pointer("/frame/parentId").is_none() =>
                            {
                                ours |= event
                                    .params
                                    .pointer("/frame/loaderId")
                                    .and_then(Value::as_str)
                                    == loader.as_deref();
                                if let Some(now) =
                                    event.params.pointer("/frame/url").and_then(Value::as_str)
                                {
                                    at = now.to_string();
                                }
                            }
                            "Page.navigatedWithinDocument"
                                if event.params["frameId"].as_str() == Some(&main_frame) =>
                            {
                                if let Some(now) = event.params["url"].as_str() {
                                    at = now.to_string();
                                }
                            }
                            _ => {}
                        }
                    }
                    Ok(_) => {}
                    Err(super::cdp::EventsEnded::Lagged(_)) => continue,
                    Err(_) => {
                        return Err(BrowserError::Cdp(CdpError::Disconnected {
                            reason: live.conn.close_reason(),
                        }))
                    }
                }
            }
        };
        tokio::select! {
            result = wait => result,
            _ = tokio::time::sleep(remaining) => Err(BrowserError::Cdp(CdpError::Timeout {
                method: format!("load of {url}"),
                millis: deadline.as_millis(),
            })),
        }
    }

    /// Parks our page on about:blank.
    pub async fn park(&self) -> Result<(), BrowserError> {
        self.navigate("about:blank", Duration::from_secs(5)).await
    }

    /// Halts whatever our page is doing, escalating until it is quiet (SPEC §2 runtime cap).
    pub async fn halt(&self) -> HaltStep {
        let short = Duration::from_secs(2);
        if let Ok(live) = self.page() {
            let session = Some(live.session_id.as_str());
            let _ = live
                .conn
                .call("Runtime.terminateExecution", json!({}), session, short)
                .await;
            let _ = live
                .conn
                .call("Page.stopLoading", json!({}), session, short)
                .await;
            if self
                .navigate("about:blank", Duration::from_secs(3))
                .await
                .is_ok()
            {
                return HaltStep::Parked;
            }
            if self.recreate_page().await.is_ok() {
                return HaltStep::PageRecreated;
            }
        }
        match self.shared.config.mode {
            BrowserMode::Launch => {
                let _ = self.restart().await;
                HaltStep::BrowserRestarted
            }
            BrowserMode::Attach => {
                self.drop_connection("halting a runaway page");
                HaltStep::Disconnected
            }
        }
    }

    /// Closes our page and creates a fresh one (used to halt it, and to recycle it when the
    /// browser grows beyond the memory cap).
    pub async fn recreate_page(&self) -> Result<(), BrowserError> {
        let live = self.page()?;
        let deadline = Duration::from_secs(3);
        if let Ok(mut ours) = live.ours.lock() {
            *ours = None; // the guard must not close the new page while it has no name yet
        }
        let new_target = create_page(&live.conn, deadline).await?;
        let session_id = attach(&live.conn, &new_target, deadline).await?;
        let _ = close_target(&live.conn, &live.target_id, deadline).await;
        if let Ok(mut ours) = live.ours.lock() {
            *ours = Some(new_target.clone());
        }
        if let Ok(mut slot) = self.shared.live.lock() {
            if let Some(current) = slot.as_mut() {
                current.target_id = new_target;
                current.session_id = session_id;
            }
        }
        Ok(())
    }
}

/// Whether a CDP error says an object handle belongs to a document that is gone.
fn stale_handle(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("could not find object") || message.contains("cannot find context")
}

/// The value of a `Runtime.evaluate` / `Runtime.callFunctionOn` answer, or the script's exception
/// (its first line) as an error.
fn script_value(result: &Value) -> Result<Value, BrowserError> {
    if let Some(details) = result.get("exceptionDetails") {
        let text = details
            .pointer("/exception/description")
            .or_else(|| details.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("exception");
        return Err(BrowserError::Script(
            text.lines().next().unwrap_or(text).to_string(),
        ));
    }
    Ok(result
        .pointer("/result/value")
        .cloned()
        .unwrap_or(Value::Null))
}
