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

/// Two executors for one account: the second waits as a standby. The active one is killed with
/// SIGKILL right after its click (the site's answer never came): the standby takes the account
/// over once the lease lapses, finds the dead one's post on the site, and publishes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_after_kill_9_and_settles_the_in_flight_job_without_a_second_publish()
{
    let Some(base) = postgres_base_url() else {
        return;
    };
    let database = postgres_schema(&base).await;
    let site = sandbox_rig().await;
    let (profile_a, profile_b) = (Profile::new("fleet-a"), Profile::new("fleet-b"));
    let chrome_a = logged_in_chrome(&profile_a, &site.url).await;
    let chrome_b = logged_in_chrome(&profile_b, &site.url).await;
    // A short tick cap, so the dead executor's job lease (cap + 15 s) runs out soon.
    let extra = ["--tick-timeout", "5s"];
    let mut a = site_daemon(&profile_a, &chrome_a, &site.url, &database, &extra);
    a.lines
        .wait_for(LONG, |l| l.contains("Acting for the default account"));
    let b = site_daemon(&profile_b, &chrome_b, &site.url, &database, &extra);
    b.lines.wait_for(LONG, is_standby_tick);

    let store = store_at(&database).await;
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
            &profile_b.dir,
            &[
                "--database",
                &database,
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
    assert_eq!(health_of(&profile_b).as_deref(), Some("active"), "{out}");
    drop(b);
}

/// Stopping the active executor in order hands the account to the standby at once: no lapse to
/// wait for, and no failover recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_stop_hands_the_account_to_the_standby() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let database = postgres_schema(&base).await;
    let site = sandbox_rig().await;
    let (profile_a, profile_b) = (Profile::new("handover-a"), Profile::new("handover-b"));
    let chrome_a = logged_in_chrome(&profile_a, &site.url).await;
    let chrome_b = logged_in_chrome(&profile_b, &site.url).await;
    let mut a = site_daemon(&profile_a, &chrome_a, &site.url, &database, &[]);
    a.lines
        .wait_for(LONG, |l| l.contains("Acting for the default account"));
    let b = site_daemon(&profile_b, &chrome_b, &site.url, &database, &[]);
    b.lines.wait_for(LONG, is_standby_tick);
    a.signal(libc::SIGTERM);
    let _ = tokio::task::block_in_place(|| a.wait_exit(Duration::from_secs(15)));
    let lines = b.lines.clone();
    tokio::task::block_in_place(|| {
        lines.wait_for(LONG, |l| l.contains("Acting for the default account"))
    });
    let store = store_at(&database).await;
    enqueue_post(store.as_ref(), "", "after the handover").await;
    eventually("the new holder publishes", LONG, || async {
        succeeded(store.as_ref()).await == 1
    })
    .await;
    assert_eq!(copies(&site.sandbox, "after the handover"), 1);
    assert!(events(store.as_ref(), "EXECUTOR_FAILOVER").await.is_empty());
    drop(b);
}
