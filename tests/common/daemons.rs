//! Ways to start the daemon in a test, shared by the daemon suites: the real binary as a child
//! (launch mode, or failing ticks on a port where nothing listens), or `daemon::run` in-process
//! with our own tick work and shutdown; and reading the events it stored.

use super::*;

/// How long a daemon may take to show what a test waits for (a browser launch included).
pub const START: Duration = Duration::from_secs(60);
/// How long a stopped daemon may take to exit in tests that are not about the STOP bound.
pub const EXIT: Duration = Duration::from_secs(15);
/// The README's bound: after STOP the daemon is gone within 10 s, whatever it was doing.
pub const STOP_BOUND: Duration = Duration::from_secs(10);

/// SPEC §2's exit lines are all there, in order.
pub fn exit_lines_in_order(lines: &[String]) {
    let wanted = [
        "[EXECUTOR_DAEMON] STOP switch triggered - exiting gracefully...",
        "[EXECUTOR_DAEMON] Cleaning up...",
        "[EXECUTOR_DAEMON] Lock released",
        "[EXECUTOR_DAEMON] Exited gracefully",
    ];
    let positions: Vec<usize> = wanted
        .iter()
        .map(|w| {
            lines
                .iter()
                .position(|l| l == w)
                .unwrap_or_else(|| panic!("missing line {w:?} in:\n{}", lines.join("\n")))
        })
        .collect();
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "exit lines out of order: {positions:?}"
    );
}

/// A healthy daemon: launch mode on a free port, short interval.
pub fn launch_daemon(profile: &Profile, extra: &[&str]) -> Running {
    let mut args = vec![
        "--browser-mode",
        "launch",
        "--cdp-port",
        "0",
        "--tick-interval",
        "300ms",
    ];
    args.extend_from_slice(extra);
    args.push("daemon");
    spawn(command(&profile.dir, &args))
}

/// A daemon whose ticks fail (nothing listens on its CDP port) but which keeps running.
/// `extra` are more `--flag value` pairs; one that is also set here replaces it.
pub fn failing_daemon(profile: &Profile, port: u16, extra: &[&str]) -> Running {
    spawn(failing_daemon_command(profile, port, extra))
}

/// The command [`failing_daemon`] spawns, for a test that adds to it what `--flag value` pairs
/// cannot carry (a switch, by its environment variable).
pub fn failing_daemon_command(profile: &Profile, port: u16, extra: &[&str]) -> Command {
    let port = port.to_string();
    let defaults = [
        ("--browser-mode", "cdp"),
        ("--cdp-port", port.as_str()),
        ("--tick-interval", "200ms"),
        ("--backoff", "100ms"),
        ("--max-failures", "100000"),
    ];
    command(&profile.dir, &daemon_args(&defaults, extra))
}

/// The `event_data` of every stored event of `event_type` in a SQLite store, oldest first.
pub fn sqlite_events(db: &std::path::Path, event_type: &str) -> Vec<serde_json::Value> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT event_data FROM system_events WHERE event_type = ?1 ORDER BY created_at, rowid",
        )
        .expect("prepare");
    stmt.query_map([event_type], |row| row.get::<_, String>(0))
        .expect("query")
        .map(|r| serde_json::from_str(&r.expect("row")).expect("json"))
        .collect()
}

