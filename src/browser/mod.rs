//! The browser layer: one CDP connection and one page for the daemon's life (SPEC §3).
//!
//! [`Browser`] is a cheap handle. Behind it:
//! - the *connection* to the browser (attach mode: whatever listens on the CDP port; launch mode:
//!   the managed browser we start, see [`managed`]), re-established only after it is lost;
//! - *our page*: one `page` target, adopted or created at connect, attached with a flattened
//!   session, reused for every action and parked on `about:blank` between actions;
//! - a *guard task* per connection that owns the event stream. It closes every other page the
//!   moment `Target.targetCreated` announces it (window.open, target=_blank, `PUT /json/new`),
//!   sends a heartbeat (`Browser.getVersion` with a short deadline) so a frozen browser is noticed,
//!   and reports the loss of the socket at once (a `kill -9`ed browser closes it).
//!
//! Every call has its own deadline; after a loss every call fails at once (see [`cdp`]). Nothing
//! here kills a process it cannot prove it launched (pid + start time + our profile dir).

pub mod cdp;
pub mod managed;

use crate::platform;
use crate::settings::BrowserMode;
use cdp::{CdpError, CdpEvent, Connection};
use managed::{Identity, LaunchError, LaunchOptions, Managed};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    #[error(transparent)]
    Cdp(#[from] CdpError),
    #[error("{0}")]
    Launch(String),
    #[error("browser lost; the next launch is allowed in {seconds}s (at most one launch per {interval}s)")]
    RelaunchTooSoon { seconds: u64, interval: u64 },
    #[error("no page: {0}")]
    NoPage(String),
    #[error("script error: {0}")]
    Script(String),
    #[error("navigation to {url} failed: {reason}")]
    Navigation { url: String, reason: String },
}

impl From<LaunchError> for BrowserError {
    fn from(err: LaunchError) -> Self {
        BrowserError::Launch(err.to_string())
    }
}

/// What the browser layer tells the daemon (which turns it into log lines and events).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Stray pages were seen and closed. `detected` counts all pages at that moment, ours included.
    StraysClosed { detected: usize, closed: usize },
    /// The connection was lost (socket closed, or no heartbeat answer).
    Lost { reason: String },
    /// We launched the managed browser.
    Launched { pid: u32, port: u16 },
    /// Processes left on our profile by an earlier run were ended.
    LeftoversEnded { count: usize },
    /// The browser was above its memory cap: the page was recycled and, when that was not
    /// enough (launch mode), the browser restarted.
    Recycled {
        before_bytes: u64,
        after_bytes: u64,
        browser_restarted: bool,
    },
}

pub type NoticeFn = Arc<dyn Fn(Notice) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct BrowserConfig {
    pub mode: BrowserMode,
    pub host: IpAddr,
    pub port: u16,
    /// `--chrome-path` / `CHROME_PATH`; searched when `None`.
    pub chrome_path: Option<PathBuf>,
    /// `<profile>/chrome-profile`
    pub profile_dir: PathBuf,
    /// `<profile>/chrome.json`
    pub identity_path: PathBuf,
    /// The browser's own stderr.
    pub stderr_log: PathBuf,
    pub headless: bool,
    /// At most one launch per this interval after a loss (SPEC §3: one per minute).
    pub relaunch_interval: Duration,
    /// Default deadline of one CDP call.
    pub call_deadline: Duration,
    pub heartbeat_every: Duration,
    pub heartbeat_deadline: Duration,
}

impl BrowserConfig {
    pub fn from_settings(settings: &crate::settings::Settings) -> BrowserConfig {
        BrowserConfig {
            mode: settings.browser_mode,
            host: settings.cdp_host,
            port: settings.cdp_port,
            chrome_path: settings.chrome_path.clone(),
            profile_dir: settings.chrome_profile_dir(),
            identity_path: settings.chrome_identity_path(),
            stderr_log: settings.profile.join("chrome-stderr.log"),
            headless: true,
            relaunch_interval: Duration::from_secs(60),
            call_deadline: Duration::from_secs(10),
            heartbeat_every: Duration::from_secs(1),
            heartbeat_deadline: Duration::from_secs(2),
        }
    }
}

/// How a runaway page was halted (SPEC §2, runtime cap), in order of escalation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltStep {
    /// Script terminated, loading stopped, page parked on about:blank.
    Parked,
    /// The page did not answer: closed and a new one created.
    PageRecreated,
    /// Launch mode: the browser itself was restarted.
    BrowserRestarted,
    /// Attach mode: the connection was dropped; the next tick reconnects.
    Disconnected,
}

