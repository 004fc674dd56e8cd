//! The fleet: several executors on one PostgreSQL database, one live executor per account,
//! standbys that take over, and exactly once across all of them — tried with real daemons,
//! real browsers and the sandbox.

mod common;

use common::rig::*;
use common::*;
use executor::jobs::{JobQuery, Kind, NewJob};
use executor::sandbox::Fault;
use executor::settings::DatabaseUrl;
use executor::store::{EventQuery, Store};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const LONG: Duration = Duration::from_secs(90);
const FLEET: Duration = Duration::from_secs(300);

/// Where a fleet test keeps its store: a schema of its own on the server, or (`pooled`) a
/// database of its own reached through the transaction-mode pooler. `None`: skipped (recorded).
async fn fleet_database(pooled: bool) -> Option<String> {
    if pooled {
        pooler_database().await
    } else {
        Some(postgres_schema(&postgres_base_url()?).await)
    }
}

async fn store_at(url: &str) -> Arc<dyn Store> {
    executor::store::open(&DatabaseUrl::Postgres(url.to_string()))
        .await
        .expect("store")
}

async fn enqueue_post(store: &dyn Store, account: &str, text: &str) {
    let job = NewJob {
        kind: Kind::Post,
        text: text.into(),
        reply_to: None,
        account: account.into(),
        idempotency_key: None,
        not_before: SystemTime::now(),
        max_attempts: 5,
    };
    store
        .job_enqueue(&job, SystemTime::now())
        .await
        .expect("enqueue");
}

async fn events(store: &dyn Store, kind: &str) -> Vec<serde_json::Value> {
    store
        .event_list(&EventQuery {
            types: vec![kind.into()],
            ..Default::default()
        })
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event_data)
        .collect()
}

async fn succeeded(store: &dyn Store) -> usize {
    store
        .job_list(&JobQuery {
            states: vec!["succeeded".into()],
            ..Default::default()
        })
        .await
        .expect("jobs")
        .len()
}

fn copies(sandbox: &executor::sandbox::Sandbox, text: &str) -> usize {
    sandbox.posts().iter().filter(|p| p.text == text).count()
}

fn is_standby_tick(line: &str) -> bool {
    is_tick_line(line) && line.contains(" standby_for=")
}

/// One account's holder and its standby on a fresh PostgreSQL schema, each with its own
/// logged-in browser: `a` acting for the default account, `b` ticking as its standby. Dropped
/// in field order: the daemons, then their browsers, then the profiles.
struct HolderAndStandby {
    a: Running,
    b: Running,
    chrome_a: LoggedInChrome,
    _chrome_b: LoggedInChrome,
    profile_a: Profile,
    profile_b: Profile,
    site: SandboxRig,
    database: String,
}

/// [`HolderAndStandby`] with daemon flags `extra`; `None` without a test PostgreSQL.
async fn holder_and_standby(name: &str, extra: &[&str]) -> Option<HolderAndStandby> {
    let base = postgres_base_url()?;
    let database = postgres_schema(&base).await;
    let site = sandbox_rig().await;
    let profile_a = Profile::new(&format!("{name}-a"));
    let profile_b = Profile::new(&format!("{name}-b"));
    let chrome_a = logged_in_chrome(&profile_a, &site.url).await;
    let chrome_b = logged_in_chrome(&profile_b, &site.url).await;
    let a = site_daemon(&profile_a, &chrome_a, &site.url, &database, extra);
    a.lines
        .wait_for(LONG, |l| l.contains("Acting for the default account"));
    let b = site_daemon(&profile_b, &chrome_b, &site.url, &database, extra);
    b.lines.wait_for(LONG, is_standby_tick);
    Some(HolderAndStandby {
        a,
        b,
        chrome_a,
        _chrome_b: chrome_b,
        profile_a,
        profile_b,
        site,
        database,
    })
}

