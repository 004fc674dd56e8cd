//! The caps on a tick, enforced on a real browser with the daemon in-process: the runtime cap
//! (a hanging tick is halted, recorded, and the next tick runs), the hard page cap (pages that
//! cannot be closed fast enough end the daemon with exit 1) and the memory cap (the page is
//! recycled, the browser restarted in launch mode).

mod common;

use common::daemons::*;
use common::*;
use std::time::Duration;

/// Tick work whose first run never returns: a script that spins forever in the page.
struct HangOnce(std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl executor::tick::TickWork for HangOnce {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, executor::tick::WorkError> {
        Ok(Default::default())
    }
    async fn run(
        &self,
        browser: &executor::browser::Browser,
        _shutdown: &executor::stop::Shutdown,
    ) -> executor::tick::WorkReport {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = browser
                .evaluate("while (true) {}", Duration::from_secs(3600))
                .await;
        }
        Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_tick_is_capped_recorded_and_the_next_tick_succeeds() {
    let profile = Profile::new("hang");
    let work = std::sync::Arc::new(HangOnce(Default::default()));
    let (daemon, shutdown) = in_process_daemon(&profile, &[("tick_timeout", "2s")], work);
    // The capped tick, then two normal ones.
    let exit = stop_after_ticks(&profile, 3, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    let log = profile.path("executor.log");
    let ticks = tick_lines(&log);
    let first_error = field(&ticks[0], "last_error").expect("first tick failed");
    assert!(first_error.contains("runtime cap of 2s"), "{first_error}");
    assert_eq!(
        field(&ticks[0], "pages"),
        Some("1"),
        "our page survived the halt"
    );
    assert!(
        field(&ticks[1], "last_error").is_none(),
        "next tick runs normally: {}",
        ticks[1]
    );
    let capped = sqlite_events(&profile.db(), "EXECUTOR_TICK_CAPPED");
    assert_eq!(capped.len(), 1);
    assert_eq!(capped[0]["halt_step"], "parked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_cannot_be_closed_fast_enough_exceed_the_hard_cap_and_the_daemon_exits_non_zero()
{
    let profile = Profile::new("hardcap");
    // The sweep closes this flood as fast as it comes; with no storm bound it gives up at once.
    let (daemon, _shutdown) =
        in_process_daemon_without_storm_bound(&profile, std::sync::Arc::new(TabFlood));
    // In launch mode the first storm the sweep cannot end replaces the browser; the flood comes
    // back with the next tick, and a storm that comes back ends the daemon.
    let exit = tokio::time::timeout(START, daemon)
        .await
        .expect("the daemon ends by itself")
        .expect("join")
        .expect("run");
    assert_eq!(exit.code(), 1);
    assert!(
        matches!(exit, executor::daemon::Exit::HardCapExceeded { pages } if pages > 1),
        "{exit:?}"
    );
    let log = std::fs::read_to_string(profile.path("executor.log")).expect("log");
    assert!(
        log.contains("MULTIPLE PAGES: "),
        "strays were seen and closed first"
    );
    assert!(log.contains("pages after cleanup - EXITING"), "{log}");
    assert_eq!(
        log.matches("TAB STORM").count(),
        1,
        "replaced once, not again and again: {log}"
    );
    assert_eq!(
        sqlite_events(&profile.db(), "EXECUTOR_HARD_CAP_EXCEEDED").len(),
        1
    );
    assert!(!sqlite_events(&profile.db(), "EXECUTOR_PAGE_CAP_ENFORCED").is_empty());
    assert_eq!(
        sqlite_events(&profile.db(), "EXECUTOR_DAEMON_EXIT")[0]["exit_code"],
        1
    );
    assert!(
        !profile.path("executor.pid").exists(),
        "lock released on this exit too"
    );
    assert!(
        executor::browser::managed::leftovers(&profile.path("chrome-profile"), &[]).is_empty(),
        "and the managed browser is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_above_its_memory_cap_is_recycled_between_ticks_and_restarted_in_launch_mode() {
    let profile = Profile::new("memcap");
    // Far below any real browser: a recycled page cannot get under it, so the browser restarts.
    let work = std::sync::Arc::new(executor::tick::NoWork);
    let (daemon, shutdown) = in_process_daemon(&profile, &[("memory_cap", "1MiB")], work);
    let exit = stop_after_ticks(&profile, 3, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    let log = profile.path("executor.log");
    let ticks = tick_lines(&log);
    assert!(
        ticks
            .iter()
            .all(|l| field(l, "pages") == Some("1") && field(l, "last_error").is_none()),
        "{ticks:#?}"
    );
    let pids: std::collections::HashSet<&str> =
        ticks.iter().filter_map(|l| field(l, "pids")).collect();
    assert!(pids.len() >= 2, "the browser was restarted: {pids:?}");
    let recycled = sqlite_events(&profile.db(), "EXECUTOR_BROWSER_RECYCLED");
    assert!(!recycled.is_empty());
    assert_eq!(recycled[0]["browser_restarted"], true);
    assert!(recycled[0]["before_bytes"]
        .as_u64()
        .is_some_and(|b| b > 1024 * 1024));
    assert!(
        executor::browser::managed::leftovers(&profile.path("chrome-profile"), &[]).is_empty(),
        "no browser left behind by the restarts"
    );
}
