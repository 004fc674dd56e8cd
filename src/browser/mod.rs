//! The browser layer: one CDP connection and one page for the daemon's life (SPEC §3).
//!
//! [`Browser`] is a cheap handle. Everything behind it is shared state, defined here, and four
//! jobs, one file each, so that each can be read whole:
//! - `lifecycle.rs`: the *connection* to the browser (attach mode: whatever listens on the CDP
//!   port; launch mode: the managed browser we start, see [`managed`]), re-established only
//!   after it is lost, restarted on purpose, and ended in order;
//! - `page.rs`: *our page*, one `page` target, adopted or created at connect, attached with a
//!   flattened session, reused for every action, parked on `about:blank` between actions, and
//!   halted (escalating) when it runs away;
//! - `cap.rs`: the *page cap* (every page but ours closed, and counted) and the memory cap;
//! - `guard.rs`: the *guard task*, one per connection, which owns the event stream. It closes
//!   every other page the moment `Target.targetCreated` announces it (window.open,
//!   target=_blank, `PUT /json/new`), sends a heartbeat (`Browser.getVersion` with a short
//!   deadline) so a frozen browser is noticed, and reports the loss of the socket at once (a
//!   `kill -9`ed browser closes it).
//!
//! `targets.rs` holds the few `Target.*` calls they share; [`cdp`] is the wire. Every call has
//! its own deadline; after a loss every call fails at once (see [`cdp`]). Nothing here kills a
//! process it cannot prove it launched (pid + start time + our profile dir).

pub mod cdp;
pub mod managed;

mod cap;
pub use cap::{STORM_BOUND, STORM_REPEAT};
mod guard;
mod lifecycle;
mod page;
mod targets;