impl HaltStep {
    pub fn as_str(self) -> &'static str {
        match self {
            HaltStep::Parked => "parked",
            HaltStep::PageRecreated => "page_recreated",
            HaltStep::BrowserRestarted => "browser_restarted",
            HaltStep::Disconnected => "disconnected",
        }
    }
}

/// The result of one page-cap sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapCheck {
    /// Pages found before cleanup (ours included).
    pub found: usize,
    pub closed: usize,
    /// Pages left after cleanup; anything above 1 is a hard-cap breach.
    pub remaining: usize,
}

/// The live connection and our page on it.
#[derive(Clone)]
struct Live {
    conn: Connection,
    target_id: String,
    session_id: String,
    browser_pid: Option<u32>,
    /// Shared with the guard task: the page it must never close.
    ours: Arc<Mutex<Option<String>>>,
}

struct Lifecycle {
    managed: Option<Managed>,
    last_launch: Option<Instant>,
    launched_once: bool,
}

struct Shared {
    config: BrowserConfig,
    lifecycle: tokio::sync::Mutex<Lifecycle>,
    live: Mutex<Option<Live>>,
    strays_closed: AtomicU64,
    closing: AtomicBool,
    notify: NoticeFn,
}

/// The handle. Cheap to clone.
#[derive(Clone)]
pub struct Browser {
    shared: Arc<Shared>,
}

impl Browser {
    /// A handle that connects on first use (see [`Browser::connect`]).
    pub fn new(config: BrowserConfig, notify: NoticeFn) -> Browser {
        Browser {
            shared: Arc::new(Shared {
                config,
                lifecycle: tokio::sync::Mutex::new(Lifecycle {
                    managed: None,
                    last_launch: None,
                    launched_once: false,
                }),
                live: Mutex::new(None),
                strays_closed: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                notify,
            }),
        }
    }

    pub fn config(&self) -> &BrowserConfig {
        &self.shared.config
    }

    fn live(&self) -> Option<Live> {
        self.shared
            .live
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .filter(|l| !l.conn.is_closed())
    }

    fn page(&self) -> Result<Live, BrowserError> {
        self.live().ok_or_else(|| {
            BrowserError::Cdp(CdpError::Disconnected {
                reason: "not connected".into(),
            })
        })
    }

    pub fn is_connected(&self) -> bool {
        self.live().is_some()
    }

    /// Makes sure there is a live connection and our page; (re)connects or (re)launches.
    pub async fn connect(&self) -> Result<(), BrowserError> {
        if self.live().is_some() {
            return Ok(());
        }
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if self.live().is_some() {
            return Ok(());
        }
        let config = &self.shared.config;
        let port = match config.mode {
            BrowserMode::Attach => config.port,
            BrowserMode::Launch => self.ensure_launched(&mut lifecycle).await?,
        };
        let result = self.establish(port).await;
        if result.is_err() && config.mode == BrowserMode::Launch {
            // The browser we own does not answer (frozen, or half dead): end it so the next
            // attempt relaunches instead of waiting on it forever.
            if let Some(managed) = lifecycle.managed.take() {
                let _ =
                    tokio::task::spawn_blocking(move || managed.terminate(Duration::from_secs(2)))
                        .await;
            }
        }
        result
    }

    async fn ensure_launched(&self, lifecycle: &mut Lifecycle) -> Result<u16, BrowserError> {
        let config = &self.shared.config;
        if let Some(managed) = lifecycle.managed.as_mut() {
            if managed.is_running() {
                return Ok(managed.identity.port);
            }
            lifecycle.managed = None;
        }
        if let Some(last) = lifecycle.last_launch {
            let elapsed = last.elapsed();
            if elapsed < config.relaunch_interval {
                return Err(BrowserError::RelaunchTooSoon {
                    seconds: (config.relaunch_interval - elapsed).as_secs().max(1),
                    interval: config.relaunch_interval.as_secs(),
                });
            }
        }
        let binary = managed::find_binary(config.chrome_path.as_deref())?;
        let options = LaunchOptions {
            binary,
            profile_dir: config.profile_dir.clone(),
            port: config.port,
            headless: config.headless,
            stderr_log: config.stderr_log.clone(),
        };
        let profile_dir = config.profile_dir.clone();
        let (managed, ended) = tokio::task::spawn_blocking(move || {
            // Anything still using our profile is a leftover of an earlier run (the lock makes
            // this daemon the only owner of the profile in launch mode).
            let left = managed::leftovers(&profile_dir, &[]);
            let ended = managed::end_processes(&left, &profile_dir, Duration::from_secs(3));
            Managed::launch(&options, Duration::from_secs(30)).map(|m| (m, ended))
        })
        .await
        .map_err(|e| BrowserError::Launch(e.to_string()))??;
        if ended > 0 {
            (self.shared.notify)(Notice::LeftoversEnded { count: ended });
        }
        lifecycle.last_launch = Some(Instant::now());
        lifecycle.launched_once = true;
        let port = managed.identity.port;
        let _ = managed.identity.write(&config.identity_path);
        (self.shared.notify)(Notice::Launched {
            pid: managed.identity.pid,
            port,
        });
        lifecycle.managed = Some(managed);
        Ok(port)
    }

