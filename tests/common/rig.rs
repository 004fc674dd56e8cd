//! A site to act on, for tests that run whole daemons: the sandbox on a free port, and managed
//! browsers logged in to it (each daemon needs its own: the page cap closes every other page).

use super::*;
use executor::browser::{Browser, BrowserConfig};
use executor::sandbox::Sandbox;

/// The sandbox, served on 127.0.0.1 until dropped.
pub struct SandboxRig {
    pub sandbox: Sandbox,
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn sandbox_rig() -> SandboxRig {
    let sandbox = Sandbox::new(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, _task) = sandbox
        .serve(([127, 0, 0, 1], 0).into(), async move {
            let _ = stopped.await;
        })
        .await
        .expect("sandbox");
    SandboxRig {
        sandbox,
        url: format!("http://{addr}"),
        _stop: stop,
    }
}

/// Logs `browser` in through the sandbox's login page as its default user.
pub async fn log_in(browser: &Browser, url: &str) {
    log_in_as(browser, url, executor::sandbox::HANDLE).await
}

/// Logs `browser` in through the sandbox's login form as `user`.
pub async fn log_in_as(browser: &Browser, url: &str, user: &str) {
    browser
        .navigate(&format!("{url}/i/flow/login"), Duration::from_secs(20))
        .await
        .expect("login page");
    browser
        .call_function(
            "function (u) { this.querySelector('[data-testid=\"username\"]').value = u; return true; }",
            &[serde_json::json!(user)],
            Duration::from_secs(10),
        )
        .await
        .expect("user name typed");
    browser
        .click(
            "[data-testid=\"LoginForm_Login_Button\"]",
            Duration::from_secs(10),
        )
        .await
        .expect("log in");
    browser
        .wait_for("[data-testid=\"tweetTextarea_0\"]", Duration::from_secs(20))
        .await
        .expect("logged in");
}

/// A managed headless browser on `profile`, logged in to the sandbox, left running for a daemon
/// to attach to; ended on drop.
pub struct LoggedInChrome {
    pub managed: Option<executor::browser::managed::Managed>,
    pub port: u16,
}

impl Drop for LoggedInChrome {
    fn drop(&mut self) {
        if let Some(managed) = self.managed.take() {
            managed.terminate(Duration::from_secs(3));
        }
    }
}

pub async fn logged_in_chrome(profile: &Profile, url: &str) -> LoggedInChrome {
    logged_in_chrome_as(profile, url, executor::sandbox::HANDLE).await
}

/// [`logged_in_chrome`], logged in as `user`.
pub async fn logged_in_chrome_as(profile: &Profile, url: &str, user: &str) -> LoggedInChrome {
    use executor::browser::managed::{self, LaunchOptions, Managed};
    let options = LaunchOptions {
        binary: managed::find_binary(None).expect("chromium"),
        profile_dir: profile.path("chrome-profile"),
        port: 0,
        headless: true,
        stderr_log: profile.path("chrome-stderr.log"),
    };
    let launched =
        tokio::task::spawn_blocking(move || Managed::launch(&options, Duration::from_secs(30)))
            .await
            .expect("join")
            .expect("launch");
    let port = launched.identity.port;
    let mut flags = executor::settings::Layer::default();
    flags.flag("cdp_port", Some(port.to_string()));
    let settings = executor::settings::resolve(Some(profile.dir.clone()), &flags, &|_| None)
        .expect("settings");
    let browser = Browser::new(BrowserConfig::from_settings(&settings), Arc::new(|_| {}));
    // A browser just launched on a busy machine may miss its first heartbeat: attach again,
    // within a deadline, before calling it broken.
    eventually(
        "the test browser answers",
        Duration::from_secs(30),
        || async { browser.connect().await.is_ok() },
    )
    .await;
    log_in_as(&browser, url, user).await;
    browser.shutdown().await; // attach mode: the browser stays, logged in
    LoggedInChrome {
        managed: Some(launched),
        port,
    }
}

/// A daemon process on `profile`, attached to `chrome`, acting on the sandbox at `url`, with its
/// store at `database`. `extra` are more `--flag value` pairs (e.g. `--account`,
/// `--tick-timeout`); one that is also set here replaces it.
pub fn site_daemon(
    profile: &Profile,
    chrome: &LoggedInChrome,
    url: &str,
    database: &str,
    extra: &[&str],
) -> Running {
    let port = chrome.port.to_string();
    let defaults = [
        ("--browser-mode", "cdp"),
        ("--cdp-port", &port),
        ("--site", "sandbox"),
        ("--site-url", url),
        ("--database", database),
        ("--tick-interval", "300ms"),
        ("--backoff", "200ms"),
        ("--max-failures", "1000"),
        ("--posts-per-hour", "1000"),
        ("--replies-per-hour", "1000"),
        ("--min-gap", "0s"),
    ];
    let args = daemon_args(&defaults, extra);
    let mut cmd = command(&profile.dir, &args);
    cmd.env_remove("EXECUTOR_SITE");
    spawn(cmd)
}

/// One executor's place in a fleet test: its logged-in browser and its profile. The browser is
/// declared first, so it is ended before the profile checks that nothing was left running.
pub struct Member {
    pub chrome: LoggedInChrome,
    pub profile: Profile,
    pub account: &'static str,
}

impl Member {
    pub async fn new(name: &str, url: &str, account: &'static str) -> Member {
        let profile = Profile::new(name);
        let chrome = logged_in_chrome_as(&profile, url, account).await;
        Member {
            chrome,
            profile,
            account,
        }
    }
}

/// How long a test waits for the sandbox to show a post.
const ON_SITE: Duration = Duration::from_secs(90);

/// Waits until the sandbox shows a post with `text`; returns it.
pub async fn published(site: &SandboxRig, text: &str) -> executor::sandbox::Post {
    let find = || site.sandbox.posts().into_iter().find(|p| p.text == text);
    eventually(&format!("{text:?} is on the site"), ON_SITE, || async {
        find().is_some()
    })
    .await;
    find().expect("published")
}

/// The data of every daemon tick that started at or after `since`.
pub async fn ticks_since(
    store: &dyn executor::store::Store,
    since: std::time::SystemTime,
) -> Vec<serde_json::Value> {
    store
        .event_list(&executor::store::EventQuery {
            types: vec![executor::events::TICK.into()],
            since: Some(since),
            ..Default::default()
        })
        .await
        .expect("ticks")
        .into_iter()
        .map(|e| e.event_data)
        .filter(|data| {
            data["timestamp"]
                .as_str()
                .and_then(executor::clock::parse_ts)
                .is_some_and(|started| started >= since)
        })
        .collect()
}

/// With the post lane paused: waits for `ticks` daemon ticks since `since` that saw a post due,
/// and checks that none of them claimed a post and that `text` is not on the site.
pub async fn post_lane_held(
    site: &SandboxRig,
    store: &dyn executor::store::Store,
    since: std::time::SystemTime,
    ticks: usize,
    text: &str,
) {
    eventually(
        &format!("{ticks} ticks that see the paused post due"),
        ON_SITE,
        || async {
            ticks_since(store, since)
                .await
                .iter()
                .filter(|t| t["posting_ready"].as_u64() >= Some(1))
                .count()
                >= ticks
        },
    )
    .await;
    let seen = ticks_since(store, since).await;
    assert!(
        seen.iter().all(|t| t["posting_attempts"] == 0),
        "no post claimed while paused: {seen:?}"
    );
    assert!(site.sandbox.posts().iter().all(|p| p.text != text));
}

/// After a resume: job `id` succeeds and `text` is on the site exactly once.
pub async fn published_once(
    site: &SandboxRig,
    store: &dyn executor::store::Store,
    id: i64,
    text: &str,
) {
    published(site, text).await;
    eventually(&format!("job {id} succeeded"), ON_SITE, || async {
        store
            .job_get(id)
            .await
            .expect("job")
            .map(|j| j.state.name())
            == Some("succeeded")
    })
    .await;
    let copies = site
        .sandbox
        .posts()
        .iter()
        .filter(|p| p.text == text)
        .count();
    assert_eq!(copies, 1, "published once");
}

/// The types of the pause and resume events, oldest first.
pub async fn pause_events(store: &dyn executor::store::Store) -> Vec<String> {
    store
        .event_list(&executor::store::EventQuery {
            types: vec!["QUEUE_PAUSED".into(), "QUEUE_RESUMED".into()],
            ..Default::default()
        })
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}
