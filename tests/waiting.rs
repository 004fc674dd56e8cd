//! "Why is it waiting?" and operator pauses, with real daemons, real browsers and the sandbox,
//! on SQLite and PostgreSQL: for each reason a due job can wait for, `status --json` and
//! `jobs show --json` carry the reason and its time (the same the library computes), and a
//! paused lane is not claimed by a running daemon until it is resumed.

mod common;

use common::daemons::failing_daemon;
use common::rig::*;
use common::*;
use executor::jobs::{Job, Kind, NewJob};
use executor::sandbox::Fault;
use executor::settings::DatabaseUrl;
use executor::store::{Enqueued, EventQuery, Store};
use executor::waiting::Reason;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const LONG: Duration = Duration::from_secs(90);
const CLI: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The `--database` value for a test on `backend`; `None`: PostgreSQL is not configured (the
/// skip is recorded).
async fn database(backend: Backend, profile: &Profile) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", profile.db().display())),
        Backend::Postgres => Some(postgres_schema(&postgres_base_url()?).await),
    }
}

async fn store_at(database: &str) -> Arc<dyn Store> {
    let url = match database.strip_prefix("sqlite://") {
        Some(path) => DatabaseUrl::Sqlite(path.into()),
        None => DatabaseUrl::Postgres(database.to_string()),
    };
    executor::store::open(&url).await.expect("store")
}

async fn enqueue(
    store: &dyn Store,
    kind: Kind,
    account: &str,
    text: &str,
    to: Option<&str>,
) -> Job {
    let job = NewJob {
        kind,
        text: text.into(),
        reply_to: to.map(str::to_string),
        account: account.into(),
        idempotency_key: None,
        not_before: SystemTime::now(),
        max_attempts: 5,
    };
    match store
        .job_enqueue(&job, SystemTime::now())
        .await
        .expect("enqueue")
    {
        Enqueued::Created(job) => job,
        Enqueued::Exists(job) => panic!("unexpected duplicate {job:?}"),
    }
}

/// The command line on `profile` and `database`, run to its end: (exit code, output).
fn cli(profile: &Profile, database: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["--database", database];
    all.extend_from_slice(args);
    tokio::task::block_in_place(|| run(&mut command(&profile.dir, &all), CLI))
}

fn cli_json(profile: &Profile, database: &str, args: &[&str]) -> Value {
    let (code, output) = cli(profile, database, args);
    assert_eq!(code, 0, "{args:?}: {output}");
    serde_json::from_str(&output).unwrap_or_else(|e| panic!("{args:?} is not JSON ({e}): {output}"))
}

/// What the library says holds `account`'s `kind` lane now.
async fn library_reasons(
    store: &dyn Store,
    account: &str,
    kind: Kind,
) -> Vec<executor::waiting::Cause> {
    executor::waiting::why(store, account, SystemTime::now())
        .await
        .expect("why")
        .into_iter()
        .find(|lane| lane.kind == kind)
        .map(|lane| lane.reasons)
        .unwrap_or_default()
}

/// Waits until the library names `reason` for the lane; returns that cause.
async fn wait_for_reason(
    store: &dyn Store,
    account: &str,
    kind: Kind,
    reason: Reason,
) -> executor::waiting::Cause {
    let found = std::sync::Mutex::new(None);
    let what = format!(
        "the {} lane of {account:?} waits for {reason:?}",
        kind.as_str()
    );
    eventually(&what, LONG, || async {
        let cause = library_reasons(store, account, kind)
            .await
            .into_iter()
            .find(|cause| cause.reason == reason);
        let seen = cause.is_some();
        *found.lock().expect("found") = cause;
        seen
    })
    .await;
    let cause = found.lock().expect("found").take();
    cause.expect("found")
}

fn reason_name(reason: Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("a reason serialises as its name")
}

/// `status --json` (for `account`) and `jobs show ID --json` both carry `expected`: its reason,
/// and the same time the library gave.
fn cli_says(
    profile: &Profile,
    database: &str,
    account: &str,
    job: &Job,
    expected: &executor::waiting::Cause,
) {
    let name = reason_name(expected.reason);
    let until = match expected.until {
        Some(until) => Value::String(executor::clock::format_ts(until)),
        None => Value::Null,
    };
    let status = cli_json(
        profile,
        database,
        &["--account", account, "status", "--json"],
    );
    let lane = status["waiting"]
        .as_array()
        .and_then(|lanes| lanes.iter().find(|l| l["kind"] == job.kind.as_str()))
        .unwrap_or_else(|| panic!("no {} lane in status: {status:#}", job.kind.as_str()));
    let cause = lane["reasons"]
        .as_array()
        .and_then(|reasons| reasons.iter().find(|r| r["reason"] == name.as_str()))
        .unwrap_or_else(|| panic!("status does not say {name}: {lane:#}"));
    assert_eq!(cause["until"], until, "status: {cause:#}");
    assert!(!cause["message"].as_str().unwrap_or("").is_empty());
    assert!(lane["due"].as_u64().unwrap_or(0) >= 1, "{lane:#}");

    let id = job.id.to_string();
    let shown = cli_json(profile, database, &["jobs", "show", &id, "--json"]);
    let cause = shown["waiting"]
        .as_array()
        .and_then(|reasons| reasons.iter().find(|r| r["reason"] == name.as_str()))
        .unwrap_or_else(|| panic!("jobs show does not say {name}: {shown:#}"));
    assert_eq!(cause["until"], until, "jobs show: {cause:#}");
}