    async fn establish(&self, port: u16) -> Result<(), BrowserError> {
        let config = &self.shared.config;
        let deadline = Duration::from_secs(3);
        let ws_url = cdp::browser_ws_url(config.host, port, deadline).await?;
        let conn = Connection::connect(&ws_url, deadline).await?;
        // Discovery first, so a page opened from now on is announced to the guard.
        let ours = Arc::new(Mutex::new(None::<String>));
        let events = conn.subscribe();
        conn.call(
            "Target.setDiscoverTargets",
            json!({ "discover": true }),
            None,
            deadline,
        )
        .await?;
        let pages = page_targets(&conn, deadline).await?;
        let target_id = match pages
            .iter()
            .find(|(_, url)| url == "about:blank")
            .or(pages.first())
        {
            Some((id, _)) => id.clone(),
            None => create_page(&conn, deadline).await?,
        };
        let session_id = attach(&conn, &target_id, deadline).await?;
        if let Ok(mut slot) = ours.lock() {
            *slot = Some(target_id.clone());
        }
        let browser_pid = browser_pid(&conn).await;
        let live = Live {
            conn: conn.clone(),
            target_id,
            session_id,
            browser_pid,
            ours: ours.clone(),
        };
        self.shared.closing.store(false, Ordering::SeqCst);
        if let Ok(mut slot) = self.shared.live.lock() {
            *slot = Some(live);
        }
        tokio::spawn(guard(self.clone(), conn, ours, events));
        // Pages that were open before we started watching.
        self.enforce_page_cap().await?;
        Ok(())
    }

