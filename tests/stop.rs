//! STOP, as the README promises it: the STOP file, `STOP_EXECUTOR=true`, SIGTERM and SIGINT end
//! the daemon gracefully (the four exit lines in order, an exit event, the lock released, the
//! managed browser ended), a STOP present at start is refused, and `executor stop` waits for the
//! daemon to be gone.

mod common;

use common::daemons::*;
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn stop_file_while_idle_exits_zero_with_the_four_lines_and_an_exit_event() {
    let profile = Profile::new("stopfile");
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for_nth(2, START, is_tick_line);
    assert!(profile.path("executor.pid").exists());
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let status = daemon.wait_exit(EXIT);
    assert_eq!(status.code(), Some(0));
    exit_lines_in_order(&daemon.lines.all());
    assert!(
        !profile.path("executor.pid").exists(),
        "lock file must be gone"
    );
    assert!(
        profile.path("STOP_EXECUTOR").exists(),
        "the daemon never deletes the STOP file"
    );
    let exits = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_EXIT");
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0]["exit_code"], 0);
    assert_eq!(
        sqlite_events(&profile.db(), "EXECUTOR_DAEMON_STOP").len(),
        1
    );
    assert_eq!(
        sqlite_events(&profile.db(), "EXECUTOR_DAEMON_BOOT").len(),
        1
    );
    assert_eq!(
        sqlite_events(&profile.db(), "EXECUTOR_DAEMON_READY").len(),
        1
    );
    // The managed browser went with it.
    let chrome = std::fs::read_to_string(profile.path("chrome.json"));
    assert!(
        chrome.is_err(),
        "chrome.json is removed when the daemon ends its browser"
    );
}

fn signal_stops_gracefully(signal: i32, name: &str) {
    let profile = Profile::new(name);
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for(START, is_tick_line);
    daemon.signal(signal);
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    let lines = daemon.lines.all();
    exit_lines_in_order(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{name} received"))),
        "{}",
        lines.join("\n")
    );
    assert!(!profile.path("executor.pid").exists());
    let exits = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_EXIT");
    assert_eq!(exits.len(), 1);
    let stops = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_STOP");
    assert_eq!(stops[0]["reason"], name);
}

#[test]
fn sigterm_stops_gracefully() {
    signal_stops_gracefully(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_gracefully() {
    signal_stops_gracefully(libc::SIGINT, "SIGINT");
}

#[test]
fn stop_present_at_start_is_refused_clearly() {
    let profile = Profile::new("stoppresent");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let (code, output) = run(&mut command(&profile.dir, &["daemon"]), EXIT);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("STOP switch present"), "{output}");
    assert!(output.contains("refusing to start"), "{output}");
    assert!(!profile.path("executor.pid").exists());

    // The same when STOP_EXECUTOR is a directory, and when the environment says so.
    std::fs::remove_file(profile.path("STOP_EXECUTOR")).expect("rm");
    std::fs::create_dir(profile.path("STOP_EXECUTOR")).expect("mkdir");
    let (code, output) = run(&mut command(&profile.dir, &["daemon"]), EXIT);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("a directory"), "{output}");
    std::fs::remove_dir(profile.path("STOP_EXECUTOR")).expect("rmdir");
    let mut env_stop = command(&profile.dir, &["daemon"]);
    env_stop.env("STOP_EXECUTOR", "true");
    let (code, output) = run(&mut env_stop, EXIT);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("STOP_EXECUTOR=true"), "{output}");
}

#[test]
fn stop_command_waits_for_exit_and_status_reports_running_then_stopped() {
    let profile = Profile::new("stopcmd");
    let mut daemon = launch_daemon(&profile, &["--log-format", "text"]);
    daemon.lines.wait_for_nth(2, START, is_tick_line);

    let (code, output) = run(&mut command(&profile.dir, &["status", "--json"]), EXIT);
    assert_eq!(code, 0, "{output}");
    let status: serde_json::Value = serde_json::from_str(&output).expect("status --json is JSON");
    assert_eq!(status["running"], true);
    assert_eq!(status["pid"], daemon.pid());
    assert!(status["last_tick_line"]
        .as_str()
        .is_some_and(|l| l.contains("pages=1")));
    assert_eq!(status["last_tick"]["pages"], 1);

    let (code, output) = run(
        &mut command(&profile.dir, &["stop", "--timeout", "10s"]),
        EXIT,
    );
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("exited after"), "{output}");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    assert!(!profile.path("executor.pid").exists());

    let (code, output) = run(&mut command(&profile.dir, &["status"]), EXIT);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("not running"), "{output}");
    assert!(output.contains("STOP switch: present"), "{output}");

    let (code, output) = run(
        &mut command(&profile.dir, &["stop", "--timeout", "soon"]),
        EXIT,
    );
    assert_eq!(code, 2, "{output}");
}