/// What a test with daemons acting on the sandbox needs. The browser is declared before the
/// profile, so it is ended before the profile checks that nothing was left running.
struct SiteRun {
    site: SandboxRig,
    chrome: LoggedInChrome,
    profile: Profile,
    database: String,
    store: Arc<dyn Store>,
}

impl SiteRun {
    /// `None`: the backend is not configured (the skip is recorded).
    async fn start(backend: Backend, name: &str) -> Option<SiteRun> {
        let site = sandbox_rig().await;
        let profile = Profile::new(name);
        let database = database(backend, &profile).await?;
        let chrome = logged_in_chrome(&profile, &site.url).await;
        let store = store_at(&database).await;
        Some(SiteRun {
            site,
            chrome,
            profile,
            database,
            store,
        })
    }
}

fn end(daemon: &mut Running) {
    daemon.signal(libc::SIGTERM);
    let status = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(20)));
    assert_eq!(status.code(), Some(0), "{}", daemon.lines.all().join("\n"));
}

/// Backoff, pause and a missing executor, without a browser: the daemon's ticks fail (nothing
/// listens on its CDP port) and it backs off an hour.
async fn backoff_pause_and_no_executor_are_said_with_their_times(backend: Backend) {
    let profile = Profile::new("waiting-backoff");
    let Some(database) = database(backend, &profile).await else {
        return;
    };
    let store = store_at(&database).await;
    let job = enqueue(
        store.as_ref(),
        Kind::Post,
        "",
        "waits for the backoff",
        None,
    )
    .await;
    let backoff_an_hour = [
        "--database",
        &database,
        "--backoff",
        "1h",
        "--max-failures",
        "100",
    ];
    let mut daemon = failing_daemon(&profile, free_port(), &backoff_an_hour);
    let started = SystemTime::now();

    let backoff = wait_for_reason(store.as_ref(), "", Kind::Post, Reason::Backoff).await;
    let until = backoff.until.expect("a backoff ends");
    let hour = Duration::from_secs(3600);
    assert!(
        until >= started + hour && until <= SystemTime::now() + hour,
        "an hour after the failed tick: {}",
        executor::clock::format_ts(until)
    );
    cli_says(&profile, &database, "", &job, &backoff);
    // The fleet's view says the same of the default account.
    let every = executor::waiting::why_every_account(store.as_ref(), SystemTime::now())
        .await
        .expect("why, every account");
    let post = every
        .iter()
        .find(|lane| lane.account.is_empty() && lane.kind == Kind::Post)
        .expect("the default account's post lane");
    assert!(post.reasons.contains(&backoff), "{every:?}");

    // A pause of the default account is a reason too, waiting for someone.
    let (code, out) = cli(
        &profile,
        &database,
        &["pause", "--account", "", "--reason", "checking the account"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Paused: both lanes of the default account"),
        "{out}"
    );
    let paused = wait_for_reason(store.as_ref(), "", Kind::Post, Reason::Paused).await;
    assert_eq!(paused.until, None);
    assert!(
        paused.message.contains("executor resume --account \"\""),
        "{}",
        paused.message
    );
    cli_says(&profile, &database, "", &job, &paused);
    let status = cli_json(&profile, &database, &["status", "--json"]);
    assert_eq!(
        status["pauses"][0]["reason"], "checking the account",
        "{status:#}"
    );
    let (code, out) = cli(&profile, &database, &["resume", "--account", ""]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Resumed: both lanes of the default account"),
        "{out}"
    );
    let left = library_reasons(store.as_ref(), "", Kind::Post).await;
    assert!(left.iter().all(|c| c.reason != Reason::Paused), "{left:?}");

    // Once the executor has stopped, nobody serves the account: said, and waiting for someone.
    end(&mut daemon);
    let nobody = wait_for_reason(store.as_ref(), "", Kind::Post, Reason::NoExecutor).await;
    assert_eq!(nobody.until, None);
    cli_says(&profile, &database, "", &job, &nobody);
}

/// The hourly limit, the 429 breaker, the login wall, the minimum gap and an account mismatch,
/// each brought about for real: daemons acting on the sandbox through a logged-in browser.
async fn limits_breaker_login_wall_gap_and_mismatch_are_said_with_their_times(backend: Backend) {
    let Some(rig) = SiteRun::start(backend, "waiting-site").await else {
        return;
    };
    let SiteRun {
        site,
        chrome,
        profile,
        database,
        store,
    } = &rig;
    let store = store.clone();
    let mut daemon = site_daemon(
        profile,
        chrome,
        &site.url,
        database,
        &["--replies-per-hour", "1"],
    );

    // The hourly limit: one reply an hour, the second waits for the first's hour to pass.
    enqueue(store.as_ref(), Kind::Post, "", "a post to reply to", None).await;
    let target = published(site, "a post to reply to").await;
    let before_first = SystemTime::now();
    enqueue(
        store.as_ref(),
        Kind::Reply,
        "",
        "the first reply",
        Some(&target.id),
    )
    .await;
    published(site, "the first reply").await;
    let after_first = SystemTime::now();
    let second = enqueue(
        store.as_ref(),
        Kind::Reply,
        "",
        "the second reply",
        Some(&target.id),
    )
    .await;
    let hourly = wait_for_reason(store.as_ref(), "", Kind::Reply, Reason::HourlyLimit).await;
    let until = hourly.until.expect("a next slot");
    let hour = Duration::from_secs(3600);
    assert!(
        until >= before_first + hour - Duration::from_secs(1) && until <= after_first + hour,
        "an hour after the first reply's claim: {}",
        executor::clock::format_ts(until)
    );
    assert!(
        hourly
            .message
            .starts_with("2nd reply this hour, over the limit of 1 per hour; next slot "),
        "{}",
        hourly.message
    );
    cli_says(profile, database, "", &second, &hourly);

    // The breaker: the site answers 429 to posts, until the time in its reset header.
    site.sandbox.set_fault(Some(Fault::RateLimit));
    let before_last_action = SystemTime::now();
    enqueue(store.as_ref(), Kind::Post, "", "meets the 429", None).await;
    let detected = || async {
        store
            .event_list(&EventQuery {
                types: vec!["RATE_LIMIT_DETECTED".into()],
                ..Default::default()
            })
            .await
            .expect("events")
    };
    eventually("the 429 opened the breaker", LONG, || async {
        !detected().await.is_empty()
    })
    .await;
    let detected = detected().await;
    let behind = enqueue(store.as_ref(), Kind::Post, "", "behind the breaker", None).await;
    let breaker = wait_for_reason(store.as_ref(), "", Kind::Post, Reason::Breaker).await;
    let recorded = detected[0].event_data["until"].as_str().expect("until");
    assert_eq!(
        breaker.until.map(executor::clock::format_ts).as_deref(),
        Some(recorded)
    );
    cli_says(profile, database, "", &behind, &breaker);

    // The login wall: the site logs every session out.
    site.sandbox.set_fault(Some(Fault::LoggedOut));
    let wall = wait_for_reason(store.as_ref(), "", Kind::Post, Reason::LoginWall).await;
    assert_eq!(wall.until, None, "waits for a login");
    cli_says(profile, database, "", &behind, &wall);
    site.sandbox.set_fault(None);
    eventually("the session is back", LONG, || async {
        library_reasons(store.as_ref(), "", Kind::Post)
            .await
            .iter()
            .all(|c| c.reason != Reason::LoginWall)
    })
    .await;
    end(&mut daemon);

    // The minimum gap: the same account with a gap of two hours after its last action.
    let mut daemon = site_daemon(profile, chrome, &site.url, database, &["--min-gap", "2h"]);
    let gap = wait_for_reason(store.as_ref(), "", Kind::Reply, Reason::MinimumGap).await;
    let until = gap.until.expect("a next slot");
    let two_hours = Duration::from_secs(7200);
    assert!(
        until >= before_last_action + two_hours && until <= SystemTime::now() + two_hours,
        "two hours after the last action (the post that met the 429): {}",
        executor::clock::format_ts(until)
    );
    cli_says(profile, database, "", &second, &gap);
    end(&mut daemon);

    // An account mismatch: an executor for another account, in a browser logged in as ours.
    let mut daemon = site_daemon(
        profile,
        chrome,
        &site.url,
        database,
        &["--account", "someone-else"],
    );
    let theirs = enqueue(
        store.as_ref(),
        Kind::Post,
        "someone-else",
        "not for this browser",
        None,
    )
    .await;
    let mismatch = wait_for_reason(
        store.as_ref(),
        "someone-else",
        Kind::Post,
        Reason::AccountMismatch,
    )
    .await;
    assert_eq!(mismatch.until, None);
    assert!(
        mismatch.message.contains("someone-else"),
        "{}",
        mismatch.message
    );
    cli_says(profile, database, "someone-else", &theirs, &mismatch);
    end(&mut daemon);
    assert!(
        site.sandbox
            .posts()
            .iter()
            .all(|p| p.text != "the second reply" && p.text != "not for this browser"),
        "nothing that waited was published"
    );
}

/// The tick events of the ticks that started at or after `since`, oldest first (a tick that
/// started before and ended after is not one of them).
/// A paused post lane: a running daemon claims none of its jobs tick after tick (while the
/// reply lane goes on); resumed, the post is published, once.
async fn a_paused_lane_is_not_claimed_by_a_running_daemon_until_resumed(backend: Backend) {
    let Some(rig) = SiteRun::start(backend, "waiting-pause").await else {
        return;
    };
    let SiteRun {
        site,
        chrome,
        profile,
        database,
        store,
    } = &rig;
    let store = store.clone();
    let mut daemon = site_daemon(profile, chrome, &site.url, database, &[]);
    enqueue(
        store.as_ref(),
        Kind::Post,
        "",
        "published before the pause",
        None,
    )
    .await;
    let target = published(site, "published before the pause").await;

    let (code, out) = cli(profile, database, &["pause", "--kind", "post"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Paused: the post lane of every account"),
        "{out}"
    );
    let since = SystemTime::now();
    let held = enqueue(store.as_ref(), Kind::Post, "", "held by the pause", None).await;
    enqueue(
        store.as_ref(),
        Kind::Reply,
        "",
        "replies are not paused",
        Some(&target.id),
    )
    .await;
    post_lane_held(site, store.as_ref(), since, 5, "held by the pause").await;
    published(site, "replies are not paused").await;
    assert_eq!(
        store
            .job_get(held.id)
            .await
            .expect("job")
            .expect("exists")
            .state
            .name(),
        "queued"
    );
    let paused = wait_for_reason(store.as_ref(), "", Kind::Post, Reason::Paused).await;
    cli_says(profile, database, "", &held, &paused);
    let lines = daemon.lines.clone();
    tokio::task::block_in_place(|| {
        lines.wait_for(LONG, |l| l.contains("PAUSED: the post lane claims nothing"))
    });

    let (code, out) = cli(profile, database, &["resume", "--kind", "post"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Resumed: the post lane of every account"),
        "{out}"
    );
    published_once(site, store.as_ref(), held.id, "held by the pause").await;
    tokio::task::block_in_place(|| {
        lines.wait_for(LONG, |l| l.contains("The post lane is no longer paused"))
    });
    assert_eq!(
        pause_events(store.as_ref()).await,
        ["QUEUE_PAUSED", "QUEUE_RESUMED"]
    );
    end(&mut daemon);
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_stores!(
    backoff_pause_and_no_executor_are_said_with_their_times,
    limits_breaker_login_wall_gap_and_mismatch_are_said_with_their_times,
    a_paused_lane_is_not_claimed_by_a_running_daemon_until_resumed,
);

/// Bad input to `pause` and `resume` is one line naming what is wrong, exit code 2, and
/// nothing is paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_refuse_bad_input_in_one_line() {
    let profile = Profile::new("waiting-bad");
    let database = format!("sqlite://{}", profile.db().display());
    let long_account = "a".repeat(101);
    let long_reason = "r".repeat(501);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["pause", "--kind", "story"], "--kind"),
        (vec!["resume", "--kind", "posts"], "--kind"),
        (vec!["resume", "--all", "--kind", "post"], "--all"),
        (vec!["pause", "--account", &long_account], "account"),
        (vec!["pause", "--account", "a\tb"], "account"),
        (vec!["pause", "--reason", &long_reason], "--reason"),
        (vec!["pause", "now"], "now"),
    ];
    for (args, names) in cases {
        let (code, output) = cli(&profile, &database, &args);
        assert_eq!(code, 2, "{args:?}: {output}");
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got:\n{output}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {output}");
        assert!(lines[0].contains(names), "{args:?} names {names}: {output}");
    }
    let store = store_at(&database).await;
    assert!(
        store.pause_list().await.expect("pauses").is_empty(),
        "nothing paused"
    );
    // `--help` teaches what a pause does.
    let (code, help) = cli(&profile, &database, &["pause", "--help"]);
    assert_eq!(code, 0);
    assert!(
        help.contains("--kind") && help.contains("--account") && help.contains("--reason"),
        "{help}"
    );
}