    /// Closes every page but ours and waits (bounded) until they are gone.
    pub async fn enforce_page_cap(&self) -> Result<CapCheck, BrowserError> {
        let live = self.page()?;
        let deadline = self.shared.config.call_deadline.min(Duration::from_secs(5));
        let pages = page_targets(&live.conn, deadline).await?;
        let found = pages.len();
        let strays: Vec<String> = pages
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| *id != live.target_id)
            .collect();
        let mut closed = 0;
        if !strays.is_empty() {
            (self.shared.notify)(Notice::StraysClosed {
                detected: found,
                closed: strays.len(),
            });
            for id in &strays {
                if close_target(&live.conn, id, deadline).await {
                    closed += 1;
                }
            }
            self.shared
                .strays_closed
                .fetch_add(closed as u64, Ordering::Relaxed);
        }
        // Closing is asynchronous in the browser: wait until the count settles, bounded.
        let settle = Instant::now() + Duration::from_secs(2);
        let remaining = loop {
            let now = page_targets(&live.conn, deadline).await?.len();
            if now <= 1 || Instant::now() >= settle {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(CapCheck {
            found,
            closed,
            remaining,
        })
    }

    /// The number of page targets right now.
    pub async fn page_count(&self) -> Result<usize, BrowserError> {
        let live = self.page()?;
        Ok(page_targets(&live.conn, self.shared.config.call_deadline)
            .await?
            .len())
    }

    /// Stray pages closed since the last call (for the tick's counters).
    pub fn take_strays_closed(&self) -> u64 {
        self.shared.strays_closed.swap(0, Ordering::Relaxed)
    }

    /// The managed browser's main process id(s); in attach mode, the process serving the port.
    pub fn pids(&self) -> Vec<u32> {
        self.live()
            .and_then(|l| l.browser_pid)
            .into_iter()
            .collect()
    }

    /// Memory of the whole browser process tree (proportional set size where the OS reports
    /// it, so pages shared between Chromium's processes are not counted several times).
    pub fn memory_bytes(&self) -> u64 {
        self.pids()
            .iter()
            .flat_map(|pid| platform::process_tree(*pid))
            .map(|p| platform::proportional_memory(p.pid).unwrap_or(p.rss_bytes))
            .sum()
    }

    /// The identity of the browser we launched, if any.
    pub async fn managed_identity(&self) -> Option<Identity> {
        self.shared
            .lifecycle
            .lock()
            .await
            .managed
            .as_ref()
            .map(|m| m.identity.clone())
    }

    /// One cheap round trip to the browser process.
    pub async fn heartbeat(&self) -> Result<(), BrowserError> {
        let live = self.page()?;
        live.conn
            .call(
                "Browser.getVersion",
                json!({}),
                None,
                self.shared.config.heartbeat_deadline,
            )
            .await?;
        Ok(())
    }

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
    /// never spliced into source — and returns its value (promises awaited).
    pub async fn call_function(
        &self,
        declaration: &str,
        args: &[Value],
        deadline: Duration,
    ) -> Result<Value, BrowserError> {
        let live = self.page()?;
        let session = Some(live.session_id.as_str());
        let document = live
            .conn
            .call(
                "Runtime.evaluate",
                json!({ "expression": "document" }),
                session,
                deadline,
            )
            .await?;
        let object_id = document
            .pointer("/result/objectId")
            .and_then(Value::as_str)
            .ok_or_else(|| BrowserError::Script("the page has no document".into()))?
            .to_string();
        let arguments: Vec<Value> = args.iter().map(|value| json!({ "value": value })).collect();
        let result = live
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
                session,
                deadline,
            )
            .await?;
        script_value(&result)
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
    pub fn page_events(
        &self,
    ) -> Result<(tokio::sync::broadcast::Receiver<CdpEvent>, String), BrowserError> {
        let live = self.page()?;
        Ok((live.conn.subscribe(), live.session_id))
    }

    /// Navigates our page and waits for its load event.
    pub async fn navigate(&self, url: &str, deadline: Duration) -> Result<(), BrowserError> {
        let live = self.page()?;
        let mut events = live.conn.subscribe();
        let started = Instant::now();
        live.conn
            .call("Page.enable", json!({}), Some(&live.session_id), deadline)
            .await?;
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
            return Ok(());
        }
        let remaining = deadline.saturating_sub(started.elapsed());
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if event.session_id.as_deref() == Some(&live.session_id)
                            && event.method == "Page.loadEventFired"
                        {
                            return Ok(());
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
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

    /// Launch mode: ends the browser we own and starts a fresh one. A deliberate restart is not
    /// a loss, so the relaunch rate limit does not apply.
    async fn restart(&self) -> Result<(), BrowserError> {
        self.drop_connection("restarting the browser");
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if let Some(managed) = lifecycle.managed.take() {
            let _ = tokio::task::spawn_blocking(move || managed.terminate(Duration::from_secs(2)))
                .await;
        }
        lifecycle.last_launch = None;
        drop(lifecycle);
        self.connect().await
    }

    /// Between actions only: when the browser's process tree is above `cap_bytes`, recycle our
    /// page; in launch mode restart the browser if that was not enough. Returns whether anything
    /// was done.
    pub async fn enforce_memory_cap(&self, cap_bytes: u64) -> Result<bool, BrowserError> {
        let before_bytes = self.memory_bytes();
        if before_bytes <= cap_bytes {
            return Ok(false);
        }
        self.recreate_page().await?;
        let mut after_bytes = self.memory_bytes();
        let mut browser_restarted = false;
        if after_bytes > cap_bytes && self.shared.config.mode == BrowserMode::Launch {
            self.restart().await?;
            browser_restarted = true;
            after_bytes = self.memory_bytes();
        }
        (self.shared.notify)(Notice::Recycled {
            before_bytes,
            after_bytes,
            browser_restarted,
        });
        Ok(true)
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

    fn drop_connection(&self, reason: &str) {
        if let Ok(mut slot) = self.shared.live.lock() {
            if let Some(live) = slot.take() {
                self.shared.closing.store(true, Ordering::SeqCst);
                live.conn.close(reason);
            }
        }
    }

    /// Orderly end: in launch mode the browser we own is ended; in attach mode our page is
    /// parked and the connection closed, the browser left running.
    pub async fn shutdown(&self) {
        if self.shared.config.mode == BrowserMode::Attach && self.live().is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.park()).await;
        }
        self.drop_connection("shutting down");
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if let Some(managed) = lifecycle.managed.take() {
            let identity_path = self.shared.config.identity_path.clone();
            let _ = tokio::task::spawn_blocking(move || {
                managed.terminate(Duration::from_secs(3));
                let _ = std::fs::remove_file(identity_path);
            })
            .await;
        }
    }
}

/// The guard: closes strays as they appear, sends the heartbeat, reports a loss once.
async fn guard(
    browser: Browser,
    conn: Connection,
    ours: Arc<Mutex<Option<String>>>,
    mut events: tokio::sync::broadcast::Receiver<CdpEvent>,
) {
    let config = browser.shared.config.clone();
    let mut heartbeat = tokio::time::interval(config.heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut known_pages: HashSet<String> = HashSet::new();
    let reason = loop {
        tokio::select! {
            _ = conn.closed() => break conn.close_reason(),
            _ = heartbeat.tick() => {
                let beat = conn.call("Browser.getVersion", json!({}), None, config.heartbeat_deadline).await;
                if let Err(err) = beat {
                    let reason = format!("heartbeat: {err}");
                    conn.close(&reason);
                    break reason;
                }
            }
            event = events.recv() => match event {
                Ok(event) => on_event(&browser, &conn, &ours, &mut known_pages, event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // We missed announcements: sweep instead.
                    let browser = browser.clone();
                    tokio::spawn(async move { let _ = browser.enforce_page_cap().await; });
                }
                Err(_) => break conn.close_reason(),
            },
        }
    };
    if !browser.shared.closing.load(Ordering::SeqCst) {
        (browser.shared.notify)(Notice::Lost { reason });
    }
}

fn on_event(
    browser: &Browser,
    conn: &Connection,
    ours: &Arc<Mutex<Option<String>>>,
    known_pages: &mut HashSet<String>,
    event: CdpEvent,
) {
    match event.method.as_str() {
        "Target.targetCreated" | "Target.targetInfoChanged" => {
            let info = &event.params["targetInfo"];
            if info["type"].as_str() != Some("page") {
                return;
            }
            let Some(id) = info["targetId"].as_str() else {
                return;
            };
            let is_new = known_pages.insert(id.to_string());
            let our_id = ours.lock().ok().and_then(|o| o.clone());
            // While our page is being (re)created it has no name yet: leave sweeping to the
            // explicit cap check that follows.
            let Some(our_id) = our_id else { return };
            if id == our_id || !is_new {
                return;
            }
            let detected = known_pages.len().max(2);
            let conn = conn.clone();
            let id = id.to_string();
            let browser = browser.clone();
            tokio::spawn(async move {
                if close_target(&conn, &id, Duration::from_secs(3)).await {
                    browser.shared.strays_closed.fetch_add(1, Ordering::Relaxed);
                    (browser.shared.notify)(Notice::StraysClosed {
                        detected,
                        closed: 1,
                    });
                }
            });
        }
        "Target.targetDestroyed" => {
            if let Some(id) = event.params["targetId"].as_str() {
                known_pages.remove(id);
            }
        }
        _ => {}
    }
}

async fn page_targets(
    conn: &Connection,
    deadline: Duration,
) -> Result<Vec<(String, String)>, CdpError> {
    let answer = conn
        .call("Target.getTargets", json!({}), None, deadline)
        .await?;
    Ok(answer["targetInfos"]
        .as_array()
        .map(|infos| {
            infos
                .iter()
                .filter(|info| info["type"].as_str() == Some("page"))
                .filter_map(|info| {
                    Some((
                        info["targetId"].as_str()?.to_string(),
                        info["url"].as_str().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn create_page(conn: &Connection, deadline: Duration) -> Result<String, BrowserError> {
    let answer = conn
        .call(
            "Target.createTarget",
            json!({ "url": "about:blank" }),
            None,
            deadline,
        )
        .await?;
    answer["targetId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BrowserError::NoPage("Target.createTarget returned no id".into()))
}

async fn attach(
    conn: &Connection,
    target_id: &str,
    deadline: Duration,
) -> Result<String, BrowserError> {
    let answer = conn
        .call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
            None,
            deadline,
        )
        .await?;
    answer["sessionId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| BrowserError::NoPage("Target.attachToTarget returned no session".into()))
}

async fn close_target(conn: &Connection, target_id: &str, deadline: Duration) -> bool {
    conn.call(
        "Target.closeTarget",
        json!({ "targetId": target_id }),
        None,
        deadline,
    )
    .await
    .is_ok()
}

/// The browser process id, as the browser itself reports it.
async fn browser_pid(conn: &Connection) -> Option<u32> {
    let answer = conn
        .call(
            "SystemInfo.getProcessInfo",
            json!({}),
            None,
            Duration::from_secs(3),
        )
        .await
        .ok()?;
    answer["processInfo"]
        .as_array()?
        .iter()
        .find(|p| p["type"].as_str() == Some("browser"))
        .and_then(|p| p["id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
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
