//! `executor demo`: the whole system end to end on this machine, with nothing to configure.
//!
//! The sandbox site in-process, the managed headless browser (logged in once through the
//! sandbox's login page, as an operator would with `executor chrome --headed`), a SQLite store, a
//! handful of posts and replies, and the daemon attached to that browser with a short tick. It
//! runs until every job is published and checked on the site, pulls the STOP switch, then prints
//! what was published and the proof: every post exactly once, the page-count distribution, the
//! failure rate. Everything runs in `<profile>/demo` (wiped at start) and nothing is left running.

use super::CliError;
use crate::browser::managed::{self, LaunchOptions, Managed};
use crate::browser::{Browser, BrowserConfig};
use crate::daemon::{self, RunOptions};
use crate::events;
use crate::jobs::{JobQuery, Kind, NewJob};
use crate::log::Logger;
use crate::sandbox::Sandbox;
use crate::settings::{self, Layer, Settings};
use crate::sites::{engine::SiteEngine, SiteDefinition};
use crate::stop::Shutdown;
use crate::store::{EventQuery, Store};
use clap::Args;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Give up (STOP, report, exit 1) if the jobs are not all published by then
    #[arg(long, default_value = "90s", value_name = "DURATION")]
    pub timeout: String,
}

const POSTS: &[&str] = &[
    "Hello from executor 👋 — one page, one browser, published exactly once.",
    "Quotes \"double\" and 'single', an ampersand & and a </script> tag, as written.",
    "Two lines:\nthe second one.",
    "Emoji 🎉🚀 and right-to-left: שלום",
    "The fifth and last post of the demo.",
];
/// Replies, each to one of the two seeded posts (by index).
const REPLIES: &[(&str, usize)] = &[
    ("Thanks for posting this!", 0),
    ("Agreed 👍", 0),
    ("A reply to the second post.", 1),
];

struct Cleanup {
    browser: Option<Managed>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(browser) = self.browser.take() {
            browser.terminate(Duration::from_secs(3));
        }
    }
}

fn demo_settings(
    base: &Settings,
    dir: &std::path::Path,
    site_url: &str,
    port: u16,
) -> Result<Settings, String> {
    let mut flags = Layer::default();
    let port = port.to_string();
    for (key, value) in [
        ("browser_mode", "cdp"),
        ("cdp_port", port.as_str()),
        ("site", "sandbox"),
        ("site_url", site_url),
        ("tick_interval", "1s"),
        ("tick_timeout", "60s"),
        ("backoff", "1s,2s,5s"),
        ("max_failures", "10"),
        ("posts_per_hour", "100"),
        ("replies_per_hour", "100"),
        ("min_gap", "0s"),
    ] {
        flags.flag(key, Some(value.to_string()));
    }
    flags.flag(
        "log_format",
        Some(match base.log_format {
            settings::LogFormat::Text => "text".into(),
            settings::LogFormat::Json => "json".into(),
        }),
    );
    // The demo's own settings only: the operator's environment must not redirect it.
    settings::resolve(Some(dir.to_path_buf()), &flags, &|_| None).map_err(|e| e.to_string())
}

pub async fn run(base: &Settings, args: &DemoArgs) -> Result<(), CliError> {
    let timeout = settings::parse_duration(&args.timeout)
        .map_err(|reason| CliError::usage(format!("--timeout={:?}: {reason}", args.timeout)))?;
    match demo(base, timeout).await {
        Ok(true) => Ok(()),
        // The demo printed its verdict (the checklist) itself.
        Ok(false) => Err(CliError::already_reported(super::EXIT_FAILURE)),
        Err(err) => Err(CliError::failure(err)),
    }
}

