//! Sites against real Chromium and the sandbox: the engine publishes exactly what was written,
//! reads the new id from the site's own answer, finds posts again, and survives the faults.

mod common;

use common::*;
use executor::browser::{Browser, BrowserConfig};
use executor::jobs::{Job, JobState, Kind};
use executor::sandbox::{Fault, Sandbox};
use executor::sites::{engine::SiteEngine, SiteDefinition};
use executor::sites::{ActionError, Lookup, Site};
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
    world_as(profile, fault, executor::sandbox::HANDLE).await
}

/// [`world`], logged in as `user`.
pub async fn world_as(profile: &Profile, fault: Option<Fault>, user: &str) -> World {
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
    log_in_as(&browser, &url, user).await;
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
        attempted_at: None,
    }
}

fn engine(site: &str, url: &str) -> SiteEngine {
    SiteEngine::new(SiteDefinition::load(site).expect("site"), Some(url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_publishes_exactly_what_was_written_and_finds_it_again() {
    let profile = Profile::new("engine");
    let w = world(&profile, None).await;
    // When the attempts began (with the lanes' margin), and an older post of the account: on a
    // timeline that never says it is complete (x.com), that is what proves a post absent.
    let since = SystemTime::now() - Duration::from_secs(120);
    w.sandbox.publish_at(
        "from last week",
        None,
        executor::sandbox::HANDLE,
        SystemTime::now() - Duration::from_secs(7 * 86_400),
    );
    for site in ["sandbox", "x"] {
        let engine = engine(site, &w.url);
        let session = engine.session(&w.browser).await.expect("logged in");
        let account = session.account.as_deref();
        assert_eq!(account, Some(executor::sandbox::HANDLE));
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
                .find(&w.browser, &post, account, since)
                .await
                .expect("find");
            let Lookup::Found(found) = found else {
                panic!("not found: {found:?}")
            };
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
            let found = engine
                .find(&w.browser, &reply, account, since)
                .await
                .expect("find");
            let Lookup::Found(found) = found else {
                panic!("reply not found: {found:?}")
            };
            assert_eq!(found.post_id, answered.post_id);
        }
        let missing = job(999, Kind::Post, "never published", None);
        assert_eq!(
            engine.find(&w.browser, &missing, account, since).await.ok(),
            Some(Lookup::NotFound),
            "{site}"
        );
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

// ---------------------------------------------------------------------------------------------
// Who is logged in, and lookups that page back to the attempt (a fleet of accounts).
// ---------------------------------------------------------------------------------------------

/// Publishes `text` through the engine as whoever the browser is logged in as.
async fn publish_through(engine: &SiteEngine, w: &World, job: &Job) -> String {
    engine.prepare(&w.browser, job).await.expect("prepare");
    let published = engine.publish(&w.browser, job).await.expect("publish");
    published.post_id.expect("an id")
}

/// `n` posts by `author`, newer than anything before them.
fn newer_posts(sandbox: &Sandbox, author: &str, n: usize) {
    for i in 0..n {
        sandbox.publish(&format!("{author}'s newer post {i}"), None, author);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_names_the_logged_in_user_who_authors_what_is_published() {
    let profile = Profile::new("engine-session");
    let w = world_as(&profile, None, "bob").await;
    for site in ["sandbox", "x"] {
        let engine = engine(site, &w.url);
        let session = engine.session(&w.browser).await.expect("logged in");
        assert_eq!(session.account.as_deref(), Some("bob"), "{site}");
        let text = format!("bob writes through {site}");
        let id = publish_through(&engine, &w, &job(1, Kind::Post, &text, None)).await;
        let stored = w.sandbox.posts();
        let post = stored.iter().find(|p| p.id == id).expect("stored");
        assert_eq!(
            (post.author.as_str(), post.text.as_str()),
            ("bob", text.as_str())
        );
    }
    let target = w.sandbox.publish("reply to me", None, "someone").id;
    let engine = engine("sandbox", &w.url);
    let id = publish_through(
        &engine,
        &w,
        &job(2, Kind::Reply, "bob replies", Some(&target)),
    )
    .await;
    let reply = w
        .sandbox
        .posts()
        .into_iter()
        .find(|p| p.id == id)
        .expect("stored");
    assert_eq!(reply.author, "bob");
    assert_eq!(reply.in_reply_to.as_deref(), Some(target.as_str()));

    // A definition that does not say where to read the account reports none.
    let mut silent = SiteDefinition::load("sandbox").expect("def");
    silent.session.account = None;
    let session = SiteEngine::new(silent, Some(&w.url))
        .session(&w.browser)
        .await
        .expect("logged in");
    assert_eq!(session.account, None);
    w.browser.shutdown().await;
}

/// x.com's `/home` is both where the session is checked and where a post is written: a post
/// right after the check uses the page the check opened (one load, not two), and only while the
/// page is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_right_after_the_session_check_uses_the_page_the_check_opened() {
    let profile = Profile::new("engine-one-load");
    let w = world(&profile, None).await;
    let engine = engine("sandbox", &w.url);
    let before = w.sandbox.home_loads();
    engine.session(&w.browser).await.expect("logged in");
    let id = publish_through(&engine, &w, &job(1, Kind::Post, "one load", None)).await;
    assert!(w.sandbox.posts().iter().any(|p| p.id == id));
    assert_eq!(
        w.sandbox.home_loads(),
        before + 1,
        "checked and written on one load"
    );

    // The page moved away after the check: the post opens its page again.
    engine.session(&w.browser).await.expect("logged in");
    w.browser.park().await.expect("park");
    publish_through(&engine, &w, &job(2, Kind::Post, "moved away", None)).await;
    assert_eq!(w.sandbox.home_loads(), before + 3);

    // Used once: a second post after one check opens the page afresh.
    engine.session(&w.browser).await.expect("logged in");
    publish_through(
        &engine,
        &w,
        &job(3, Kind::Post, "first after the check", None),
    )
    .await;
    publish_through(
        &engine,
        &w,
        &job(4, Kind::Post, "second after the check", None),
    )
    .await;
    assert_eq!(w.sandbox.home_loads(), before + 5);
    let texts: Vec<String> = w.sandbox.posts().into_iter().map(|p| p.text).collect();
    for text in [
        "one load",
        "moved away",
        "first after the check",
        "second after the check",
    ] {
        assert_eq!(texts.iter().filter(|t| *t == text).count(), 1, "{text}");
    }
    w.browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_pages_back_past_newer_posts_to_find_the_post() {
    let profile = Profile::new("engine-horizon");
    let w = world_as(&profile, None, "alice").await;
    let since = SystemTime::now() - Duration::from_secs(120);
    for (i, site) in ["sandbox", "x"].into_iter().enumerate() {
        let engine = engine(site, &w.url);
        let text = format!("published before 45 newer posts ({site})");
        let post = job(i as i64, Kind::Post, &text, None);
        let id = publish_through(&engine, &w, &post).await;
        // More than two pages of newer posts: the post is on the third page (sandbox: by the
        // "Show more" cursor; x: by scrolling, with only a window of items kept in the page).
        newer_posts(&w.sandbox, "alice", 45);
        let found = engine
            .find(&w.browser, &post, Some("alice"), since)
            .await
            .expect("find");
        let Lookup::Found(found) = found else {
            panic!("{site}: not found: {found:?}")
        };
        assert_eq!(found.post_id.as_deref(), Some(id.as_str()), "{site}");
    }
    w.browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_old_post_neither_ends_the_search_nor_stalls_scrolling() {
    let profile = Profile::new("engine-pinned");
    let w = world_as(&profile, None, "alice").await;
    let since = SystemTime::now() - Duration::from_secs(120);
    let old = w.sandbox.publish_at(
        "pinned last year",
        None,
        "alice",
        SystemTime::now() - Duration::from_secs(365 * 86_400),
    );
    w.sandbox.pin("alice", &old.id);
    for (i, site) in ["sandbox", "x"].into_iter().enumerate() {
        let engine = engine(site, &w.url);
        let post = job(
            i as i64,
            Kind::Post,
            &format!("below a pinned post ({site})"),
            None,
        );
        let id = publish_through(&engine, &w, &post).await;
        // The post is on the second page; the first item of the first page is a year old.
        newer_posts(&w.sandbox, "alice", 25);
        let found = engine
            .find(&w.browser, &post, Some("alice"), since)
            .await
            .expect("find");
        assert_eq!(
            found,
            Lookup::Found(executor::sites::Published {
                post_id: Some(id.clone()),
                url: Some(format!("{}/i/status/{id}", w.url)),
            }),
            "{site}"
        );
    }
    w.browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_that_ends_early_is_incomplete_never_not_found() {
    let profile = Profile::new("engine-short");
    let w = world_as(&profile, None, "alice").await;
    let since = SystemTime::now() - Duration::from_secs(120);
    let engine_sandbox = engine("sandbox", &w.url);
    let post = job(1, Kind::Post, "older than the first page", None);
    publish_through(&engine_sandbox, &w, &post).await;
    newer_posts(&w.sandbox, "alice", 25);
    let missing = job(2, Kind::Post, "never published", None);
    w.sandbox.set_fault(Some(Fault::ShortTimeline));
    for site in ["sandbox", "x"] {
        let engine = engine(site, &w.url);
        for job in [&post, &missing] {
            let lookup = engine
                .find(&w.browser, job, Some("alice"), since)
                .await
                .expect("find");
            let Lookup::Incomplete { reason } = lookup else {
                panic!(
                    "{site}, {:?}: expected Incomplete, got {lookup:?}",
                    job.text
                )
            };
            assert!(
                reason.contains("after 1 page(s) (20 item(s)") && reason.contains("not proven"),
                "{site}: {reason}"
            );
        }
    }
    // Back to a whole timeline: the same lookups conclude.
    w.sandbox.set_fault(None);
    let lookup = engine_sandbox
        .find(&w.browser, &post, Some("alice"), since)
        .await
        .expect("find");
    assert!(matches!(lookup, Lookup::Found(_)), "{lookup:?}");
    let lookup = engine_sandbox
        .find(&w.browser, &missing, Some("alice"), since)
        .await
        .expect("find");
    assert_eq!(lookup, Lookup::NotFound);
    w.browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_found_only_when_the_search_reached_past_the_attempt() {
    let profile = Profile::new("engine-notfound");
    let w = world_as(&profile, None, "alice").await;
    let since = SystemTime::now() - Duration::from_secs(120);
    let missing = job(1, Kind::Post, "never published", None);
    // The same text by another account, and by alice before the attempt: neither is the post.
    w.sandbox.publish("never published", None, "bob");
    w.sandbox.publish_at(
        "never published",
        None,
        "alice",
        SystemTime::now() - Duration::from_secs(86_400),
    );
    newer_posts(&w.sandbox, "alice", 25);

    // The older post is on the second page: both mechanisms reach it, and it proves absence.
    for site in ["sandbox", "x"] {
        let lookup = engine(site, &w.url)
            .find(&w.browser, &missing, Some("alice"), since)
            .await
            .expect("find");
        assert_eq!(lookup, Lookup::NotFound, "{site}");
    }

    // A young account (nothing older than the attempt): the sandbox says its timeline is
    // complete, so absence is proven; x.com never says so, so the x definition cannot conclude.
    newer_posts(&w.sandbox, "young", 3);
    let lookup = engine("sandbox", &w.url)
        .find(&w.browser, &missing, Some("young"), since)
        .await
        .expect("find");
    assert_eq!(lookup, Lookup::NotFound);
    let lookup = engine("x", &w.url)
        .find(&w.browser, &missing, Some("young"), since)
        .await
        .expect("find");
    assert!(matches!(lookup, Lookup::Incomplete { .. }), "{lookup:?}");

    // Replies: the sandbox shows all of a post's replies and says so.
    let target = w.sandbox.publish("a post with replies", None, "someone").id;
    w.sandbox
        .publish("never published", Some(target.clone()), "bob");
    let reply = job(2, Kind::Reply, "never published", Some(&target));
    let lookup = engine("sandbox", &w.url)
        .find(&w.browser, &reply, Some("alice"), since)
        .await
        .expect("find");
    assert_eq!(lookup, Lookup::NotFound, "bob's reply is not alice's");
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

// ---------------------------------------------------------------------------------------------
// The daemon, acting through the engine on the sandbox.
// ---------------------------------------------------------------------------------------------

use common::rig::{log_in_as, logged_in_chrome, LoggedInChrome};

struct SiteRig {
    sandbox: Sandbox,
    url: String,
    chrome: LoggedInChrome,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn site(profile: &Profile) -> SiteRig {
    let sandbox = Sandbox::new(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, _task) = sandbox
        .serve(([127, 0, 0, 1], 0).into(), async move {
            let _ = stopped.await;
        })
        .await
        .expect("sandbox");
    let url = format!("http://{addr}");
    let chrome = logged_in_chrome(profile, &url).await;
    SiteRig {
        sandbox,
        url,
        chrome,
        _stop: stop,
    }
}

fn site_flags(site: &SiteRig, extra: &[(&'static str, &str)]) -> executor::settings::Layer {
    let mut flags = executor::settings::Layer::default();
    let port = site.chrome.port.to_string();
    for (key, value) in [
        ("browser_mode", "cdp"),
        ("cdp_port", port.as_str()),
        ("site", "sandbox"),
        ("site_url", site.url.as_str()),
        ("tick_interval", "300ms"),
        ("backoff", "200ms"),
        ("max_failures", "1000"),
        ("posts_per_hour", "1000"),
        ("replies_per_hour", "1000"),
        ("min_gap", "0s"),
    ] {
        flags.flag(key, Some(value.to_string()));
    }
    for (key, value) in extra {
        flags.flag(key, Some(value.to_string()));
    }
    flags
}

struct RunningDaemon {
    task: tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    shutdown: executor::stop::Shutdown,
}

impl RunningDaemon {
    async fn stop(self) -> executor::daemon::Exit {
        self.shutdown
            .trigger(executor::stop::StopReason::Requested("test".into()));
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops")
            .expect("join")
            .expect("run")
    }
}

fn start_daemon(
    profile: &Profile,
    site: &SiteRig,
    extra: &[(&'static str, &str)],
    answer: Duration,
) -> RunningDaemon {
    let settings =
        executor::settings::resolve(Some(profile.dir.clone()), &site_flags(site, extra), &|_| {
            None
        })
        .expect("settings");
    let engine = SiteEngine::new(
        SiteDefinition::load("sandbox").expect("def"),
        Some(&site.url),
    )
    .with_answer_timeout(answer);
    let options = executor::daemon::RunOptions {
        logger: executor::log::Logger::quiet(settings.log_format, Some(&settings.log_path())),
        site: Some(Arc::new(engine)),
        work: None,
        browser: None,
    };
    let shutdown = executor::stop::Shutdown::new();
    let task = tokio::spawn(executor::daemon::run(settings, shutdown.clone(), options));
    RunningDaemon { task, shutdown }
}

async fn store_of(profile: &Profile) -> Arc<dyn executor::store::Store> {
    executor::store::open(&executor::settings::DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("store")
}

async fn enqueue(profile: &Profile, kind: Kind, text: &str, reply_to: Option<&str>) {
    let job = executor::jobs::NewJob {
        kind,
        text: text.into(),
        reply_to: reply_to.map(str::to_string),
        account: String::new(),
        idempotency_key: None,
        not_before: SystemTime::now(),
        max_attempts: 5,
    };
    store_of(profile)
        .await
        .job_enqueue(&job, SystemTime::now())
        .await
        .expect("enqueue");
}

async fn count_in(profile: &Profile, state: &str) -> usize {
    store_of(profile)
        .await
        .job_list(&executor::jobs::JobQuery {
            states: vec![state.into()],
            ..Default::default()
        })
        .await
        .expect("list")
        .len()
}

async fn events_of(profile: &Profile, kind: &str) -> Vec<serde_json::Value> {
    store_of(profile)
        .await
        .event_list(&executor::store::EventQuery {
            types: vec![kind.into()],
            ..Default::default()
        })
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_data)
        .collect()
}

fn copies(sandbox: &Sandbox, text: &str) -> usize {
    sandbox
        .posts()
        .iter()
        .filter(|p| p.text == text && p.author == executor::sandbox::HANDLE)
        .count()
}

/// Every post of `author`, whatever its text: a second publish with another text (or a garbled
/// one) is caught too.
fn everything_by(sandbox: &Sandbox, author: &str) -> usize {
    sandbox
        .posts()
        .iter()
        .filter(|p| p.author == author)
        .count()
}

const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_publishes_20_posts_and_10_replies_each_exactly_once_as_written() {
    let profile = Profile::new("site-30");
    let site = site(&profile).await;
    let targets: Vec<String> = (0..2)
        .map(|i| {
            site.sandbox
                .publish(&format!("target {i}"), None, "someone")
                .id
        })
        .collect();
    let mut texts = Vec::new();
    for i in 0..20 {
        let text = format!("post {i}: {}", TRICKY[i % TRICKY.len()]);
        enqueue(&profile, Kind::Post, &text, None).await;
        texts.push((text, None));
    }
    for i in 0..10 {
        let text = format!("reply {i}: {}", TRICKY[i % TRICKY.len()]);
        let target = targets[i % 2].clone();
        enqueue(&profile, Kind::Reply, &text, Some(&target)).await;
        texts.push((text, Some(target)));
    }
    let daemon = start_daemon(&profile, &site, &[], executor::sites::engine::ANSWER);
    eventually("all 30 published", Duration::from_secs(180), || async {
        count_in(&profile, "succeeded").await == 30
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);

    let posts = site.sandbox.posts();
    for (text, target) in &texts {
        let matching: Vec<_> = posts.iter().filter(|p| &p.text == text).collect();
        assert_eq!(matching.len(), 1, "{text:?} published exactly once");
        assert_eq!(&matching[0].in_reply_to, target);
    }
    let ticks = tick_lines(&profile.path("executor.log"));
    assert!(!ticks.is_empty());
    assert!(
        ticks.iter().all(|l| field(l, "pages") == Some("1")),
        "{ticks:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popups_are_closed_and_the_work_goes_on() {
    let profile = Profile::new("site-popups");
    let site = site(&profile).await;
    site.sandbox.set_fault(Some(Fault::Popups));
    for i in 0..3 {
        enqueue(&profile, Kind::Post, &format!("despite popups {i}"), None).await;
    }
    let daemon = start_daemon(&profile, &site, &[], executor::sites::engine::ANSWER);
    eventually("3 published", LONG, || async {
        count_in(&profile, "succeeded").await == 3
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    for i in 0..3 {
        assert_eq!(copies(&site.sandbox, &format!("despite popups {i}")), 1);
    }
    assert!(
        !events_of(&profile, "EXECUTOR_PAGE_CAP_ENFORCED")
            .await
            .is_empty(),
        "strays were closed"
    );
    assert!(tick_lines(&profile.path("executor.log"))
        .iter()
        .all(|l| field(l, "pages") == Some("1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_page_caps_the_tick_and_the_job_is_retried_and_published_once() {
    let profile = Profile::new("site-hang");
    let site = site(&profile).await;
    let target = site
        .sandbox
        .publish("a post to reply to", None, "someone")
        .id;
    site.sandbox.set_fault(Some(Fault::Hang));
    enqueue(
        &profile,
        Kind::Reply,
        "a reply through a hanging page",
        Some(&target),
    )
    .await;
    let daemon = start_daemon(
        &profile,
        &site,
        &[("tick_timeout", "3s")],
        executor::sites::engine::ANSWER,
    );
    eventually("a capped tick", LONG, || async {
        !events_of(&profile, "EXECUTOR_TICK_CAPPED").await.is_empty()
    })
    .await;
    site.sandbox.set_fault(None);
    eventually("published", LONG, || async {
        count_in(&profile, "succeeded").await == 1
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert_eq!(copies(&site.sandbox, "a reply through a hanging page"), 1);
    let job = store_of(&profile)
        .await
        .job_list(&Default::default())
        .await
        .expect("list")
        .remove(0);
    assert!(job.attempts >= 2, "retried after the capped tick: {job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_out_means_auth_required_and_nothing_claimed_until_the_login_is_back() {
    let profile = Profile::new("site-auth");
    let site = site(&profile).await;
    site.sandbox.set_fault(Some(Fault::LoggedOut));
    enqueue(&profile, Kind::Post, "after the login", None).await;
    let daemon = start_daemon(&profile, &site, &[], executor::sites::engine::ANSWER);
    eventually("AUTH_REQUIRED", LONG, || async {
        profile.path("AUTH_REQUIRED").exists()
    })
    .await;
    let log = profile.path("executor.log");
    let seen = tick_lines(&log).len();
    eventually("three more ticks", LONG, || async {
        tick_lines(&log).len() >= seen + 3
    })
    .await;
    let jobs = store_of(&profile)
        .await
        .job_list(&Default::default())
        .await
        .expect("list");
    assert_eq!(
        (jobs[0].state.name(), jobs[0].attempts),
        ("queued", 0),
        "nothing claimed while logged out"
    );
    assert_eq!(
        events_of(&profile, "EXECUTOR_AUTH_REQUIRED").await.len(),
        1,
        "one event, no spinning"
    );

    site.sandbox.set_fault(None); // the operator logged in again
    eventually("published", LONG, || async {
        count_in(&profile, "succeeded").await == 1
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert!(!profile.path("AUTH_REQUIRED").exists());
    assert_eq!(copies(&site.sandbox, "after the login"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_posting_lane_and_replies_go_on() {
    let profile = Profile::new("site-429");
    let site = site(&profile).await;
    let target = site.sandbox.publish("reply to me", None, "someone").id;
    site.sandbox.set_fault(Some(Fault::RateLimit));
    for i in 0..2 {
        enqueue(&profile, Kind::Post, &format!("limited post {i}"), None).await;
        enqueue(
            &profile,
            Kind::Reply,
            &format!("free reply {i}"),
            Some(&target),
        )
        .await;
    }
    let daemon = start_daemon(&profile, &site, &[], executor::sites::engine::ANSWER);
    eventually("replies published", LONG, || async {
        count_in(&profile, "succeeded").await == 2
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert_eq!(
        copies(&site.sandbox, "free reply 0") + copies(&site.sandbox, "free reply 1"),
        2
    );
    assert_eq!(
        copies(&site.sandbox, "limited post 0") + copies(&site.sandbox, "limited post 1"),
        0
    );
    assert_eq!(events_of(&profile, "RATE_LIMIT_DETECTED").await.len(), 1);
    let breaker = store_of(&profile)
        .await
        .lane_breaker("", Kind::Post)
        .await
        .expect("breaker");
    assert!(
        breaker.is_some_and(|until| until > SystemTime::now()),
        "paused until the site's reset time"
    );
}

/// Every counter of actions and rate limits on `/metrics` equals the events stored for them —
/// including those written inside the store's transactions, which never pass the event sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_and_rate_limit_counters_equal_the_stored_events() {
    let profile = Profile::new("site-counters");
    let site = site(&profile).await;
    let target = site.sandbox.publish("reply to me", None, "someone").id;
    // A 429 on the first post: the posting lane pauses, the outcome is unknown, then settled.
    site.sandbox.set_fault(Some(Fault::RateLimit));
    enqueue(&profile, Kind::Post, "counted post", None).await;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = start_daemon(
        &profile,
        &site,
        &[("metrics_addr", addr.as_str())],
        executor::sites::engine::ANSWER,
    );
    eventually("the 429 recorded", LONG, || async {
        !events_of(&profile, "RATE_LIMIT_DETECTED").await.is_empty()
    })
    .await;
    site.sandbox.set_fault(None);
    // Replies go on: two that publish, one whose target does not exist (fails before the click).
    enqueue(&profile, Kind::Reply, "counted reply 1", Some(&target)).await;
    enqueue(&profile, Kind::Reply, "counted reply 2", Some(&target)).await;
    enqueue(&profile, Kind::Reply, "reply to nothing", Some("999999")).await;
    eventually("replies published and the bad one failed", LONG, || async {
        count_in(&profile, "succeeded").await == 2
            && !events_of(&profile, "POST_FAILED").await.is_empty()
    })
    .await;
    let (status, text) = http_get(port, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(daemon.stop().await.code(), 0);
    let stored = |kinds: &'static [&'static str]| {
        let profile = &profile;
        async move {
            let mut n = 0;
            for kind in kinds {
                n += events_of(profile, kind).await.len();
            }
            n as f64
        }
    };
    let counted = |name: &str| metric(&text, name);
    let pairs = [
        (
            counted("executor_actions_total{outcome=\"succeeded\"}"),
            stored(&["POST_SUCCESS", "REPLY_SUCCESS"]).await,
        ),
        (
            counted("executor_actions_total{outcome=\"failed\"}"),
            stored(&["POST_FAILED"]).await,
        ),
        (
            counted("executor_actions_total{outcome=\"uncertain\"}"),
            stored(&["JOB_OUTCOME_UNKNOWN"]).await,
        ),
        (
            counted("executor_rate_limits_total"),
            stored(&["RATE_LIMIT_DETECTED"]).await,
        ),
    ];
    for (counter, events) in pairs {
        assert!(events >= 1.0, "each kind happened: {text}");
        assert_eq!(counter, events, "{text}");
    }
}

async fn lost_answer_is_verified_not_republished(fault: Fault, name: &str) {
    lost_answer_of(fault, name, &format!("answer {name}")).await;
}

async fn lost_answer_of(fault: Fault, name: &str, text: &str) {
    let profile = Profile::new(name);
    let site = site(&profile).await;
    site.sandbox.set_fault(Some(fault));
    enqueue(&profile, Kind::Post, text, None).await;
    // The engine gives up waiting after 2 s: the outcome is unknown.
    let daemon = start_daemon(&profile, &site, &[], Duration::from_secs(2));
    eventually("outcome unknown", LONG, || async {
        !events_of(&profile, "JOB_OUTCOME_UNKNOWN").await.is_empty()
    })
    .await;
    found_again_and_published_once(&profile, &site, daemon, text, 0).await;
}

/// The uncertain job is settled by the lookup finding the post: succeeded, on the site once.
/// `others`: the account's posts the test put on the site itself.
async fn found_again_and_published_once(
    profile: &Profile,
    site: &SiteRig,
    daemon: RunningDaemon,
    text: &str,
    others: usize,
) {
    eventually("verified and succeeded", LONG, || async {
        count_in(profile, "succeeded").await == 1
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert_eq!(copies(&site.sandbox, text), 1, "never published twice");
    assert_eq!(
        everything_by(&site.sandbox, executor::sandbox::HANDLE),
        1 + others,
        "nothing else published under the account either"
    );
    let rescued = events_of(profile, "JOB_RESCUED").await;
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0]["found"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_is_uncertain_then_verified_never_published_twice() {
    lost_answer_is_verified_not_republished(Fault::LateAnswer, "site-late").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_is_uncertain_then_verified_never_published_twice() {
    lost_answer_is_verified_not_republished(Fault::NoAnswer, "site-noanswer").await;
}

/// The daemon as a process (so it can be `kill -9`ed), attached to the test's logged-in browser.
fn daemon_process(profile: &Profile, site: &SiteRig) -> Running {
    let port = site.chrome.port.to_string();
    let mut cmd = command(
        &profile.dir,
        &[
            "--browser-mode",
            "cdp",
            "--cdp-port",
            &port,
            "--site",
            "sandbox",
            "--site-url",
            &site.url,
            "--tick-interval",
            "300ms",
            "--backoff",
            "200ms",
            "--posts-per-hour",
            "1000",
            "--min-gap",
            "0s",
            "daemon",
        ],
    );
    cmd.env_remove("EXECUTOR_SITE");
    spawn(cmd)
}

async fn kill_9_at(
    point: &str,
    fault: Fault,
    kind: Kind,
    killed_when: impl Fn(&Profile, &Sandbox, &str) -> bool,
) {
    let profile = Profile::new(&format!("kill9-{point}"));
    let site = site(&profile).await;
    let text = format!("survives kill -9 {point}");
    let target = (kind == Kind::Reply).then(|| {
        site.sandbox
            .publish("a post to reply to", None, "someone")
            .id
    });
    enqueue(&profile, kind, &text, target.as_deref()).await;
    site.sandbox.set_fault(Some(fault));
    let mut daemon = daemon_process(&profile, &site);
    let profile_ref = &profile;
    eventually(&format!("the moment: {point}"), LONG, || async {
        killed_when(profile_ref, &site.sandbox, &text)
    })
    .await;
    daemon.signal(libc::SIGKILL);
    let _ = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(10)));

    site.sandbox.set_fault(None);
    let mut again = daemon_process(&profile, &site);
    eventually("published after the restart", LONG, || async {
        count_in(&profile, "succeeded").await == 1
    })
    .await;
    again.signal(libc::SIGTERM);
    let _ = tokio::task::block_in_place(|| again.wait_exit(Duration::from_secs(15)));
    assert_eq!(
        copies(&site.sandbox, &text),
        1,
        "exactly once after a kill -9 {point}"
    );
    assert_eq!(
        everything_by(&site.sandbox, executor::sandbox::HANDLE),
        1,
        "nothing else published under the account either"
    );
}

fn job_state_is(profile: &Profile, state: &str) -> bool {
    let conn = match rusqlite::Connection::open(profile.db()) {
        Ok(conn) => conn,
        Err(_) => return false,
    };
    conn.query_row("SELECT COUNT(*) FROM jobs WHERE state = ?1", [state], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_before_the_click_then_restart_publishes_once() {
    // Pages answer slowly: the job is claimed and its page loading when the daemon dies. A
    // reply, whose page (its target's) is opened after the claim; a post is written on the page
    // the session check opened, a moment after the claim.
    kill_9_at(
        "before-click",
        Fault::Slow,
        Kind::Reply,
        |profile, sandbox, text| job_state_is(profile, "claimed") && copies(sandbox, text) == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_just_after_the_click_then_restart_publishes_once() {
    // The post is on the site the moment the daemon dies; its answer never came.
    kill_9_at(
        "after-click",
        Fault::NoAnswer,
        Kind::Post,
        |_, sandbox, text| copies(sandbox, text) == 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_waiting_for_the_answer_then_restart_publishes_once() {
    kill_9_at(
        "awaiting-answer",
        Fault::LateAnswer,
        Kind::Post,
        |profile, sandbox, text| copies(sandbox, text) == 1 && job_state_is(profile, "attempting"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_never_returns_caps_the_tick_and_the_job_is_published_once_afterwards() {
    let profile = Profile::new("site-script-hang");
    let site = site(&profile).await;
    site.sandbox.set_fault(Some(Fault::ScriptHang));
    enqueue(&profile, Kind::Post, "after a stuck script", None).await;
    let daemon = start_daemon(
        &profile,
        &site,
        &[("tick_timeout", "3s")],
        executor::sites::engine::ANSWER,
    );
    eventually("a capped tick", LONG, || async {
        !events_of(&profile, "EXECUTOR_TICK_CAPPED").await.is_empty()
    })
    .await;
    let capped = events_of(&profile, "EXECUTOR_TICK_CAPPED").await;
    assert!(
        capped[0]["halt_step"].is_string(),
        "the halt step is recorded: {capped:?}"
    );
    site.sandbox.set_fault(None);
    eventually("published", LONG, || async {
        count_in(&profile, "succeeded").await == 1
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert_eq!(copies(&site.sandbox, "after a stuck script"), 1);
    let ticks = tick_lines(&profile.path("executor.log"));
    assert!(ticks
        .iter()
        .any(|l| field(l, "last_error").is_some_and(|e| e.contains("runtime cap"))));
    assert!(
        ticks.iter().all(|l| field(l, "pages") == Some("1")),
        "{ticks:#?}"
    );
}

/// The daemon publishes `text` and its answer never comes; while the engine still waits for it
/// (2 s), `newer` posts of the same account are published on top of it.
async fn answer_lost_then_newer_posts(
    name: &str,
    text: &str,
    newer: usize,
) -> (Profile, SiteRig, RunningDaemon) {
    let profile = Profile::new(name);
    let site = site(&profile).await;
    site.sandbox.set_fault(Some(Fault::NoAnswer));
    enqueue(&profile, Kind::Post, text, None).await;
    let daemon = start_daemon(&profile, &site, &[], Duration::from_secs(2));
    eventually("on the site", LONG, || async {
        copies(&site.sandbox, text) == 1
    })
    .await;
    newer_posts(&site.sandbox, executor::sandbox::HANDLE, newer);
    (profile, site, daemon)
}

/// The rescue horizon through the daemon: the answer is lost, and by the time the outcome is
/// looked up the post is two pages down the account's timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_found_again_behind_two_pages_of_newer_posts() {
    let text = "published, then buried under 45 newer posts";
    let (profile, site, daemon) = answer_lost_then_newer_posts("site-horizon", text, 45).await;
    site.sandbox.set_fault(None);
    found_again_and_published_once(&profile, &site, daemon, text, 45).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_too_short_to_reach_the_attempt_keeps_the_job_uncertain_and_publishes_nothing_again(
) {
    let text = "published, then out of reach";
    let (profile, site, daemon) = answer_lost_then_newer_posts("site-short", text, 25).await;
    site.sandbox.set_fault(Some(Fault::ShortTimeline));
    eventually("the lookup could not reach back", LONG, || async {
        !events_of(&profile, "JOB_LOOKUP_INCOMPLETE")
            .await
            .is_empty()
    })
    .await;
    let log = profile.path("executor.log");
    let seen = tick_lines(&log).len();
    eventually("three more ticks", LONG, || async {
        tick_lines(&log).len() >= seen + 3
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert_eq!(count_in(&profile, "uncertain").await, 1, "still uncertain");
    assert_eq!(
        copies(&site.sandbox, text),
        1,
        "never published again blind"
    );
    let incomplete = events_of(&profile, "JOB_LOOKUP_INCOMPLETE").await;
    let reason = incomplete[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no older page") && reason.contains("not proven"),
        "{reason}"
    );
}

// ---------------------------------------------------------------------------------------------
// Texts as the site publishes and shows them: paragraphs, lists, links.
// ---------------------------------------------------------------------------------------------

/// Shapes of real posts; `{n}` makes each text unique without touching its ends.
const SHAPES: &[&str] = &[
    "Paragraph one ({n}).\n\nParagraph two.",
    "Three things ({n}):\n- one\n- two\n- three",
    "Steps {n}:\n1. open\n2. type\n\n3. publish, after a blank line",
    "Ends with a newline {n}\n",
    "Ends with blank lines {n}\n\n\n",
    "  Leading spaces {n}",
    "    indented code {n}\n    its second line",
    "Two blank lines {n}\n\n\nbetween paragraphs",
    "\n\nStarts with blank lines {n}",
    "Spaces at line ends {n}   \nnext line  \n\n  - an indented item\n  - another\n\nDone. 🎉\n",
];

fn real_posts() -> Vec<String> {
    (0..30)
        .map(|n| SHAPES[n % SHAPES.len()].replace("{n}", &format!("#{n}")))
        .collect()
}

/// A browser attached to the Chromium on `port` (as the daemon attaches to it).
async fn attach(profile: &Profile, port: u16) -> Browser {
    let mut flags = executor::settings::Layer::default();
    flags.flag("cdp_port", Some(port.to_string()));
    let settings = executor::settings::resolve(Some(profile.dir.clone()), &flags, &|_| None)
        .expect("settings");
    let browser = Browser::new(BrowserConfig::from_settings(&settings), Arc::new(|_| {}));
    browser.connect().await.expect("attach");
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_posts_with_paragraphs_lists_and_edge_spaces_are_each_published_once_as_the_site_shows_them(
) {
    let profile = Profile::new("site-paragraphs");
    let site = site(&profile).await;
    let since = SystemTime::now() - Duration::from_secs(120);
    let texts = real_posts();
    for text in &texts {
        enqueue(&profile, Kind::Post, text, None).await;
    }
    let daemon = start_daemon(&profile, &site, &[], executor::sites::engine::ANSWER);
    eventually("all 30 published", Duration::from_secs(180), || async {
        count_in(&profile, "succeeded").await == 30
    })
    .await;
    assert_eq!(daemon.stop().await.code(), 0);
    assert_eq!(
        count_in(&profile, "dead").await + count_in(&profile, "failed").await,
        0
    );

    // The sandbox publishes what was typed, less trailing white space (its rule, and what
    // sites/sandbox.toml says): paragraphs, blank lines and leading spaces as typed.
    let posts = site.sandbox.posts();
    assert_eq!(posts.len(), 30, "nothing published twice");
    let browser = attach(&profile, site.chrome.port).await;
    let engines = [engine("sandbox", &site.url), engine("x", &site.url)];
    for (i, text) in texts.iter().enumerate() {
        let shown = text.trim_end();
        let matching: Vec<_> = posts.iter().filter(|p| p.text == shown).collect();
        assert_eq!(
            matching.len(),
            1,
            "{text:?} published once, as the site shows it; the site has {:?}",
            posts.iter().map(|p| &p.text).collect::<Vec<_>>()
        );
        // And a lookup recognises it on the page, with either way of paging.
        for engine in &engines {
            let lookup = engine
                .find(
                    &browser,
                    &job(i as i64, Kind::Post, text, None),
                    Some("demo"),
                    since,
                )
                .await
                .expect("find");
            let Lookup::Found(found) = lookup else {
                panic!(
                    "{} did not find {text:?}: {lookup:?}",
                    engine.definition().name
                )
            };
            assert_eq!(found.post_id.as_deref(), Some(matching[0].id.as_str()));
        }
    }
    browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_two_links_is_found_again_as_the_site_rewrites_them() {
    let profile = Profile::new("engine-links");
    let w = world_as(&profile, None, "alice").await;
    let since = SystemTime::now() - Duration::from_secs(120);
    for (i, site) in ["sandbox", "x"].into_iter().enumerate() {
        let engine = engine(site, &w.url);
        let text = format!(
            "Two links ({site}): https://github.com/rust-lang/rust/issues/12345 and \
             https://example.com/a?b=c.\n\nA second paragraph."
        );
        let post = job(i as i64, Kind::Post, &text, None);
        let id = publish_through(&engine, &w, &post).await;
        assert_eq!(
            w.sandbox.posts().last().map(|p| p.text.clone()),
            Some(text.clone())
        );
        let found = engine
            .find(&w.browser, &post, Some("alice"), since)
            .await
            .expect("find");
        assert!(
            matches!(&found, Lookup::Found(p) if p.post_id.as_deref() == Some(id.as_str())),
            "{site}: {found:?}"
        );
        // The page shows t.co links: without the definition's link rule the post is not
        // recognised, and a post with another address is not this one.
        let mut literal = SiteDefinition::load(site).expect("def");
        literal.text.links = None;
        let lookup = SiteEngine::new(literal, Some(&w.url))
            .find(&w.browser, &post, Some("alice"), since)
            .await
            .expect("find");
        assert!(!matches!(lookup, Lookup::Found(_)), "{site}: {lookup:?}");
        let other = job(9, Kind::Post, &text.replace("b=c", "b=d"), None);
        let lookup = engine
            .find(&w.browser, &other, Some("alice"), since)
            .await
            .expect("find");
        assert!(!matches!(lookup, Lookup::Found(_)), "{site}: {lookup:?}");
    }
    w.browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_two_links_whose_answer_is_lost_is_found_again_and_published_once() {
    lost_answer_of(
        Fault::NoAnswer,
        "site-links",
        "Both links: https://github.com/rust-lang/rust/issues/12345 and https://example.com/x",
    )
    .await;
}

/// `--site FILE`: a site definition of the operator's own, loaded without recompiling, drives
/// the daemon as the built-in one does (here: the sandbox's, saved under another name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_site_file_given_with_site_drives_the_daemon() {
    let profile = Profile::new("site-file");
    let site = site(&profile).await;
    let file = profile.path("my-site.toml");
    let definition =
        include_str!("../sites/sandbox.toml").replace("name = \"sandbox\"", "name = \"my-site\"");
    assert!(
        definition.contains("name = \"my-site\""),
        "the copy is renamed"
    );
    std::fs::write(&file, definition).expect("site file");
    enqueue(&profile, Kind::Post, "through my own site file", None).await;
    let database = format!("sqlite://{}", profile.db().display());
    let file = file.display().to_string();
    let mut daemon = common::rig::site_daemon(
        &profile,
        &site.chrome,
        &site.url,
        &database,
        &["--site", &file],
    );
    eventually("published through the file's definition", LONG, || async {
        count_in(&profile, "succeeded").await == 1
    })
    .await;
    assert_eq!(copies(&site.sandbox, "through my own site file"), 1);
    daemon.signal(libc::SIGTERM);
    let status = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(15)));
    assert_eq!(status.code(), Some(0));
}