use crate::settings::BrowserMode;
use cdp::{CdpError, Connection};
use managed::{LaunchError, Managed};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    #[error(transparent)]
    Cdp(#[from] CdpError),
    #[error("{0}")]
    Launch(String),
    #[error("browser lost {losses} times in a row soon after launch; relaunching in {seconds}s (waits double up to {interval}s)")]
    RelaunchTooSoon {
        seconds: u64,
        interval: u64,
        losses: u32,
    },
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
    /// A tab storm could not be swept within its bound: the browser we launched was replaced
    /// (it held `pages` pages).
    ReplacedAfterStorm { pages: usize },
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
    /// The longest wait before relaunching a browser that keeps dying soon after launch (SPEC
    /// §3: one launch per minute). A browser lost after it has worked is relaunched at once.
    pub relaunch_interval: Duration,
    /// Default deadline of one CDP call.
    pub call_deadline: Duration,
    /// A heartbeat is sent once the browser has been quiet this long (the ticks' own calls
    /// count), and must be answered within `heartbeat_deadline`: a frozen browser is noticed
    /// within the two together.
    pub heartbeat_every: Duration,
    pub heartbeat_deadline: Duration,
    /// How long the page-cap sweep keeps closing under a tab storm ([`STORM_BOUND`]; tests
    /// shorten it to reach what lies behind it).
    pub storm_bound: Duration,
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
            heartbeat_every: Duration::from_secs(2),
            heartbeat_deadline: Duration::from_secs(2),
            storm_bound: STORM_BOUND,
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

/// What the lifecycle keeps between connections: the browser we own, and when we last launched.
#[derive(Default)]
struct Lifecycle {
    managed: Option<Managed>,
    last_launch: Option<Instant>,
    launched_once: bool,
    /// When the browser we launched last was connected and its page adopted (it worked).
    established_at: Option<Instant>,
    /// Launches in a row that ended before the browser had worked for a while: the relaunch
    /// wait grows with them (see `lifecycle::relaunch_wait`).
    quick_losses: u32,
    /// When a browser was last replaced because a tab storm outlasted the sweep.
    storm_replaced_at: Option<Instant>,
}

struct Shared {
    config: BrowserConfig,
    lifecycle: tokio::sync::Mutex<Lifecycle>,
    live: Mutex<Option<Live>>,
    strays_closed: AtomicU64,
    /// Page targets announced created or destroyed (or announcements missed) so far: a page
    /// count listed when this was `n` still holds while it is `n`.
    page_events: AtomicU64,
    /// What our page's session already has: domains enabled, the document's handle.
    session: Mutex<SessionCache>,
    /// The browser's process tree as last found (see [`Browser::resident_bytes`]).
    tree: Mutex<Option<KnownTree>>,
    /// The last [`Browser::resident_bytes`] and when it was read.
    resident_read: Mutex<Option<(Instant, u64)>>,
    closing: AtomicBool,
    /// Held by a launch from its first step to its last, on the blocking pool, where a cut tick
    /// cannot stop it: the next launch, and the end of the daemon, wait for it.
    launching: Arc<tokio::sync::Mutex<()>>,
    /// Set while the browser is shut down: a launch in flight gives up, none starts.
    stopping: Arc<AtomicBool>,
    notify: NoticeFn,
}

/// What one CDP session of our page has been given, so that it is not asked again: the domains
/// enabled on it (they stay enabled across navigations), the handle of its document (valid
/// until the document is replaced), and the last page count listed with `page_events` as it was
/// before the listing. Kept for one session id; another session (a new page, a new browser)
/// starts empty.
#[derive(Default)]
struct SessionCache {
    session_id: String,
    enabled: Vec<&'static str>,
    document: Option<String>,
    listed: Option<(u64, usize)>,
}

impl SessionCache {
    /// The cache of `session_id`, emptied if it was another session's.
    fn of(&mut self, session_id: &str) -> &mut SessionCache {
        if self.session_id != session_id {
            *self = SessionCache {
                session_id: session_id.to_string(),
                ..SessionCache::default()
            };
        }
        self
    }
}

/// The browser's process tree as last found: its root, each member followed (so a reused pid
/// is not mistaken for it), and when it was found. Processes join the tree when pages
/// navigate (a renderer per site), so a navigation makes it stale, as does age
/// ([`TREE_REFRESH`]) and any member gone.
struct KnownTree {
    root: u32,
    members: Vec<crate::platform::Followed>,
    found: Instant,
    stale: bool,
}

/// The longest a known process tree is followed without looking for new members.
const TREE_REFRESH: Duration = Duration::from_secs(60);

/// A resident size read at most half the memory cap, with the tree unchanged since (no page
/// navigated or appeared), is read again only after this long: an idle browser far below the
/// cap is not measured every tick of a short interval.
const RESIDENT_REREAD: Duration = Duration::from_secs(10);

/// Whether `last` (when the resident size was read, and what it was) still answers for the cap.
fn resident_reading_holds(
    last: Option<(Instant, u64)>,
    tree_changed: bool,
    now: Instant,
    cap_bytes: u64,
) -> bool {
    !tree_changed
        && last.is_some_and(|(at, bytes)| {
            bytes <= cap_bytes / 2 && now.saturating_duration_since(at) < RESIDENT_REREAD
        })
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
                lifecycle: tokio::sync::Mutex::new(Lifecycle::default()),
                live: Mutex::new(None),
                strays_closed: AtomicU64::new(0),
                page_events: AtomicU64::new(0),
                session: Mutex::new(SessionCache::default()),
                tree: Mutex::new(None),
                resident_read: Mutex::new(None),
                closing: AtomicBool::new(false),
                launching: Arc::default(),
                stopping: Arc::default(),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resident_reading_is_reused_only_far_below_the_cap_young_and_with_the_tree_unchanged() {
        let at = Instant::now();
        let cap = 2_000;
        let soon = at + Duration::from_secs(9);
        assert!(resident_reading_holds(Some((at, 1_000)), false, soon, cap));
        assert!(
            !resident_reading_holds(None, false, soon, cap),
            "never read"
        );
        assert!(
            !resident_reading_holds(Some((at, 1_001)), false, soon, cap),
            "above half the cap: read every tick"
        );
        assert!(
            !resident_reading_holds(Some((at, 1_000)), true, soon, cap),
            "a page navigated or appeared"
        );
        assert!(!resident_reading_holds(
            Some((at, 1_000)),
            false,
            at + RESIDENT_REREAD,
            cap
        ));
    }
}