/// Two executors for one account: the second waits as a standby. The active one is killed with
/// SIGKILL right after its click (the site's answer never came): the standby takes the account
/// over once the lease lapses, finds the dead one's post on the site, and publishes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_after_kill_9_and_settles_the_in_flight_job_without_a_second_publish()
{
    // A short tick cap, so the dead executor's job lease (cap + 15 s) runs out soon.
    let Some(mut pair) = holder_and_standby("fleet", &["--tick-timeout", "5s"]).await else {
        return;
    };
    let (a, b, site, database) = (&mut pair.a, &pair.b, &pair.site, &pair.database);

    let store = store_at(database).await;
    site.sandbox.set_fault(Some(Fault::NoAnswer));
    let text = "published by the executor that dies";
    enqueue_post(store.as_ref(), "", text).await;
    eventually("the post is on the site", LONG, || async {
        copies(&site.sandbox, text) == 1
    })
    .await;
    a.signal(libc::SIGKILL);
    let killed = Instant::now();
    let _ = tokio::task::block_in_place(|| a.wait_exit(Duration::from_secs(10)));
    site.sandbox.set_fault(None);

    let lines = b.lines.clone();
    tokio::task::block_in_place(|| lines.wait_for(LONG, |l| l.contains("FAILOVER: took over")));
    let failover = killed.elapsed();
    eventually("the standby settled the job", LONG, || async {
        succeeded(store.as_ref()).await == 1
    })
    .await;
    assert_eq!(copies(&site.sandbox, text), 1, "never published twice");
    let failovers = events(store.as_ref(), "EXECUTOR_FAILOVER").await;
    assert_eq!(failovers.len(), 1, "{failovers:?}");
    let rescued = events(store.as_ref(), "JOB_RESCUED").await;
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0]["found"], true, "settled by looking it up");
    // The lease (3 s at this tick interval) plus a tick, with room for a busy machine.
    assert!(
        failover < Duration::from_secs(30),
        "failover took {failover:?}"
    );
    eprintln!("failover after kill -9: {:.2}s", failover.as_secs_f64());

    // The fleet view: the dead one is dead, the standby is the active one now.
    let (code, out) = run(
        &mut command(
            &pair.profile_b.dir,
            &[
                "--database",
                database,
                "--tick-interval",
                "300ms",
                "fleet",
                "--json",
            ],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let health_of = |profile: &Profile| {
        rows.iter()
            .find(|r| {
                r["executor"]
                    .as_str()
                    .is_some_and(|id| id.ends_with(&profile.dir.display().to_string()))
            })
            .map(|r| r["health"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        health_of(&pair.profile_b).as_deref(),
        Some("active"),
        "{out}"
    );
}

/// Stopping the active executor in order hands the account to the standby at once: no lapse to
/// wait for, and no failover recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_stop_hands_the_account_to_the_standby() {
    let Some(mut pair) = holder_and_standby("handover", &[]).await else {
        return;
    };
    let (a, b, site, database) = (&mut pair.a, &pair.b, &pair.site, &pair.database);
    // While a ticks idle, its tick events renew its lease (3 s at this tick interval): well past
    // that, a still holds it, renewed by its last tick's own commit, and b still waits.
    let store = store_at(database).await;
    let a_id = |fleet: &[executor::fleet::FleetMember]| {
        let dir = pair.profile_a.dir.display().to_string();
        fleet.iter().find(|m| m.id.ends_with(&dir)).cloned()
    };
    let watched = SystemTime::now();
    eventually("a ticks on for two lease lifetimes", LONG, || async {
        let fleet = store.fleet().await.expect("fleet");
        a_id(&fleet).and_then(|a| a.last_tick_at) > Some(watched + Duration::from_secs(6))
    })
    .await;
    // Between a tick's start and its event's commit the two may differ for a moment (a late
    // start renews the lease itself); renewed only at tick starts, they never agree.
    eventually("the lease runs from a's last tick event", LONG, || async {
        let fleet = store.fleet().await.expect("fleet");
        a_id(&fleet).is_some_and(|a| {
            a.last_tick_at
                .is_some_and(|last| a.lease == Some((a.id.clone(), last + Duration::from_secs(3))))
        })
    })
    .await;
    assert!(!b.lines.all().iter().any(|l| l.contains("FAILOVER")));
    a.signal(libc::SIGTERM);
    let _ = tokio::task::block_in_place(|| a.wait_exit(Duration::from_secs(15)));
    let lines = b.lines.clone();
    tokio::task::block_in_place(|| {
        lines.wait_for(LONG, |l| l.contains("Acting for the default account"))
    });
    enqueue_post(store.as_ref(), "", "after the handover").await;
    eventually("the new holder publishes", LONG, || async {
        succeeded(store.as_ref()).await == 1
    })
    .await;
    assert_eq!(copies(&site.sandbox, "after the handover"), 1);
    assert!(events(store.as_ref(), "EXECUTOR_FAILOVER").await.is_empty());
}

/// A holder whose browser is gone keeps ticking (and failing) but no longer renews the account's
/// lease: its ticks never get as far as the lease, so their events renew nothing, and the
/// standby takes the account over when the lease runs out — then publishes what is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_lost_its_browser_lets_the_standby_take_over() {
    let Some(mut pair) = holder_and_standby("browserless", &[]).await else {
        return;
    };
    let (a, b, site, database) = (&pair.a, &pair.b, &pair.site, &pair.database);

    let browser = pair.chrome_a.managed.take().expect("a's browser");
    tokio::task::block_in_place(|| browser.terminate(Duration::from_secs(3)));
    let gone = Instant::now();
    let lines = b.lines.clone();
    tokio::task::block_in_place(|| lines.wait_for(LONG, |l| l.contains("FAILOVER: took over")));
    eprintln!(
        "failover after the holder's browser ended: {:.2}s",
        gone.elapsed().as_secs_f64()
    );
    // a is still running, its ticks failing: it did not exit, it only stopped holding.
    assert!(
        a.lines.all().iter().any(|l| l.contains("last_error=")),
        "a's ticks failed meanwhile"
    );
    let store = store_at(database).await;
    enqueue_post(store.as_ref(), "", "after the browser was lost").await;
    eventually("the standby publishes", LONG, || async {
        succeeded(store.as_ref()).await == 1
    })
    .await;
    assert_eq!(copies(&site.sandbox, "after the browser was lost"), 1);
    assert_eq!(events(store.as_ref(), "EXECUTOR_FAILOVER").await.len(), 1);
}

/// Three accounts, an executor each and a standby for one of them, one database: 150 posts are
/// each published exactly once, under their own author, none by another account's browser —
/// and the fleet's checklist passes for every executor.
async fn three_accounts_publish_each_post_once_under_its_own_author(pooled: bool) {
    let Some(database) = fleet_database(pooled).await else {
        return;
    };
    let site = sandbox_rig().await;
    let accounts = ["alice", "bob", "carol"];
    // One executor per account, and a standby for alice.
    let mut members = Vec::new();
    for (name, account) in accounts
        .iter()
        .map(|a| (format!("fleet3-{a}"), *a))
        .chain([("fleet3-alice-standby".to_string(), "alice")])
    {
        members.push(Member::new(&name, &site.url, account).await);
    }
    let mut daemons = Vec::new();
    for (
        i,
        Member {
            profile,
            chrome,
            account,
        },
    ) in members.iter().enumerate()
    {
        let daemon = site_daemon(
            profile,
            chrome,
            &site.url,
            &database,
            &["--account", account],
        );
        if i < accounts.len() {
            let lines = daemon.lines.clone();
            let acting = format!("Acting for account {account:?}");
            tokio::task::block_in_place(|| lines.wait_for(LONG, |l| l.contains(&acting)));
        } else {
            let lines = daemon.lines.clone();
            tokio::task::block_in_place(|| lines.wait_for(LONG, is_standby_tick));
        }
        daemons.push(daemon);
    }
    let store = store_at(&database).await;
    for i in 0..50 {
        for account in accounts {
            enqueue_post(
                store.as_ref(),
                account,
                &format!("fleet post {i} of {account}"),
            )
            .await;
        }
    }
    eventually("150 posts published", FLEET, || async {
        succeeded(store.as_ref()).await == 150
    })
    .await;
    for daemon in &daemons {
        daemon.signal(libc::SIGTERM);
    }
    for daemon in &mut daemons {
        let status = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(20)));
        assert_eq!(status.code(), Some(0));
    }
    let posts = site.sandbox.posts();
    assert_eq!(posts.len(), 150, "nothing published twice, nothing extra");
    for i in 0..50 {
        for account in accounts {
            let text = format!("fleet post {i} of {account}");
            let found: Vec<_> = posts.iter().filter(|p| p.text == text).collect();
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].author, account, "{text} under its own author");
        }
    }
    let alice = &members[0].profile;
    let (code, out) = run(
        &mut command(
            &alice.dir,
            &[
                "--database",
                &database,
                "verify",
                "--fleet",
                "--since",
                "30m",
            ],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("== executor").count(), 4, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_and_a_standby_publish_150_posts_each_once_under_its_own_author() {
    three_accounts_publish_each_post_once_under_its_own_author(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_and_a_standby_through_pgbouncer_publish_each_post_once() {
    three_accounts_publish_each_post_once_under_its_own_author(true).await;
}

/// An executor for alice whose browser is logged in as bob claims nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_whose_browser_is_another_account_claims_nothing_and_says_so() {
    let Some(database) = fleet_database(false).await else {
        return;
    };
    let site = sandbox_rig().await;
    let profile = Profile::new("mismatch");
    let chrome = logged_in_chrome_as(&profile, &site.url, "bob").await;
    let store = store_at(&database).await;
    enqueue_post(
        store.as_ref(),
        "alice",
        "alice's post, never from bob's browser",
    )
    .await;
    let daemon = site_daemon(
        &profile,
        &chrome,
        &site.url,
        &database,
        &["--account", "alice"],
    );
    let lines = daemon.lines.clone();
    let said =
        tokio::task::block_in_place(|| lines.wait_for(LONG, |l| l.contains("ACCOUNT_MISMATCH:")));
    assert!(
        said.contains("\"bob\"") && said.contains("\"alice\""),
        "{said}"
    );
    // Several ticks later: still nothing claimed, nothing published.
    let seen = lines.all().iter().filter(|l| is_tick_line(l)).count();
    tokio::task::block_in_place(|| lines.wait_for_nth(seen + 3, LONG, is_tick_line));
    assert!(site.sandbox.posts().is_empty());
    let jobs = store.job_list(&JobQuery::default()).await.expect("jobs");
    assert_eq!(jobs[0].state, executor::jobs::JobState::Queued);
    assert_eq!(jobs[0].attempts, 0, "never claimed");
    assert!(profile.path("ACCOUNT_MISMATCH").exists());
    assert_eq!(
        events(store.as_ref(), "ACCOUNT_MISMATCH").await.len(),
        1,
        "once per episode"
    );
    let (code, out) = run(
        &mut command(
            &profile.dir,
            &["--database", &database, "--account", "alice", "status"],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ACCOUNT:     mismatch"), "{out}");
    drop(daemon);
}

/// A 429 on one account pauses that account's posting lane only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_one_account_pauses_only_that_accounts_lane() {
    let Some(database) = fleet_database(false).await else {
        return;
    };
    let site = sandbox_rig().await;
    site.sandbox.rate_limit_user("alice", true);
    let store = store_at(&database).await;
    let mut daemons = Vec::new();
    let mut members = Vec::new();
    for account in ["alice", "bob"] {
        let member = Member::new(&format!("429-{account}"), &site.url, account).await;
        daemons.push(site_daemon(
            &member.profile,
            &member.chrome,
            &site.url,
            &database,
            &["--account", account],
        ));
        members.push(member);
    }
    for i in 0..2 {
        for account in ["alice", "bob"] {
            enqueue_post(store.as_ref(), account, &format!("post {i} of {account}")).await;
        }
    }
    eventually(
        "bob's posts published and alice's lane paused",
        LONG,
        || async {
            succeeded(store.as_ref()).await == 2
                && !events(store.as_ref(), "RATE_LIMIT_DETECTED")
                    .await
                    .is_empty()
        },
    )
    .await;
    let posts = site.sandbox.posts();
    assert!(posts.iter().all(|p| p.author == "bob"), "{posts:?}");
    let detected = events(store.as_ref(), "RATE_LIMIT_DETECTED").await;
    assert!(
        detected.iter().all(|e| e["account"] == "alice"),
        "{detected:?}"
    );
    let now = SystemTime::now();
    let alice = store
        .lane_breaker("alice", Kind::Post)
        .await
        .expect("breaker");
    assert!(
        alice.is_some_and(|until| until > now),
        "alice's lane paused"
    );
    assert_eq!(
        store
            .lane_breaker("bob", Kind::Post)
            .await
            .expect("breaker"),
        None
    );
    drop(daemons);
    drop(members);
}

/// A crash storm across the fleet: 300 posts flow on three accounts while random executors are
/// killed with SIGKILL (at least 50 times) and restarted, and the site's answers now and then
/// come late or never. Afterwards the site shows every post exactly once under its author, and
/// `verify --fleet --on-site` passes; then a duplicate put straight on the site makes
/// `verify --on-site` fail, naming the post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_storm_across_the_fleet_publishes_every_post_once_and_the_proof_says_so() {
    let Some(database) = fleet_database(false).await else {
        return;
    };
    let site = sandbox_rig().await;
    let accounts = ["alice", "bob", "carol"];
    let mut members = Vec::new();
    for account in accounts {
        members.push(Member::new(&format!("storm-{account}"), &site.url, account).await);
    }
    // A short tick cap: a tick waiting for an answer that never comes is cut at 5 s, and its job
    // settled by a lookup.
    let flags = |account: &'static str| ["--account", account, "--tick-timeout", "5s"];
    let start = |i: usize| {
        let member = &members[i];
        site_daemon(
            &member.profile,
            &member.chrome,
            &site.url,
            &database,
            &flags(member.account),
        )
    };
    let mut daemons: Vec<Running> = (0..accounts.len()).map(start).collect();
    let store = store_at(&database).await;
    for i in 0..100 {
        for account in accounts {
            enqueue_post(
                store.as_ref(),
                account,
                &format!("storm post {i} of {account}"),
            )
            .await;
        }
    }
    let faults = [
        None,
        Some(Fault::LateAnswer),
        None,
        Some(Fault::NoAnswer),
        None,
    ];
    let mut kills = 0;
    while kills < 50 || succeeded(store.as_ref()).await < 300 {
        assert!(
            kills < 400,
            "the storm does not end: {} of 300 published",
            succeeded(store.as_ref()).await
        );
        site.sandbox.set_fault(faults[kills % faults.len()]);
        let victim = fastrand::usize(..daemons.len());
        // Let the victim get somewhere first: a random number of its ticks.
        let lines = daemons[victim].lines.clone();
        let seen = lines.all().iter().filter(|l| is_tick_line(l)).count();
        let ticks = fastrand::usize(1..4);
        tokio::task::block_in_place(|| lines.wait_for_nth(seen + ticks, LONG, is_tick_line));
        if kills < 50 || fastrand::bool() {
            daemons[victim].signal(libc::SIGKILL);
            let _ =
                tokio::task::block_in_place(|| daemons[victim].wait_exit(Duration::from_secs(10)));
            kills += 1;
            daemons[victim] = start(victim);
        }
        if kills >= 50 {
            site.sandbox.set_fault(None);
        }
    }
    site.sandbox.set_fault(None);
    // Each one up and ticking (one restarted just now must have its signal handlers), then STOP.
    for daemon in &daemons {
        let lines = daemon.lines.clone();
        tokio::task::block_in_place(|| lines.wait_for(LONG, is_tick_line));
        daemon.signal(libc::SIGTERM);
    }
    for daemon in &mut daemons {
        let status = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(20)));
        assert_eq!(status.code(), Some(0));
    }
    eprintln!("crash storm: {kills} kills");
    let posts = site.sandbox.posts();
    for i in 0..100 {
        for account in accounts {
            let text = format!("storm post {i} of {account}");
            let found: Vec<_> = posts.iter().filter(|p| p.text == text).collect();
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].author, account, "{text}");
        }
    }
    assert_eq!(posts.len(), 300);

    let (alice, port) = (&members[0].profile, members[0].chrome.port.to_string());
    let verify = || {
        run(
            &mut command(
                &alice.dir,
                &[
                    "--database",
                    &database,
                    "--browser-mode",
                    "cdp",
                    "--cdp-port",
                    &port,
                    "--site",
                    "sandbox",
                    "--site-url",
                    &site.url,
                    // The storm fails ticks on purpose (killed mid-tick, answers that never
                    // come): a quarter to a third of them. What this proof judges is that every
                    // post is published once, so the rate may be anything.
                    "--max-failure-rate",
                    "100%",
                    "verify",
                    "--fleet",
                    "--on-site",
                    "--since",
                    "30m",
                ],
            ),
            Duration::from_secs(300),
        )
    };
    let (code, out) = tokio::task::block_in_place(verify);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PASS  on the site: no post twice"), "{out}");

    // A duplicate straight on the site: the store knows nothing of it, the site shows it.
    site.sandbox.publish("storm post 42 of bob", None, "bob");
    let (code, out) = tokio::task::block_in_place(verify);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("on the site: no post twice"))
        .unwrap_or_default();
    assert!(
        line.starts_with("FAIL") && line.contains("storm post 42 of bob"),
        "{out}"
    );
}