async fn demo(base: &Settings, timeout: Duration) -> Result<bool, String> {
    let started = Instant::now();
    let dir = base.profile.join("demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    crate::files::create_private_dir(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    crate::outln!(
        "== executor demo: sandbox site + managed headless Chromium + SQLite, in {}",
        dir.display()
    );

    // 1. The sandbox, with two posts by someone else to reply to.
    let sandbox = Sandbox::new(None);
    let (stop_site, site_stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, site_task) = sandbox
        .serve(([127, 0, 0, 1], 0).into(), async move {
            let _ = site_stopped.await;
        })
        .await
        .map_err(|e| format!("cannot start the sandbox: {e}"))?;
    let site_url = format!("http://{addr}");
    let targets: Vec<String> = ["Welcome to the sandbox!", "Who is trying executor today?"]
        .iter()
        .map(|text| sandbox.publish(text, None, "someone").id)
        .collect();
    crate::outln!("sandbox:  {site_url} (published posts: {site_url}/api/posts)");

    // 2. The managed browser, logged in once through the login page.
    let options = LaunchOptions {
        binary: managed::find_binary(base.chrome_path.as_deref()).map_err(|e| e.to_string())?,
        profile_dir: dir.join("chrome-profile"),
        port: 0,
        headless: true,
        stderr_log: dir.join("chrome-stderr.log"),
    };
    let launched =
        tokio::task::spawn_blocking(move || Managed::launch(&options, Duration::from_secs(30)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let identity = launched.identity.clone();
    let _cleanup = Cleanup {
        browser: Some(launched),
    };
    let _ = identity.write(&dir.join("chrome.json"));
    crate::outln!(
        "browser:  pid {} on CDP port {} (headless)",
        identity.pid,
        identity.port
    );
    let own = demo_settings(base, &dir, &site_url, identity.port)?;
    log_in(&own, &site_url).await?;
    crate::outln!("login:    signed in to the sandbox once, as an operator would");

    // 3. The queue.
    let store = crate::store::open(&own.database)
        .await
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now();
    let mut jobs: Vec<NewJob> = POSTS
        .iter()
        .enumerate()
        .map(|(i, text)| new_job(Kind::Post, text, None, &format!("demo-post-{i}"), now))
        .collect();
    for (i, (text, target)) in REPLIES.iter().enumerate() {
        jobs.push(new_job(
            Kind::Reply,
            text,
            Some(targets[*target].clone()),
            &format!("demo-reply-{i}"),
            now,
        ));
    }
    for job in &jobs {
        store
            .job_enqueue(job, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    crate::outln!(
        "queue:    {} posts and {} replies",
        POSTS.len(),
        REPLIES.len()
    );
    crate::outln!(
        "== the daemon (tick every 1 s; every line below is also in {})",
        own.log_path().display()
    );

    // 4. The daemon, attached to that browser, until everything is published.
    let definition = SiteDefinition::load("sandbox").map_err(|e| e.to_string())?;
    let options = RunOptions {
        logger: Logger::new(own.log_format, Some(&own.log_path())),
        site: Some(Arc::new(SiteEngine::new(definition, Some(&site_url)))),
        work: None,
        browser: None,
    };
    let daemon_task = tokio::spawn(daemon::run(own.clone(), Shutdown::new(), options));
    let total = jobs.len();
    let mut last_shown = usize::MAX;
    let all_done = loop {
        let done = published_count(store.as_ref()).await;
        if done != last_shown {
            crate::outln!("progress: {done}/{total} published and verified");
            last_shown = done;
        }
        if done == total {
            break true;
        }
        if daemon_task.is_finished() || started.elapsed() > timeout {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // 5. The STOP switch, as an operator would pull it.
    crate::outln!("== all published: touching {}", own.stop_path().display());
    if !all_done {
        crate::outln!("(not everything was published in time; stopping anyway)");
    }
    let _ = crate::stop::create_switch(&own.stop_path());
    let exit = tokio::time::timeout(Duration::from_secs(15), daemon_task)
        .await
        .map_err(|_| "the daemon did not stop within 15 s".to_string())?
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;

    // 6. The proof.
    let ok =
        report(store.as_ref(), &sandbox, &jobs, &site_url).await && all_done && exit.code() == 0;
    let _ = stop_site.send(());
    let _ = site_task.await;
    let _ = std::fs::remove_file(own.stop_path());
    crate::outln!(
        "== demo {} in {:.1} s; nothing left running (browser ended, sandbox closed)",
        if ok { "PASSED" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    Ok(ok)
}

fn new_job(kind: Kind, text: &str, reply_to: Option<String>, key: &str, now: SystemTime) -> NewJob {
    NewJob {
        kind,
        text: text.to_string(),
        reply_to,
        account: String::new(),
        idempotency_key: Some(key.to_string()),
        not_before: now,
        max_attempts: 5,
    }
}

async fn log_in(own: &Settings, site_url: &str) -> Result<(), String> {
    let browser = Browser::new(BrowserConfig::from_settings(own), Arc::new(|_| {}));
    browser
        .connect()
        .await
        .map_err(|e| format!("cannot reach the browser: {e}"))?;
    let result = async {
        browser
            .navigate(&format!("{site_url}/i/flow/login"), Duration::from_secs(20))
            .await?;
        browser
            .click(
                "[data-testid=\"LoginForm_Login_Button\"]",
                Duration::from_secs(10),
            )
            .await?;
        browser
            .wait_for(
                "[data-testid=\"SideNav_NewTweet_Button\"]",
                Duration::from_secs(20),
            )
            .await
    }
    .await
    .map_err(|e| format!("cannot log in to the sandbox: {e}"));
    browser.shutdown().await; // attach mode: parks our page, leaves the browser running
    result
}

async fn published_count(store: &dyn Store) -> usize {
    store
        .job_list(&JobQuery {
            states: vec!["succeeded".into()],
            ..Default::default()
        })
        .await
        .map(|jobs| jobs.len())
        .unwrap_or(0)
}

/// Prints what was published and the proof; true when every job is on the site exactly once and
/// every tick saw exactly one page.
async fn report(store: &dyn Store, sandbox: &Sandbox, jobs: &[NewJob], site_url: &str) -> bool {
    let posts = sandbox.posts();
    crate::outln!("== published (checked on the site: GET {site_url}/api/posts)");
    let mut exactly_once = true;
    for job in jobs {
        let copies: Vec<_> = posts
            .iter()
            .filter(|p| p.text == job.text && p.author == crate::sandbox::HANDLE)
            .collect();
        let shown = crate::tick::one_line(&job.text);
        match copies.as_slice() {
            [post] => crate::outln!(
                "  {:<5} id {}{}  {}",
                job.kind.as_str(),
                post.id,
                post.in_reply_to
                    .as_ref()
                    .map(|t| format!(" (reply to {t})"))
                    .unwrap_or_default(),
                shown
            ),
            other => {
                exactly_once = false;
                crate::outln!(
                    "  {:<5} FOUND {} TIMES  {}",
                    job.kind.as_str(),
                    other.len(),
                    shown
                );
            }
        }
    }
    let ticks = store
        .event_list(&EventQuery {
            types: vec![events::TICK.into()],
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let mut pages: BTreeMap<String, usize> = BTreeMap::new();
    for tick in &ticks {
        *pages
            .entry(tick.event_data["pages"].to_string())
            .or_default() += 1;
    }
    let failed = ticks
        .iter()
        .filter(|t| !t.event_data["last_error"].is_null())
        .count();
    crate::outln!("== page-count distribution (EXECUTOR_DAEMON_TICK events)");
    for (pages, count) in &pages {
        crate::outln!("  pages={pages}: {count} ticks");
    }
    let rate = if ticks.is_empty() {
        0.0
    } else {
        100.0 * failed as f64 / ticks.len() as f64
    };
    crate::outln!(
        "== failure rate: {failed} of {} ticks ({rate:.1}%)",
        ticks.len()
    );
    let one_page = !ticks.is_empty() && pages.keys().all(|p| p == "1");
    crate::outln!(
        "== every post exactly once: {}; every tick pages=1: {}",
        if exactly_once { "yes" } else { "NO" },
        if one_page { "yes" } else { "NO" }
    );
    exactly_once && one_page
}