/// The browser the daemon launched is gone: nothing runs on its profile (found the way the
/// product finds leftovers), and its `chrome.json` is removed.
fn assert_managed_browser_gone(profile: &Profile) {
    let left = executor::browser::managed::leftovers(&profile.path("chrome-profile"), &[]);
    let pids: Vec<u32> = left.iter().map(|p| p.pid).collect();
    assert!(
        pids.is_empty(),
        "the managed browser outlived the daemon: pids {pids:?}"
    );
    assert!(
        !profile.path("chrome.json").exists(),
        "chrome.json is removed when the daemon ends its browser"
    );
}

/// A signal while the daemon is still starting its browser — at the first sight of the browser's
/// process (the daemon then waits for its DevTools port), and again the moment the launch is
/// complete (the daemon then connects): the daemon exits 0 and the browser goes with it.
#[test]
fn a_signal_while_the_browser_starts_leaves_no_browser_behind() {
    let chrome_profile = |profile: &Profile| profile.path("chrome-profile");
    type Reached = fn(&Profile) -> bool;
    let moments: [(&str, Reached); 4] = [
        ("the browser's process appears", |p| {
            !executor::browser::managed::leftovers(&p.path("chrome-profile"), &[]).is_empty()
        }),
        ("the browser's process appears", |p| {
            !executor::browser::managed::leftovers(&p.path("chrome-profile"), &[]).is_empty()
        }),
        ("the browser's process appears", |p| {
            !executor::browser::managed::leftovers(&p.path("chrome-profile"), &[]).is_empty()
        }),
        ("the launch is recorded (chrome.json)", |p| {
            p.path("chrome.json").exists()
        }),
    ];
    for (round, (moment, reached)) in moments.into_iter().enumerate() {
        let profile = Profile::new(&format!("stop-launching-{round}"));
        let mut daemon = launch_daemon(&profile, &["--site", "none"]);
        wait_until(moment, START, || reached(&profile));
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.wait_exit(EXIT).code(), Some(0), "round {round}");
        let left = poll(EXIT, || {
            let left = executor::browser::managed::leftovers(&chrome_profile(&profile), &[]);
            left.is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "round {round}, SIGTERM when {moment}: the browser outlived the daemon: {:?}",
            executor::browser::managed::leftovers(&chrome_profile(&profile), &[])
                .iter()
                .map(|p| p.pid)
                .collect::<Vec<_>>()
        );
    }
}

/// A browser that never opens its DevTools port and ignores SIGTERM (a script given as
/// `--chrome-path`): a signal while the daemon waits for the port ends it — SIGKILL after the
/// grace — and the daemon exits 0 within the stop bound.
#[test]
fn a_signal_while_a_browser_never_answers_ends_it_even_when_it_ignores_sigterm() {
    use std::os::unix::fs::PermissionsExt;
    let profile = Profile::new("stop-silent-browser");
    let fake = profile.path("silent-browser");
    std::fs::write(
        &fake,
        "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.05; done\n",
    )
    .expect("write the fake browser");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let chrome_profile = profile.path("chrome-profile");
    let mut daemon = launch_daemon(
        &profile,
        &[
            "--site",
            "none",
            "--chrome-path",
            &fake.display().to_string(),
        ],
    );
    wait_until("the browser's process appears", START, || {
        !executor::browser::managed::leftovers(&chrome_profile, &[]).is_empty()
    });
    let stopped_at = Instant::now();
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    let took = stopped_at.elapsed();
    assert!(took <= STOP_BOUND, "gone {took:?} after SIGTERM");
    let left = executor::browser::managed::leftovers(&chrome_profile, &[]);
    assert!(
        left.is_empty(),
        "the browser outlived the daemon: {:?}",
        left.iter().map(|p| p.pid).collect::<Vec<_>>()
    );
}