/// The daemon in-process, as `main` runs it but with our own work and shutdown: launch mode on a
/// free port, 300 ms ticks, log to the profile's file only. `extra` are more settings by key.
pub fn in_process_daemon(
    profile: &Profile,
    extra: &[(&'static str, &str)],
    work: std::sync::Arc<dyn executor::tick::TickWork>,
) -> (
    tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    executor::stop::Shutdown,
) {
    in_process_daemon_with(profile, extra, None, Some(work))
}

/// [`in_process_daemon`] whose browser gives up sweeping a tab storm at once: what lies
/// behind the storm bound (replacement, then the hard cap) is reached without a storm that
/// outlasts it.
pub fn in_process_daemon_without_storm_bound(
    profile: &Profile,
    work: std::sync::Arc<dyn executor::tick::TickWork>,
) -> (
    tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    executor::stop::Shutdown,
) {
    let (settings, options) = in_process_parts(profile, &[], None, Some(work));
    let options = executor::daemon::RunOptions {
        browser: Some(executor::browser::BrowserConfig {
            storm_bound: Duration::ZERO,
            ..executor::browser::BrowserConfig::from_settings(&settings)
        }),
        ..options
    };
    let shutdown = executor::stop::Shutdown::new();
    let daemon = tokio::spawn(executor::daemon::run(settings, shutdown.clone(), options));
    (daemon, shutdown)
}

/// [`in_process_daemon`] with the real job lanes acting through `site`.
pub fn in_process_daemon_with(
    profile: &Profile,
    extra: &[(&'static str, &str)],
    site: Option<std::sync::Arc<dyn executor::sites::Site>>,
    work: Option<std::sync::Arc<dyn executor::tick::TickWork>>,
) -> (
    tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    executor::stop::Shutdown,
) {
    let (settings, options) = in_process_parts(profile, extra, site, work);
    let shutdown = executor::stop::Shutdown::new();
    let daemon = tokio::spawn(executor::daemon::run(settings, shutdown.clone(), options));
    (daemon, shutdown)
}

/// The settings and run options of an in-process daemon (see [`in_process_daemon_with`]).
fn in_process_parts(
    profile: &Profile,
    extra: &[(&'static str, &str)],
    site: Option<std::sync::Arc<dyn executor::sites::Site>>,
    work: Option<std::sync::Arc<dyn executor::tick::TickWork>>,
) -> (executor::settings::Settings, executor::daemon::RunOptions) {
    use executor::settings::{self, Layer};
    let mut flags = Layer::default();
    flags.flag("browser_mode", Some("launch".into()));
    flags.flag("cdp_port", Some("0".into()));
    flags.flag("tick_interval", Some("300ms".into()));
    for (key, value) in extra {
        flags.flag(key, Some(value.to_string()));
    }
    let settings =
        settings::resolve(Some(profile.dir.clone()), &flags, &|_| None).expect("settings");
    let options = executor::daemon::RunOptions {
        logger: executor::log::Logger::quiet(settings.log_format, Some(&settings.log_path())),
        site,
        work,
        browser: None,
    };
    (settings, options)
}

/// Waits for `n` tick lines in the profile's log, stops the in-process daemon, returns its exit.
pub async fn stop_after_ticks(
    profile: &Profile,
    n: usize,
    daemon: tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    shutdown: executor::stop::Shutdown,
) -> executor::daemon::Exit {
    let log = profile.path("executor.log");
    tokio::task::spawn_blocking(move || {
        wait_until(&format!("{n} ticks"), START, || tick_lines(&log).len() >= n)
    })
    .await
    .expect("join");
    shutdown.trigger(executor::stop::StopReason::Requested("test".into()));
    tokio::time::timeout(EXIT, daemon)
        .await
        .expect("exits")
        .expect("join")
        .expect("run")
}

/// Tick work that leaves our page on a site that opens tabs faster than anyone can close them.
pub struct TabFlood;

#[async_trait::async_trait]
impl executor::tick::TickWork for TabFlood {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, executor::tick::WorkError> {
        Ok(Default::default())
    }
    async fn run(
        &self,
        browser: &executor::browser::Browser,
        _shutdown: &executor::stop::Shutdown,
    ) -> executor::tick::WorkReport {
        let flood = "data:text/html,<script>setInterval(() => { for (let i = 0; i < 20; i++) window.open('about:blank') }, 5)</script>";
        let _ = browser.navigate(flood, Duration::from_secs(5)).await;
        Default::default()
    }
}
