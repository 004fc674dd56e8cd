//! Sites against real Chromium and the sandbox: the engine publishes exactly what was written,
//! reads the new id from the site's own answer, finds posts again, and survives the faults.

mod common;

use common::*;
use executor::browser::{Browser, BrowserConfig};
use executor::jobs::{Job, JobState, Kind};
use executor::lanes::{ActionError, Site};
use executor::sandbox::{Fault, Sandbox};
use executor::sites::{engine::SiteEngine, SiteDefinition};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub const TRICKY: &[&str] = &[
    "plain words",
    "quotes \" and ' and `backticks`",
    "emoji 🎉🚀 and accents éàü",
    "two\nlines",
    "</script><script>alert(1)</script>",
    "שלום עולם — RTL text",
    "double  spaces and a trailing dot.",
];

pub struct World {
    pub sandbox: Sandbox,
    pub url: String,
    pub browser: Browser,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A sandbox on a free port and a managed browser on `profile`, logged in through the login page.
pub async fn world(profile: &Profile, fault: Option<Fault>) -> World {
    let sandbox = Sandbox::new(fault);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, _task) = sandbox
        .serve(([127, 0, 0, 1], 0).into(), async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("sandbox");
    let config = BrowserConfig {
        relaunch_interval: Duration::from_millis(500),
        ..BrowserConfig::from_settings(&settings_for(profile))
    };
    let browser = Browser::new(config, Arc::new(|_| {}));
    browser.connect().await.expect("browser");
    let url = format!("http://{addr}");
    log_in(&browser, &url).await;
    World {
        sandbox,
        url,
        browser,
        _stop: stop_tx,
    }
}

pub fn settings_for(profile: &Profile) -> executor::settings::Settings {
    let mut flags = executor::settings::Layer::default();
    flags.flag("browser_mode", Some("launch".into()));
    flags.flag("cdp_port", Some("0".into()));
    executor::settings::resolve(Some(profile.dir.clone()), &flags, &|_| None).expect("settings")
}

pub async fn log_in(browser: &Browser, url: &str) {
    browser
        .navigate(&format!("{url}/i/flow/login"), Duration::from_secs(20))
        .await
        .expect("login page");
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

pub fn job(id: i64, kind: Kind, text: &str, reply_to: Option<&str>) -> Job {
    Job {
        id,
        kind,
        text: text.into(),
        reply_to: reply_to.map(str::to_string),
        account: String::new(),
        idempotency_key: None,
        not_before: SystemTime::now(),
        state: JobState::Queued,
        attempts: 0,
        max_attempts: 5,
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
    }
}

fn engine(site: &str, url: &str) -> SiteEngine {
    SiteEngine::new(SiteDefinition::load(site).expect("site"), Some(url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_publishes_exactly_what_was_written_and_finds_it_again() {
    let profile = Profile::new("engine");
    let w = world(&profile, None).await;
    for site in ["sandbox", "x"] {
        let engine = engine(site, &w.url);
        engine.session(&w.browser).await.expect("logged in");
        for (i, text) in TRICKY.iter().enumerate() {
            let text = format!("{site} {i}: {text}");
            let post = job(i as i64, Kind::Post, &text, None);
            engine.prepare(&w.browser, &post).await.expect("prepare");
            let published = engine.publish(&w.browser, &post).await.expect("publish");
            let stored = w.sandbox.posts();
            let last = stored.last().expect("stored");
            assert_eq!(last.text, text, "published exactly as written");
            assert_eq!(
                published.post_id.as_deref(),
                Some(last.id.as_str()),
                "id from the site's answer"
            );
            let found = engine
                .find(&w.browser, &post)
                .await
                .expect("find")
                .expect("found");
            assert_eq!(found.post_id, published.post_id);

            let reply_text = format!("re {text}");
            let reply = job(
                100 + i as i64,
                Kind::Reply,
                &reply_text,
                published.post_id.as_deref(),
            );
            engine
                .prepare(&w.browser, &reply)
                .await
                .expect("prepare reply");
            let answered = engine
                .publish(&w.browser, &reply)
                .await
                .expect("publish reply");
            let last = w.sandbox.posts().last().cloned().expect("stored");
            assert_eq!(last.text, reply_text);
            assert_eq!(last.in_reply_to, published.post_id);
            assert_eq!(answered.post_id.as_deref(), Some(last.id.as_str()));
            assert_eq!(
                engine
                    .find(&w.browser, &reply)
                    .await
                    .expect("find")
                    .map(|p| p.post_id),
                Some(answered.post_id)
            );
        }
        let missing = job(999, Kind::Post, "never published", None);
        assert_eq!(engine.find(&w.browser, &missing).await.ok().flatten(), None);
    }
    w.browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_wall_is_auth_required_and_a_429_is_a_rate_limit() {
    let profile = Profile::new("engine-faults");
    let w = world(&profile, None).await;
    let engine = engine("sandbox", &w.url);
    w.sandbox.set_fault(Some(Fault::LoggedOut));
    assert_eq!(
        engine.session(&w.browser).await,
        Err(ActionError::AuthRequired)
    );
    w.sandbox.set_fault(Some(Fault::RateLimit));
    let post = job(1, Kind::Post, "limited", None);
    engine.prepare(&w.browser, &post).await.expect("prepare");
    match engine.publish(&w.browser, &post).await {
        Err(ActionError::RateLimited { reset: Some(reset) }) => assert!(reset > SystemTime::now()),
        other => panic!("expected a rate limit with its reset time, got {other:?}"),
    }
    assert!(w.sandbox.posts().is_empty());
    w.browser.shutdown().await;
}

#[test]
fn executor_demo_publishes_everything_once_and_exits_zero() {
    let profile = Profile::new("demo");
    let (code, output) = run(
        &mut command(&profile.dir, &["demo"]),
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "{output}");
    assert!(
        output.lines().filter(|l| is_tick_line(l)).count() >= 1,
        "tick lines shown: {output}"
    );
    assert!(
        output
            .lines()
            .filter(|l| is_tick_line(l))
            .all(|l| l.contains(" pages=1 ")),
        "{output}"
    );
    assert!(
        output.contains("progress: 8/8 published and verified"),
        "{output}"
    );
    assert!(
        output.contains("every post exactly once: yes; every tick pages=1: yes"),
        "{output}"
    );
    assert!(
        output.contains("STOP switch triggered - exiting gracefully..."),
        "{output}"
    );
    assert!(output.contains("demo PASSED"), "{output}");
    assert!(
        executor::browser::managed::leftovers(&profile.path("demo/chrome-profile"), &[]).is_empty(),
        "nothing left running"
    );
}