#[test]
fn stop_at_the_default_60_s_interval_ends_the_sleeping_daemon_and_its_browser_within_10_s() {
    let profile = Profile::new("stop-60s");
    // No --tick-interval: the default 60 s, so after its first tick the daemon sleeps for a
    // minute, and only a sleep that wakes on STOP meets the bound.
    let mut daemon = spawn(command(
        &profile.dir,
        &["--browser-mode", "launch", "--cdp-port", "0", "daemon"],
    ));
    daemon.lines.wait_for(START, is_tick_line);
    assert!(
        executor::browser::managed::Identity::read(&profile.path("chrome.json")).is_some(),
        "the daemon launched its browser"
    );
    let stopped_at = Instant::now();
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let status = daemon.wait_exit(STOP_BOUND);
    let took = stopped_at.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took <= STOP_BOUND, "gone {took:?} after STOP");
    exit_lines_in_order(&daemon.lines.all());
    assert_managed_browser_gone(&profile);
}

/// A site that accepts connections and never answers: a page sent there waits forever.
/// Returns its URL and the number of connections it has accepted so far.
async fn silent_site() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the silent site");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new(); // kept open, never read, never answered
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

/// Tick work stuck on a page that never answers: it opens the silent site with a deadline far
/// beyond any test, so only the daemon's abort can end the tick.
struct StuckOnSilentSite(String);

#[async_trait::async_trait]
impl executor::tick::TickWork for StuckOnSilentSite {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, executor::tick::WorkError> {
        Ok(Default::default())
    }
    async fn run(
        &self,
        browser: &executor::browser::Browser,
        _shutdown: &executor::stop::Shutdown,
    ) -> executor::tick::WorkReport {
        let _ = browser.navigate(&self.0, Duration::from_secs(3600)).await;
        Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_hanging_tick_aborts_it_after_the_grace_and_ends_the_daemon_and_its_browser_within_10_s(
) {
    let profile = Profile::new("stop-hanging");
    let (url, accepted) = silent_site().await;
    // The default runtime cap (5 min) is far away: only STOP, then the abort after its grace,
    // can end this tick.
    let (daemon, _shutdown) = in_process_daemon(&profile, &[], Arc::new(StuckOnSilentSite(url)));
    eventually("the tick hangs on the silent site", START, || async {
        accepted.load(Ordering::SeqCst) > 0
    })
    .await;
    let stopped_at = Instant::now();
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let exit = tokio::time::timeout(STOP_BOUND, daemon)
        .await
        .expect("the daemon is gone within 10 s of STOP")
        .expect("join")
        .expect("run");
    let took = stopped_at.elapsed();
    assert!(
        took >= executor::daemon::ABORT_GRACE,
        "work in flight gets its grace first: gone after {took:?}"
    );
    assert_eq!(
        exit,
        executor::daemon::Exit::Stopped(executor::stop::StopReason::File)
    );
    let capped = sqlite_events(&profile.db(), "EXECUTOR_TICK_CAPPED");
    assert_eq!(capped.len(), 1, "the hanging tick was aborted: {capped:?}");
    assert_eq!(capped[0]["aborted_on_stop"], true);
    assert_managed_browser_gone(&profile);
}

#[test]
fn stop_exits_1_when_the_daemon_is_still_running_at_the_timeout_and_leaves_the_switch() {
    let profile = Profile::new("stop-timeout");
    let mut daemon = failing_daemon(&profile, free_port(), &[]);
    daemon.lines.wait_for(START, is_tick_line);
    // Frozen, the daemon cannot see the switch: `stop` must give up at its timeout.
    daemon.signal(libc::SIGSTOP);
    let (code, output) = run(
        &mut command(&profile.dir, &["stop", "--timeout", "1s"]),
        EXIT,
    );
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(&format!(
            "daemon (pid {}) still running after 1s",
            daemon.pid()
        )),
        "{output}"
    );
    assert!(
        profile.path("STOP_EXECUTOR").exists(),
        "the STOP switch stays in place"
    );
    daemon.signal(libc::SIGCONT);
    assert_eq!(
        daemon.wait_exit(EXIT).code(),
        Some(0),
        "thawed, it obeys the switch"
    );
}
