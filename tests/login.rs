//! Logging in, against real Chromium and the sandbox: a fresh login survives an immediate
//! `executor chrome --stop` and the end of a launch-mode browser.

mod common;

use common::rig::*;
use common::*;
use executor::browser::{Browser, BrowserConfig};
use executor::settings::BrowserMode;
use executor::sites::{engine::SiteEngine, ActionError, Session, Site, SiteDefinition};
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn settings(profile: &Profile, port: u16) -> executor::settings::Settings {
    let mut flags = executor::settings::Layer::default();
    flags.flag("cdp_port", Some(port.to_string()));
    executor::settings::resolve(Some(profile.dir.clone()), &flags, &|_| None).expect("settings")
}

/// A handle attached (attach mode) to the managed browser `executor chrome` started on `port`.
async fn attached(profile: &Profile, port: u16) -> Browser {
    let config = BrowserConfig::from_settings(&settings(profile, port));
    let browser = Browser::new(config, Arc::new(|_| {}));
    eventually("the browser answers", Duration::from_secs(30), || async {
        browser.connect().await.is_ok()
    })
    .await;
    browser
}

fn sandbox_site(url: &str) -> SiteEngine {
    SiteEngine::new(SiteDefinition::load("sandbox").expect("sandbox"), Some(url))
}

/// Who the sandbox says the browser on `port` is logged in as (the site's own session check).
async fn session_on(profile: &Profile, port: u16, url: &str) -> Result<Session, ActionError> {
    let browser = attached(profile, port).await;
    let session = sandbox_site(url).session(&browser).await;
    browser.shutdown().await;
    session
}

fn alice() -> Result<Session, ActionError> {
    Ok(Session {
        account: Some("alice".into()),
    })
}

/// `executor --cdp-port PORT chrome ARGS…`, which must succeed; its output.
fn chrome(profile: &Profile, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all = vec!["--cdp-port", port.as_str(), "chrome"];
    all.extend_from_slice(args);
    let (code, output) = run(&mut command(&profile.dir, &all), DEADLINE);
    assert_eq!(code, 0, "executor chrome {args:?}: {output}");
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_login_survives_an_immediate_chrome_stop() {
    let rig = sandbox_rig().await;
    let profile = Profile::new("login-stop");
    let port = free_port();
    chrome(&profile, port, &[]);
    let browser = attached(&profile, port).await;
    log_in_as(&browser, &rig.url, "alice").await;
    browser.shutdown().await; // attach mode: the browser stays, logged in

    // At once: well inside the ~30 s in which Chromium keeps a new cookie in memory only.
    let stopped = chrome(&profile, port, &["--stop"]);
    assert!(
        stopped.contains("closed."),
        "closed by itself, not signalled: {stopped}"
    );
    chrome(&profile, port, &[]);
    let session = session_on(&profile, port, &rig.url).await;
    chrome(&profile, port, &["--stop"]);
    assert_eq!(session, alice(), "still logged in after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_mode_browser_keeps_a_fresh_login_through_a_restart_and_its_shutdown() {
    let rig = sandbox_rig().await;
    let profile = Profile::new("login-launch");
    let config = BrowserConfig {
        mode: BrowserMode::Launch,
        port: 0,
        relaunch_interval: Duration::from_millis(500),
        ..BrowserConfig::from_settings(&settings(&profile, free_port()))
    };
    let browser = Browser::new(config.clone(), Arc::new(|_| {}));
    browser.connect().await.expect("launched");
    log_in_as(&browser, &rig.url, "alice").await;
    let first = browser.pids();
    // A cap of one byte: the page is recycled, then the browser restarted.
    let recycled = browser.enforce_memory_cap(1).await.expect("recycled");
    assert!(recycled);
    assert_ne!(browser.pids(), first, "a new browser");
    let after_restart = sandbox_site(&rig.url).session(&browser).await;
    log_in_as(&browser, &rig.url, "bob").await;
    browser.shutdown().await;
    assert_eq!(after_restart, alice(), "the restart kept the login");

    let again = Browser::new(config, Arc::new(|_| {}));
    again.connect().await.expect("launched again");
    let after_shutdown = sandbox_site(&rig.url).session(&again).await;
    again.shutdown().await;
    assert_eq!(
        after_shutdown,
        Ok(Session {
            account: Some("bob".into())
        }),
        "the shutdown kept the login made just before it"
    );
}
