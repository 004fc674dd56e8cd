//! Logging in, against real Chromium and the sandbox: a fresh login survives an immediate
//! `executor chrome --stop` and the end of a launch-mode browser; `chrome --headed` without a
//! display says so and names the ways in; `executor login --cookies FILE` imports a desktop
//! browser's exported cookies and checks the session on the site.

mod common;

use common::rig::*;
use common::*;
use executor::browser::{Browser, BrowserConfig};
use executor::settings::BrowserMode;
use executor::sites::{engine::SiteEngine, ActionError, Session, Site, SiteDefinition};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

#[test]
fn headed_without_a_display_is_refused_before_launch_naming_the_ways_in() {
    let profile = Profile::new("no-display");
    let mut cmd = command(&profile.dir, &["chrome", "--headed"]);
    cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let (code, output) = run(&mut cmd, DEADLINE);
    assert_eq!(code, 2, "{output}");
    assert_eq!(output.lines().count(), 1, "one line: {output}");
    for expected in [
        "neither DISPLAY nor WAYLAND_DISPLAY is set",
        "executor login --cookies FILE",
        "SSH tunnel",
    ] {
        assert!(output.contains(expected), "{expected:?} in: {output}");
    }
    assert!(
        !profile.path("chrome-stderr.log").exists(),
        "no browser was started"
    );
}

#[test]
fn a_browser_that_finds_no_x_server_is_reported_as_no_display() {
    let profile = Profile::new("no-x-server");
    let port = free_port().to_string();
    let mut cmd = command(&profile.dir, &["--cdp-port", &port, "chrome", "--headed"]);
    // A display that is named but not there: the browser itself must find out, and exit.
    cmd.env("DISPLAY", ":987").env_remove("WAYLAND_DISPLAY");
    let (code, output) = run(&mut cmd, DEADLINE);
    assert_eq!(code, 1, "{output}");
    for expected in [
        "there is no display",
        "Missing X server or $DISPLAY",
        "executor login --cookies FILE",
    ] {
        assert!(output.contains(expected), "{expected:?} in: {output}");
    }
    assert!(!output.contains("exited at once"), "{output}");
}

/// The sandbox session of `user` as a desktop browser's cookies.txt would hold it, with one
/// cookie of another site around it.
fn cookies_txt(url: &str, token: &str, expires: u64) -> String {
    let host = url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .expect("host");
    format!(
        "# Netscape HTTP Cookie File\n# This is a generated file! Do not edit.\n\n\
         .example.org\tTRUE\t/\tTRUE\t{expires}\tother\tsomething\n\
         #HttpOnly_{host}\tFALSE\t/\tFALSE\t{expires}\t{}\t{token}\n",
        executor::sandbox::SESSION_COOKIE
    )
}

/// The same as the JSON array of a cookie-export extension.
fn cookies_json(url: &str, token: &str, expires: u64) -> String {
    let host = url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .expect("host");
    serde_json::to_string_pretty(&serde_json::json!([
        { "domain": ".example.org", "name": "other", "value": "something", "path": "/",
          "expirationDate": expires as f64 + 0.25, "hostOnly": false, "httpOnly": false,
          "secure": true, "session": false, "sameSite": "no_restriction", "storeId": "0" },
        { "domain": host, "name": executor::sandbox::SESSION_COOKIE, "value": token, "path": "/",
          "expirationDate": expires as f64 + 0.25, "hostOnly": true, "httpOnly": true,
          "secure": false, "session": false, "sameSite": "lax", "storeId": "0", "id": 2 }
    ]))
    .expect("json")
}

fn in_a_year() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 365 * 24 * 3600
}

/// `executor login --cookies FILE` against the sandbox at `url`: (exit code, output).
fn login(profile: &Profile, port: u16, url: &str, file: &std::path::Path) -> (i32, String) {
    let port = port.to_string();
    let file = file.to_str().expect("utf8");
    let args = [
        "--site",
        "sandbox",
        "--site-url",
        url,
        "--cdp-port",
        &port,
        "login",
        "--cookies",
        file,
    ];
    run(&mut command(&profile.dir, &args), DEADLINE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_txt_and_json_exports_both_log_in_and_the_session_is_checked() {
    let rig = sandbox_rig().await;
    for (format, running_first) in [("cookies.txt", false), ("cookies.json", true)] {
        let profile = Profile::new("login-cookies");
        let port = free_port();
        let token = rig.sandbox.new_session("alice");
        let text = match format {
            "cookies.txt" => cookies_txt(&rig.url, &token, in_a_year()),
            _ => cookies_json(&rig.url, &token, in_a_year()),
        };
        let file = profile.path(format);
        std::fs::write(&file, text).expect("write");
        if running_first {
            chrome(&profile, port, &[]);
        }

        let (code, output) = login(&profile, port, &rig.url, &file);
        assert_eq!(code, 0, "{format}: {output}");
        assert!(
            output.contains("Logged in to sandbox as alice."),
            "{format}: {output}"
        );
        assert!(
            output.contains("Set 1 cookie(s) for 127.0.0.1") && output.contains("skipped 1"),
            "only the site's cookie: {output}"
        );
        assert!(!output.contains(&token), "{format}: the value was printed");
        if running_first {
            let identity = executor::browser::managed::Identity::read(&profile.path("chrome.json"))
                .expect("chrome.json");
            assert!(identity.is_alive(), "a running browser is left running");
        } else {
            assert!(
                output.contains("was closed"),
                "the browser it started is closed in order: {output}"
            );
            assert!(!profile.path("chrome.json").exists());
            chrome(&profile, port, &[]);
        }
        // What the profile keeps, seen by the site: the next start is logged in.
        let session = session_on(&profile, port, &rig.url).await;
        chrome(&profile, port, &["--stop"]);
        assert_eq!(session, alice(), "{format}: the next start is logged in");
    }
}

#[test]
fn a_malformed_cookie_file_exits_2_naming_its_line_and_starts_nothing() {
    let profile = Profile::new("login-malformed");
    let file = profile.path("cookies.txt");
    std::fs::write(
        &file,
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tok\tv\n127.0.0.1 FALSE / FALSE 0 auth_token s3cr3t\n",
    )
    .expect("write");
    let (code, output) = login(&profile, free_port(), "http://127.0.0.1:9", &file);
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("cookies.txt line 3: expected 7 tab-separated fields"),
        "{output}"
    );
    assert!(
        !output.contains("s3cr3t"),
        "the value was printed: {output}"
    );
    assert_eq!(output.lines().count(), 1, "one line: {output}");
    assert!(
        !profile.path("chrome-stderr.log").exists(),
        "no browser started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_expired_cookie_exits_1_saying_still_logged_out() {
    let rig = sandbox_rig().await;
    let long_ago = 1_600_000_000;
    let valid = rig.sandbox.new_session("alice");
    for (token, expires, why) in [
        ("not-a-session", in_a_year(), "export them again"),
        (valid.as_str(), long_ago, "1 of them had expired already"),
    ] {
        let profile = Profile::new("login-wrong");
        let file = profile.path("cookies.txt");
        std::fs::write(&file, cookies_txt(&rig.url, token, expires)).expect("write");
        let (code, output) = login(&profile, free_port(), &rig.url, &file);
        assert_eq!(code, 1, "{output}");
        assert!(
            output.contains("sandbox still shows its login wall")
                && output.contains("still logged out"),
            "{output}"
        );
        assert!(output.contains(why), "{why:?} in: {output}");
        assert!(!output.contains(token), "the value was printed: {output}");
        assert!(
            !profile.path("chrome.json").exists(),
            "the browser it started is stopped"
        );
    }
}
