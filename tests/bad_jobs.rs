//! A job's failure belongs to the job: bad jobs in a row fail on their own schedules while the
//! daemon keeps running and publishing the good ones (only the machinery — store, browser,
//! session — can fail a tick and count toward --max-failures).

mod common;

use common::rig::*;
use common::*;
use executor::jobs::{JobQuery, Kind};
use executor::settings::DatabaseUrl;
use executor::store::Store;
use std::sync::Arc;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

async fn enqueue(store: &dyn Store, kind: Kind, text: &str, to: Option<&str>) {
    enqueue_now(store, kind, text, to).await;
}

async fn in_state(store: &dyn Store, state: &str) -> usize {
    store
        .job_list(&JobQuery {
            states: vec![state.into()],
            ..Default::default()
        })
        .await
        .expect("jobs")
        .len()
}

fn copies_of(sandbox: &executor::sandbox::Sandbox, part: &str) -> usize {
    sandbox
        .posts()
        .iter()
        .filter(|p| p.text.contains(part))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_bad_jobs_in_a_row_fail_on_their_own_and_the_daemon_publishes_the_good_ones() {
    let profile = Profile::new("bad-jobs");
    let site = sandbox_rig().await;
    let chrome = logged_in_chrome(&profile, &site.url).await;
    let database = format!("sqlite://{}", profile.db().display());
    let store: Arc<dyn Store> = executor::store::open(&DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("store");
    // Ten posts the composer garbles, in a row: each fails its readback before the click, tick
    // after tick; five good ones are queued behind them.
    site.sandbox
        .set_fault(Some(executor::sandbox::Fault::Garble));
    for i in 0..10 {
        enqueue(store.as_ref(), Kind::Post, &format!("GARBLE {i}"), None).await;
    }
    for i in 0..5 {
        enqueue(
            store.as_ref(),
            Kind::Post,
            &format!("a good post {i}"),
            None,
        )
        .await;
    }
    let mut daemon = site_daemon(
        &profile,
        &chrome,
        &site.url,
        &database,
        &["--max-failures", "3"],
    );
    eventually(
        "the good posts published and every bad job failed once",
        LONG,
        || async {
            in_state(store.as_ref(), "succeeded").await == 5
                && in_state(store.as_ref(), "failed").await == 10
        },
    )
    .await;
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "the daemon is still running:\n{}",
        daemon.lines.all().join("\n")
    );
    for i in 0..5 {
        let text = format!("a good post {i}");
        let copies = site
            .sandbox
            .posts()
            .iter()
            .filter(|p| p.text == text)
            .count();
        assert_eq!(copies, 1, "{text}");
    }
    // The tick lines said what failed, without backing off for it.
    let lines = daemon.lines.all();
    let reported: Vec<&String> = lines
        .iter()
        .filter(|l| is_tick_line(l) && l.contains("last_error=") && l.contains("job "))
        .collect();
    assert!(
        !reported.is_empty(),
        "job failures are reported on the tick lines"
    );
    assert!(
        lines
            .iter()
            .filter(|l| is_tick_line(l))
            .all(|l| l.contains("backoff=0s")),
        "no backoff for a job's failure"
    );
    assert_eq!(
        copies_of(&site.sandbox, "GARBLE"),
        0,
        "nothing garbled was published"
    );
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(15)).code(), Some(0));
}
