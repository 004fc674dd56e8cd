//! The daemon as operators run it: the real binary, a real Chromium (launch mode), a real SQLite
//! file. Lock, STOP, signals, backoff, the tick line vs the tick event, bad input.

mod common;

use common::*;
use std::time::Duration;

const START: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(15);

/// A healthy daemon: launch mode on a free port, short interval.
fn launch_daemon(profile: &Profile, extra: &[&str]) -> Running {
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
fn failing_daemon(profile: &Profile, port: u16, extra: &[&str]) -> Running {
    let port = port.to_string();
    let mut args = vec![
        "--browser-mode",
        "cdp",
        "--cdp-port",
        &port,
        "--tick-interval",
        "200ms",
        "--backoff",
        "100ms",
        "--max-failures",
        "100000",
    ];
    args.extend_from_slice(extra);
    args.push("daemon");
    spawn(command(&profile.dir, &args))
}

fn exit_lines_in_order(lines: &[String]) {
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

fn sqlite_events(db: &std::path::Path, event_type: &str) -> Vec<serde_json::Value> {
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

#[test]
fn second_daemon_exits_zero_naming_the_first_and_leaves_its_lock_alone() {
    let profile = Profile::new("second");
    let port = free_port();
    let first = failing_daemon(&profile, port, &[]);
    first.lines.wait_for(START, is_tick_line);
    let lock_before = std::fs::read_to_string(profile.path("executor.pid")).expect("lock file");
    assert!(lock_before.starts_with(&format!("{}:", first.pid())));

    let (code, output) = run(
        &mut command(&profile.dir, &["--cdp-port", &port.to_string(), "daemon"]),
        EXIT,
    );
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(&format!(
            "already running on this profile (pid {})",
            first.pid()
        )),
        "{output}"
    );

    assert_eq!(
        std::fs::read_to_string(profile.path("executor.pid")).expect("lock file"),
        lock_before
    );
    let ticks_before = first.lines.all().iter().filter(|l| is_tick_line(l)).count();
    first
        .lines
        .wait_for_nth(ticks_before + 1, START, is_tick_line);
}

#[test]
fn kill_9_leaves_a_stale_lock_that_the_next_start_takes_over() {
    let profile = Profile::new("stale");
    let port = free_port();
    let mut first = failing_daemon(&profile, port, &[]);
    first.lines.wait_for(START, is_tick_line);
    first.signal(libc::SIGKILL);
    first.wait_exit(EXIT);
    assert!(
        profile.path("executor.pid").exists(),
        "kill -9 cannot remove the lock file"
    );

    let mut second = failing_daemon(&profile, port, &[]);
    let line = second.lines.wait_for(START, |l| l.contains("Stale lock"));
    assert!(line.contains(&first.pid().to_string()), "{line}");
    second.lines.wait_for(START, is_tick_line);
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(second.wait_exit(EXIT).code(), Some(0));
    assert!(!profile.path("executor.pid").exists());
}

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
fn five_failing_ticks_back_off_in_order_then_exit_non_zero() {
    let profile = Profile::new("failures");
    let port = free_port(); // nothing listens there
    let mut daemon = spawn(command(
        &profile.dir,
        &[
            "--cdp-port",
            &port.to_string(),
            "--tick-interval",
            "100ms",
            "--backoff",
            "30ms,60ms,120ms,300ms",
            "--max-failures",
            "5",
            "daemon",
        ],
    ));
    let status = daemon.wait_exit(START);
    assert_eq!(status.code(), Some(1));
    let ticks = tick_lines(&profile.path("executor.log"));
    let backoffs: Vec<&str> = ticks.iter().filter_map(|l| field(l, "backoff")).collect();
    assert_eq!(
        backoffs,
        ["30ms", "60ms", "120ms", "300ms", "300ms"],
        "{ticks:#?}"
    );
    assert!(ticks
        .iter()
        .all(|l| l.contains(" last_error=") && l.contains("pages=0")));
    let crash = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_CRASH");
    assert_eq!(crash.len(), 1);
    assert_eq!(crash[0]["consecutive_failures"], 5);
    let exits = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_EXIT");
    assert_eq!(exits[0]["exit_code"], 1);
    assert!(!profile.path("executor.pid").exists());
}

#[test]
fn tick_lines_and_tick_events_agree_one_to_one() {
    let profile = Profile::new("agree");
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for_nth(6, START, is_tick_line);
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));

    let lines = tick_lines(&profile.path("executor.log"));
    let events = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_TICK");
    assert!(lines.len() >= 6);
    assert_eq!(lines.len(), events.len(), "one event per line");
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(field(line, "ts"), event["timestamp"].as_str());
        assert_eq!(
            field(line, "pages").map(str::to_string),
            Some(event["pages"].to_string())
        );
        let pids: Vec<String> = event["chrome_pids"]
            .as_array()
            .expect("pids")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            field(line, "pids").map(str::to_string),
            Some(format!("[{}]", pids.join(",")))
        );
        for key in [
            "posting_ready",
            "posting_attempts",
            "reply_ready",
            "reply_attempts",
        ] {
            assert_eq!(
                field(line, key).map(str::to_string),
                Some(event[key].to_string()),
                "{key}"
            );
        }
        assert_eq!(field(line, "backoff"), Some("0s"));
        assert_eq!(event["backoff_seconds"], 0);
        assert!(event["last_error"].is_null());
        assert_eq!(field(line, "pages"), Some("1"));
        for key in ["run_id", "executor_id", "tick", "duration_ms"] {
            assert!(!event[key].is_null(), "{key} missing");
        }
    }
    // The seed's grep works on the log as written.
    let grep: Vec<&str> = lines.iter().filter_map(|l| field(l, "pages")).collect();
    assert!(grep.iter().all(|p| *p == "1"));
}

#[test]
fn bad_input_is_one_clear_line_and_no_panic() {
    let profile = Profile::new("badinput");
    // (environment, arguments, what the one line must name)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("CDP_PORT", "abc")],
            vec!["daemon"],
            "CDP_PORT=\"abc\"",
        ),
        (
            vec![("RUNNER_BROWSER", "firefox")],
            vec!["daemon"],
            "RUNNER_BROWSER=\"firefox\"",
        ),
        (
            vec![("DATABASE_URL", "mysql://nope")],
            vec!["daemon"],
            "DATABASE_URL=\"mysql://nope\"",
        ),
        (
            vec![],
            vec!["--tick-interval", "soon", "daemon"],
            "--tick-interval=\"soon\"",
        ),
        (
            vec![("EXECUTOR_BACKOFF", "30s,x")],
            vec!["daemon"],
            "EXECUTOR_BACKOFF",
        ),
        (
            vec![("EXECUTION_MODE", "planner")],
            vec!["daemon"],
            "EXECUTION_MODE",
        ),
    ];
    for (env, args, expected) in cases {
        let mut cmd = command(&profile.dir, &args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let (code, output) = run(&mut cmd, EXIT);
        assert_eq!(code, 2, "{env:?} {args:?}: {output}");
        assert!(output.contains(expected), "{output}");
        assert_eq!(output.trim().lines().count(), 1, "one line: {output}");
        assert!(!output.contains("panicked"));
    }

    // A lock file that is a directory.
    std::fs::create_dir(profile.path("executor.pid")).expect("mkdir");
    let (code, output) = run(&mut command(&profile.dir, &["daemon"]), EXIT);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("is a directory"), "{output}");
    std::fs::remove_dir(profile.path("executor.pid")).expect("rmdir");

    // A profile that cannot be created (its parent is a file).
    let file = profile.path("plain-file");
    std::fs::write(&file, "").expect("write");
    let (code, output) = run(&mut command(&file.join("profile"), &["daemon"]), EXIT);
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("profile"), "{output}");
    assert!(!output.contains("panicked"));
}

#[test]
fn corrupt_lock_files_are_taken_over() {
    let profile = Profile::new("corrupt");
    let port = free_port();
    for garbage in ["", "garbage\n\u{0}\u{1}", "123:notanumber"] {
        std::fs::write(profile.path("executor.pid"), garbage).expect("write");
        let mut daemon = failing_daemon(&profile, port, &[]);
        daemon.lines.wait_for(START, |l| l.contains("Stale lock"));
        daemon.lines.wait_for(START, is_tick_line);
        daemon.signal(libc::SIGTERM);
        assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
        assert!(!profile.path("executor.pid").exists());
    }
}

#[test]
fn original_deployment_environment_works_as_written() {
    let profile = Profile::new("compat");
    let port = free_port();
    let mut cmd = command(
        &profile.dir,
        &["--tick-interval", "200ms", "--backoff", "100ms", "daemon"],
    );
    cmd.env("EXECUTION_MODE", "executor")
        .env("RUNNER_MODE", "true")
        .env("RUNNER_BROWSER", "cdp")
        .env("CDP_PORT", port.to_string());
    let mut daemon = spawn(cmd);
    let line = daemon.lines.wait_for(START, is_tick_line);
    assert!(line.contains("nothing is listening for CDP"), "{line}");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
}

/// A TCP proxy to PostgreSQL that the test can take down (every connection cut, new ones
/// closed at once) and bring back, to make the store unreachable mid-run.
struct PgProxy {
    port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl PgProxy {
    async fn start(upstream: std::net::SocketAddr) -> PgProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                conns2.lock().expect("conns").push(task.abort_handle());
            }
        });
        PgProxy {
            port,
            up,
            connections,
        }
    }

    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().expect("conns").drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn pg_upstream(base: &str) -> std::net::SocketAddr {
    let config: tokio_postgres::Config = base.parse().expect("url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_sql_runs_verbatim_on_postgres_and_shows_pages_1_for_every_tick() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let url = postgres_schema(&base).await;
    let profile = Profile::new("seedsql");
    let mut daemon = launch_daemon(&profile, &["--database", &url]);
    let lines = daemon.lines.clone();
    tokio::task::spawn_blocking(move || lines.wait_for_nth(4, START, is_tick_line))
        .await
        .expect("join");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let status = tokio::task::spawn_blocking(move || daemon.wait_exit(EXIT))
        .await
        .expect("join");
    assert_eq!(status.code(), Some(0));
    let ticks = tick_lines(&profile.path("executor.log"));

    let client = postgres_client(&url).await;
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/seed_queries.sql"
    ))
    .expect("seed sql");
    let queries: Vec<&str> = seed
        .split(";\n")
        .map(str::trim)
        .filter(|q| q.contains("SELECT"))
        .collect();
    assert_eq!(
        queries.len(),
        3,
        "recent ticks, page-count distribution, failure rate"
    );

    let recent = client
        .query(queries[0], &[])
        .await
        .expect("recent ticks query");
    assert_eq!(recent.len(), ticks.len().min(20));
    for row in &recent {
        assert_eq!(row.get::<_, Option<String>>("pages").as_deref(), Some("1"));
        assert_eq!(row.get::<_, Option<String>>("last_error"), None);
        assert!(row
            .get::<_, Option<String>>("chrome_pids")
            .is_some_and(|p| p.starts_with('[')));
    }
    let distribution = client
        .query(queries[1], &[])
        .await
        .expect("distribution query");
    assert_eq!(distribution.len(), 1, "only pages=1");
    assert_eq!(
        distribution[0].get::<_, Option<String>>("pages").as_deref(),
        Some("1")
    );
    assert_eq!(distribution[0].get::<_, i64>("count") as usize, ticks.len());
    let failure = client
        .query_one(queries[2], &[])
        .await
        .expect("failure rate query");
    assert_eq!(failure.get::<_, i64>("total_ticks") as usize, ticks.len());
    assert_eq!(failure.get::<_, i64>("failed_ticks"), 0);
}

#[test]
fn ticks_go_on_while_sqlite_is_locked_and_every_event_lands_exactly_once() {
    let profile = Profile::new("spool-sqlite");
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for_nth(2, START, is_tick_line);
    let blocker = rusqlite::Connection::open(profile.db()).expect("open");
    blocker
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the store");
    let seen = daemon
        .lines
        .all()
        .iter()
        .filter(|l| is_tick_line(l))
        .count();
    daemon.lines.wait_for_nth(seen + 4, START, is_tick_line);
    wait_until("events spooled", START, || {
        profile.path("spool/events.jsonl").exists()
    });
    blocker.execute_batch("COMMIT").expect("unlock");
    drop(blocker);
    wait_until("spool flushed", START, || {
        !profile.path("spool/events.jsonl").exists()
    });
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));

    let lines = tick_lines(&profile.path("executor.log"));
    let events = sqlite_events(&profile.db(), "EXECUTOR_DAEMON_TICK");
    let event_ts: Vec<&str> = events
        .iter()
        .filter_map(|e| e["timestamp"].as_str())
        .collect();
    let line_ts: Vec<&str> = lines.iter().filter_map(|l| field(l, "ts")).collect();
    assert_eq!(event_ts, line_ts, "every tick once, in order");
    assert_eq!(
        sqlite_events(&profile.db(), "EXECUTOR_DAEMON_EXIT").len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_go_on_while_postgres_is_unreachable_and_every_event_lands_exactly_once() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let url = postgres_schema(&base).await;
    let proxy = PgProxy::start(pg_upstream(&base)).await;
    let proxied = {
        let mut config: tokio_postgres::Config = url.parse().expect("url");
        config.host("127.0.0.1").port(proxy.port);
        let user = config.get_user().unwrap_or("postgres").to_string();
        let db = config.get_dbname().unwrap_or("test").to_string();
        let options = url.split("options=").nth(1).unwrap_or_default().to_string();
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?options={options}",
            proxy.port
        )
    };
    let profile = Profile::new("spool-pg");
    let daemon = launch_daemon(
        &profile,
        // Without its queue a tick fails (and says so); keep the backoff short so ticks go on.
        &[
            "--database",
            &proxied,
            "--backoff",
            "100ms",
            "--max-failures",
            "100000",
        ],
    );
    let lines = daemon.lines.clone();
    let wait = move |n: usize| {
        let lines = lines.clone();
        tokio::task::spawn_blocking(move || lines.wait_for_nth(n, START, is_tick_line))
    };
    wait(2).await.expect("join");
    proxy.down();
    let seen = daemon
        .lines
        .all()
        .iter()
        .filter(|l| is_tick_line(l))
        .count();
    wait(seen + 4)
        .await
        .expect("ticks go on while the store is down");
    assert!(
        profile.path("spool/events.jsonl").exists(),
        "events were spooled"
    );
    proxy.restore();
    let spool = profile.path("spool/events.jsonl");
    tokio::task::spawn_blocking(move || wait_until("spool flushed", START, || !spool.exists()))
        .await
        .expect("join");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let mut daemon = daemon;
    let status = tokio::task::spawn_blocking(move || daemon.wait_exit(EXIT))
        .await
        .expect("join");
    assert_eq!(status.code(), Some(0));

    let client = postgres_client(&url).await;
    let rows = client
        .query(
            "SELECT event_data->>'timestamp' FROM system_events WHERE event_type='EXECUTOR_DAEMON_TICK' ORDER BY created_at, seq",
            &[],
        )
        .await
        .expect("ticks");
    let stored: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    let logged: Vec<String> = tick_lines(&profile.path("executor.log"))
        .iter()
        .filter_map(|l| field(l, "ts").map(str::to_string))
        .collect();
    assert_eq!(stored, logged, "every tick once, in order");
    let exits = client
        .query_one(
            "SELECT COUNT(*) FROM system_events WHERE event_type='EXECUTOR_DAEMON_EXIT'",
            &[],
        )
        .await
        .expect("exit");
    assert_eq!(exits.get::<_, i64>(0), 1);
}

/// The daemon in-process, as `main` runs it but with our own work and shutdown: launch mode on a
/// free port, 300 ms ticks, log to the profile's file only. `extra` are more settings by key.
fn in_process_daemon(
    profile: &Profile,
    extra: &[(&'static str, &str)],
    work: std::sync::Arc<dyn executor::tick::TickWork>,
) -> (
    tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    executor::stop::Shutdown,
) {
    in_process_daemon_with(profile, extra, None, Some(work))
}

/// [`in_process_daemon`] with the real job lanes acting through `site`.
fn in_process_daemon_with(
    profile: &Profile,
    extra: &[(&'static str, &str)],
    site: Option<std::sync::Arc<dyn executor::lanes::Site>>,
    work: Option<std::sync::Arc<dyn executor::tick::TickWork>>,
) -> (
    tokio::task::JoinHandle<Result<executor::daemon::Exit, executor::daemon::DaemonError>>,
    executor::stop::Shutdown,
) {
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
    let shutdown = executor::stop::Shutdown::new();
    let daemon = tokio::spawn(executor::daemon::run(settings, shutdown.clone(), options));
    (daemon, shutdown)
}

/// Waits for `n` tick lines in the profile's log, stops the in-process daemon, returns its exit.
async fn stop_after_ticks(
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

/// Tick work whose first run never returns: a script that spins forever in the page.
struct HangOnce(std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl executor::tick::TickWork for HangOnce {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, String> {
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

#[test]
fn json_log_format_writes_one_object_per_line_with_the_tick_fields() {
    let profile = Profile::new("jsonlog");
    let mut daemon = launch_daemon(&profile, &["--log-format", "json"]);
    let line = daemon.lines.wait_for(START, |l| l.contains("\"pages\""));
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    let object: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(object["pages"], 1);
    assert!(object["msg"].as_str().is_some_and(|m| m.starts_with("ts=")));
    let log = std::fs::read_to_string(profile.path("executor.log")).expect("log");
    assert!(log
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
}

/// Tick work that leaves our page on a site that opens tabs faster than anyone can close them.
struct TabFlood;

#[async_trait::async_trait]
impl executor::tick::TickWork for TabFlood {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_cannot_be_closed_fast_enough_exceed_the_hard_cap_and_the_daemon_exits_non_zero()
{
    let profile = Profile::new("hardcap");
    let (daemon, _shutdown) = in_process_daemon(&profile, &[], std::sync::Arc::new(TabFlood));
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

/// A site double: acts through the real page, and "publishes" into a list the test can count.
#[derive(Default)]
struct FakeSite {
    published: std::sync::Mutex<Vec<(String, String)>>,
    /// Texts whose publish goes through but whose answer is lost (once each).
    lose_answer: std::sync::Mutex<Vec<String>>,
    /// Posts are answered with HTTP 429.
    posts_rate_limited: bool,
}

#[async_trait::async_trait]
impl executor::lanes::Site for FakeSite {
    async fn prepare(
        &self,
        browser: &executor::browser::Browser,
        _job: &executor::jobs::Job,
    ) -> Result<(), executor::lanes::ActionError> {
        browser
            .navigate(
                "data:text/html,<div contenteditable id=composer></div>",
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| executor::lanes::ActionError::Failed(e.to_string()))
    }

    async fn publish(
        &self,
        _browser: &executor::browser::Browser,
        job: &executor::jobs::Job,
    ) -> Result<executor::lanes::Published, executor::lanes::ActionError> {
        if self.posts_rate_limited && job.kind == executor::jobs::Kind::Post {
            return Err(executor::lanes::ActionError::RateLimited {
                reset: Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
            });
        }
        let mut published = self.published.lock().expect("published");
        published.push((job.kind.as_str().to_string(), job.text.clone()));
        let id = published.len().to_string();
        let mut lose = self.lose_answer.lock().expect("lose");
        if let Some(i) = lose.iter().position(|t| *t == job.text) {
            lose.remove(i);
            return Err(executor::lanes::ActionError::Failed(
                "published, but the answer never came".into(),
            ));
        }
        Ok(executor::lanes::Published {
            post_id: Some(id),
            url: None,
        })
    }

    async fn find(
        &self,
        _browser: &executor::browser::Browser,
        job: &executor::jobs::Job,
        _account: Option<&str>,
        _since: std::time::SystemTime,
    ) -> Result<executor::lanes::Lookup, executor::lanes::ActionError> {
        let published = self.published.lock().expect("published");
        Ok(
            match published.iter().position(|(_, text)| *text == job.text) {
                Some(i) => executor::lanes::Lookup::Found(executor::lanes::Published {
                    post_id: Some((i + 1).to_string()),
                    url: None,
                }),
                None => executor::lanes::Lookup::NotFound,
            },
        )
    }
}

async fn enqueue_jobs(profile: &Profile, posts: usize, replies: usize) {
    use executor::jobs::{Kind, NewJob};
    let store = executor::store::open(&executor::settings::DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("store");
    for (kind, n) in [(Kind::Post, posts), (Kind::Reply, replies)] {
        for i in 0..n {
            let job = NewJob {
                kind,
                text: format!("{} {i}", kind.as_str()),
                reply_to: (kind == Kind::Reply).then(|| "1".to_string()),
                account: String::new(),
                idempotency_key: None,
                not_before: std::time::SystemTime::now(),
                max_attempts: 5,
            };
            store
                .job_enqueue(&job, std::time::SystemTime::now())
                .await
                .expect("enqueue");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lanes_publish_each_job_once_within_limits_and_tick_lines_count_the_true_backlog() {
    let profile = Profile::new("lanes");
    enqueue_jobs(&profile, 5, 3).await;
    let site = std::sync::Arc::new(FakeSite::default());
    let limits = [
        ("posts_per_hour", "2"),
        ("replies_per_hour", "100"),
        ("min_gap", "0s"),
    ];
    let (daemon, shutdown) = in_process_daemon_with(&profile, &limits, Some(site.clone()), None);
    let exit = stop_after_ticks(&profile, 5, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    let ticks = tick_lines(&profile.path("executor.log"));
    let first = &ticks[0];
    assert_eq!(field(first, "posting_ready"), Some("5"), "{first}");
    assert_eq!(field(first, "reply_ready"), Some("3"), "{first}");
    assert_eq!(field(first, "posting_attempts"), Some("1"));
    assert_eq!(field(first, "reply_attempts"), Some("1"));
    assert!(
        ticks
            .iter()
            .all(|l| field(l, "last_error").is_none() && field(l, "pages") == Some("1")),
        "{ticks:#?}"
    );
    let published = site.published.lock().expect("published").clone();
    let posts = published.iter().filter(|(k, _)| k == "post").count();
    let replies = published.iter().filter(|(k, _)| k == "reply").count();
    assert_eq!(posts, 2, "2 posts per hour");
    assert_eq!(
        replies, 3,
        "the reply lane is not held back by the posting lane's limit"
    );
    let mut texts: Vec<&String> = published.iter().map(|(_, t)| t).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), published.len(), "nothing published twice");
    let last = ticks.last().expect("ticks");
    assert_eq!(
        field(last, "posting_ready"),
        Some("3"),
        "still due, waiting for the hour: {last}"
    );
    assert_eq!(sqlite_events(&profile.db(), "POST_SUCCESS").len(), 2);
    assert_eq!(sqlite_events(&profile.db(), "REPLY_SUCCESS").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_answer_is_lost_is_verified_on_the_site_never_clicked_again() {
    let profile = Profile::new("lost-answer");
    enqueue_jobs(&profile, 1, 0).await;
    let site = std::sync::Arc::new(FakeSite::default());
    site.lose_answer.lock().expect("lose").push("post 0".into());
    let limits = [
        ("posts_per_hour", "100"),
        ("min_gap", "0s"),
        ("backoff", "100ms"),
    ];
    let (daemon, shutdown) = in_process_daemon_with(&profile, &limits, Some(site.clone()), None);
    let exit = stop_after_ticks(&profile, 3, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    assert_eq!(
        site.published.lock().expect("published").len(),
        1,
        "published exactly once"
    );
    let ticks = tick_lines(&profile.path("executor.log"));
    assert!(
        field(&ticks[0], "last_error").is_some_and(|e| e.contains("answer never came")),
        "{}",
        ticks[0]
    );
    assert_eq!(sqlite_events(&profile.db(), "JOB_OUTCOME_UNKNOWN").len(), 1);
    let rescued = sqlite_events(&profile.db(), "JOB_RESCUED");
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0]["found"], true);
    assert_eq!(sqlite_events(&profile.db(), "POST_SUCCESS").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_pauses_the_posting_lane_while_replies_go_on() {
    let profile = Profile::new("lane-429");
    enqueue_jobs(&profile, 2, 3).await;
    let site = std::sync::Arc::new(FakeSite {
        posts_rate_limited: true,
        ..Default::default()
    });
    let limits = [
        ("posts_per_hour", "100"),
        ("replies_per_hour", "100"),
        ("min_gap", "0s"),
        ("backoff", "100ms"),
    ];
    let (daemon, shutdown) = in_process_daemon_with(&profile, &limits, Some(site.clone()), None);
    let exit = stop_after_ticks(&profile, 5, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);

    let published = site.published.lock().expect("published").clone();
    assert_eq!(published.iter().filter(|(k, _)| k == "reply").count(), 3);
    assert_eq!(published.iter().filter(|(k, _)| k == "post").count(), 0);
    assert_eq!(
        sqlite_events(&profile.db(), "RATE_LIMIT_DETECTED").len(),
        1,
        "one 429, then the lane is paused"
    );
    let ticks = tick_lines(&profile.path("executor.log"));
    let post_attempts: u32 = ticks
        .iter()
        .filter_map(|l| field(l, "posting_attempts")?.parse::<u32>().ok())
        .sum();
    assert_eq!(
        post_attempts, 1,
        "no more post attempts while the breaker is open"
    );
}

// ---------------------------------------------------------------------------------------------
// The proof: executor verify and executor report.
// ---------------------------------------------------------------------------------------------

fn verify(profile: &Profile, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify"];
    args.extend_from_slice(extra);
    run(&mut command(&profile.dir, &args), EXIT)
}

fn criterion<'a>(output: &'a str, name: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no criterion {name:?} in:\n{output}"))
}

#[test]
fn verify_passes_after_a_short_clean_run_and_fails_on_an_empty_window() {
    let empty = Profile::new("verify-empty");
    let (code, output) = verify(&empty, &[]);
    assert_eq!(code, 1, "{output}");
    assert!(criterion(&output, "every tick has pages=1").starts_with("FAIL"));
    assert!(output.contains("no ticks in the window"), "{output}");

    let profile = Profile::new("verify-clean");
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for_nth(5, START, is_tick_line);
    assert!(
        criterion(&verify(&profile, &[]).1, "lock present while running").starts_with("PASS"),
        "lock held while running"
    );
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    let (code, output) = verify(&profile, &["--since", "10m"]);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("All 8 criteria pass."), "{output}");
    assert!(
        criterion(&output, "STOP honoured").contains("1 stop(s)"),
        "{output}"
    );

    // executor events: filtered by type and window, as a table or JSON lines.
    let (code, output) = run(
        &mut command(
            &profile.dir,
            &["events", "--type", "EXECUTOR_DAEMON_STOP", "--json"],
        ),
        EXIT,
    );
    assert_eq!(code, 0, "{output}");
    let stops: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0]["event_type"], "EXECUTOR_DAEMON_STOP");
    let (code, output) = run(
        &mut command(&profile.dir, &["events", "--since", "10m"]),
        EXIT,
    );
    assert_eq!(code, 0);
    assert!(
        output.contains("EXECUTOR_DAEMON_BOOT") && output.contains("EXECUTOR_DAEMON_EXIT"),
        "{output}"
    );
    let (code, output) = run(
        &mut command(&profile.dir, &["events", "--since", "yesterday-ish"]),
        EXIT,
    );
    assert_eq!(code, 2, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_naming_the_hard_cap_with_its_evidence() {
    let profile = Profile::new("verify-hardcap");
    let (daemon, _shutdown) = in_process_daemon(&profile, &[], std::sync::Arc::new(TabFlood));
    let exit = tokio::time::timeout(START, daemon)
        .await
        .expect("ends")
        .expect("join")
        .expect("run");
    assert_eq!(exit.code(), 1);
    let (code, output) = tokio::task::spawn_blocking(move || {
        let result = verify(&profile, &[]);
        drop(profile);
        result
    })
    .await
    .expect("join");
    assert_eq!(code, 1, "{output}");
    let line = criterion(&output, "no HARD CAP EXCEEDED");
    assert!(
        line.starts_with("FAIL") && line.contains("1 at 20"),
        "{line}"
    );
}

#[test]
fn verify_fails_naming_a_tick_gap_when_the_daemon_was_paused() {
    let profile = Profile::new("verify-gap");
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for_nth(3, START, is_tick_line);
    daemon.signal(libc::SIGSTOP);
    // The fault itself: the daemon is frozen for longer than any allowed gap (interval + 5 s slack).
    std::thread::sleep(Duration::from_secs(7));
    daemon.signal(libc::SIGCONT);
    let seen = daemon
        .lines
        .all()
        .iter()
        .filter(|l| is_tick_line(l))
        .count();
    daemon.lines.wait_for_nth(seen + 2, START, is_tick_line);
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    let (code, output) = verify(&profile, &[]);
    assert_eq!(code, 1, "{output}");
    let line = criterion(&output, "ticks regular");
    assert!(
        line.starts_with("FAIL") && line.contains("1 gap(s)"),
        "{line}"
    );
    assert!(
        criterion(&output, "every tick has pages=1").starts_with("PASS"),
        "only the gap fails: {output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_gives_the_same_answers_on_sqlite_and_postgres_and_matches_the_seed_sql() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let profile = Profile::new("report-both");
    let mut daemon = launch_daemon(&profile, &[]);
    let lines = daemon.lines.clone();
    tokio::task::spawn_blocking(move || lines.wait_for_nth(5, START, is_tick_line))
        .await
        .expect("join");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    tokio::task::spawn_blocking(move || daemon.wait_exit(EXIT))
        .await
        .expect("join");

    // The same run's events, in both stores.
    let sqlite = executor::store::open(&executor::settings::DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("sqlite");
    let url = postgres_schema(&base).await;
    let postgres = executor::store::open(&executor::settings::DatabaseUrl::Postgres(url.clone()))
        .await
        .expect("postgres");
    for event in sqlite
        .event_list(&Default::default())
        .await
        .expect("events")
    {
        postgres.event_insert(&event).await.expect("copy");
    }
    let since = std::time::SystemTime::now() - Duration::from_secs(3600);
    let from_sqlite = executor::report::Report::collect(sqlite.as_ref(), since)
        .await
        .expect("report");
    let from_postgres = executor::report::Report::collect(postgres.as_ref(), since)
        .await
        .expect("report");
    assert_eq!(from_sqlite.ticks, from_postgres.ticks);
    assert_eq!(
        from_sqlite.page_distribution(),
        from_postgres.page_distribution()
    );
    assert_eq!(from_sqlite.failure_rate(), from_postgres.failure_rate());
    assert!(from_sqlite.ticks.len() >= 5);

    // The seed's SQL, verbatim, on PostgreSQL: the same numbers.
    let client = postgres_client(&url).await;
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/seed_queries.sql"
    ))
    .expect("seed");
    let queries: Vec<&str> = seed
        .split(";\n")
        .map(str::trim)
        .filter(|q| q.contains("SELECT"))
        .collect();
    let distribution = client.query(queries[1], &[]).await.expect("distribution");
    let ours = from_postgres.page_distribution();
    assert_eq!(distribution.len(), ours.len());
    for (row, (pages, count, _, _)) in distribution.iter().zip(&ours) {
        assert_eq!(
            row.get::<_, Option<String>>("pages"),
            Some(pages.to_string())
        );
        assert_eq!(row.get::<_, i64>("count") as usize, *count);
    }
    let failure = client
        .query_one(queries[2], &[])
        .await
        .expect("failure rate");
    let (total, failed, _) = from_postgres.failure_rate();
    assert_eq!(failure.get::<_, i64>("total_ticks") as usize, total);
    assert_eq!(failure.get::<_, i64>("failed_ticks") as usize, failed);
}

#[test]
fn verify_run_runs_the_daemon_with_these_settings_then_verifies_that_run() {
    let profile = Profile::new("verify-run");
    let (code, output) = run(
        &mut command(
            &profile.dir,
            &[
                "--browser-mode",
                "launch",
                "--cdp-port",
                "0",
                "--tick-interval",
                "300ms",
                "verify",
                "--run",
                "3s",
            ],
        ),
        START,
    );
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("run over: touching"), "{output}");
    assert!(output.contains("All 8 criteria pass."), "{output}");
    assert!(
        tick_lines(&profile.path("executor.log")).len() >= 5,
        "ticked every 300 ms for 3 s"
    );
    assert!(
        !profile.path("STOP_EXECUTOR").exists(),
        "the STOP switch it pulled is removed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_opens_offline_and_draws_its_chart() {
    let profile = Profile::new("report-html");
    let mut daemon = launch_daemon(&profile, &[]);
    let lines = daemon.lines.clone();
    tokio::task::spawn_blocking(move || lines.wait_for_nth(4, START, is_tick_line))
        .await
        .expect("join");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    tokio::task::spawn_blocking(move || daemon.wait_exit(EXIT))
        .await
        .expect("join");

    let html_path = profile.path("report.html");
    let html_arg = html_path.display().to_string();
    let dir = profile.dir.clone();
    let (code, output) = tokio::task::spawn_blocking(move || {
        run(&mut command(&dir, &["report", "--html", &html_arg]), EXIT)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{output}");
    let html = std::fs::read_to_string(&html_path).expect("html written");
    for external in ["<script", "<link", " src=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "self-contained: found {external:?}"
        );
    }

    // Open it in headless Chromium (a file: URL — no network) and look at the drawn chart.
    let viewer = Profile::new("report-viewer");
    let mut flags = executor::settings::Layer::default();
    flags.flag("browser_mode", Some("launch".into()));
    flags.flag("cdp_port", Some("0".into()));
    let settings =
        executor::settings::resolve(Some(viewer.dir.clone()), &flags, &|_| None).expect("settings");
    let browser = executor::browser::Browser::new(
        executor::browser::BrowserConfig::from_settings(&settings),
        std::sync::Arc::new(|_| {}),
    );
    browser.connect().await.expect("browser");
    browser
        .navigate(
            &format!("file://{}", html_path.display()),
            Duration::from_secs(10),
        )
        .await
        .expect("open");
    let drawn = browser
        .evaluate(
            "({ series: document.querySelectorAll('#timeline polyline.series').length, \
                points: document.querySelectorAll('#timeline circle.point').length, \
                stops: document.querySelectorAll('#timeline line.stop').length, \
                width: document.getElementById('timeline').getBoundingClientRect().width, \
                rows: document.querySelectorAll('#ticks tr').length })",
            Duration::from_secs(5),
        )
        .await
        .expect("inspect");
    assert_eq!(drawn["series"], 3, "pages, queue depth, backoff: {drawn}");
    assert!(
        drawn["points"].as_u64().unwrap_or(0) >= 12,
        "a point per tick per series: {drawn}"
    );
    assert_eq!(drawn["stops"], 1, "the STOP is marked: {drawn}");
    assert!(
        drawn["width"].as_f64().unwrap_or(0.0) > 500.0,
        "laid out: {drawn}"
    );
    assert!(
        drawn["rows"].as_u64().unwrap_or(0) >= 5,
        "the tick table: {drawn}"
    );
    let shot = browser
        .page_call(
            "Page.captureScreenshot",
            serde_json::json!({ "format": "png" }),
            Duration::from_secs(10),
        )
        .await
        .expect("screenshot");
    let png = shot["data"].as_str().expect("png data");
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let bytes = base64_decode(png);
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(artifacts.join("report.png"), &bytes).expect("keep the screenshot");
    browser.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Metrics, health, systemd notify.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_match_the_stored_events() {
    let profile = Profile::new("metrics");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = launch_daemon(&profile, &["--metrics-addr", &addr]);
    let lines = daemon.lines.clone();
    tokio::task::spawn_blocking(move || lines.wait_for_nth(2, START, is_tick_line))
        .await
        .expect("join");
    // Three stray tabs through the DevTools endpoint: the page cap closes them.
    let chrome = executor::browser::managed::Identity::read(&profile.path("chrome.json"))
        .expect("chrome.json");
    for _ in 0..3 {
        let _ = executor::browser::cdp::http_request(
            [127, 0, 0, 1].into(),
            chrome.port,
            "PUT",
            "/json/new?about:blank",
            Duration::from_secs(5),
        )
        .await;
    }
    let store = executor::store::open(&executor::settings::DatabaseUrl::Sqlite(profile.db()))
        .await
        .expect("store");
    let count = |kind: &'static str| {
        let store = store.clone();
        async move {
            store
                .event_list(&executor::store::EventQuery {
                    types: vec![kind.into()],
                    ..Default::default()
                })
                .await
                .expect("events")
        }
    };
    eventually("all three strays recorded", START, || async {
        count("EXECUTOR_PAGE_CAP_ENFORCED")
            .await
            .iter()
            .map(|e| e.event_data["closed"].as_u64().unwrap_or(0))
            .sum::<u64>()
            >= 3
    })
    .await;

    let (status, text) = http_get(port, "/metrics").await;
    let scraped_at = std::time::SystemTime::now();
    assert_eq!(status, 200, "{text}");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').expect("name value");
        assert!(value.parse::<f64>().is_ok(), "value of {line:?}");
        let bare = name.split('{').next().unwrap_or(name);
        assert!(
            bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "name of {line:?}"
        );
        assert!(
            !name.contains('{') || name.ends_with('}'),
            "labels of {line:?}"
        );
    }
    // The counters equal the events stored up to the scrape.
    let ticks = metric(&text, "executor_ticks_total") as usize;
    let strays = metric(&text, "executor_stray_pages_closed_total") as u64;
    eventually("the store caught up with the scrape", START, || async {
        count("EXECUTOR_DAEMON_TICK")
            .await
            .iter()
            .filter(|e| e.created_at <= scraped_at)
            .count()
            == ticks
    })
    .await;
    let stored_strays: u64 = count("EXECUTOR_PAGE_CAP_ENFORCED")
        .await
        .iter()
        .filter(|e| e.created_at <= scraped_at)
        .map(|e| e.event_data["closed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(strays, stored_strays);
    assert!(ticks >= 2 && strays >= 3, "{text}");
    assert_eq!(metric(&text, "executor_pages"), 1.0);
    assert!(text.contains("executor_tick_duration_seconds_bucket{le=\"+Inf\"}"));

    let (status, body) = http_get(port, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let mut daemon = daemon;
    tokio::task::spawn_blocking(move || daemon.wait_exit(EXIT))
        .await
        .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_unhealthy_while_the_browser_is_frozen_and_healthy_after() {
    let profile = Profile::new("healthz");
    let cdp = free_port().to_string();
    let (code, output) = run(
        &mut command(&profile.dir, &["--cdp-port", &cdp, "chrome"]),
        EXIT,
    );
    assert_eq!(code, 0, "{output}");
    let chrome = executor::browser::managed::Identity::read(&profile.path("chrome.json"))
        .expect("chrome.json");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = spawn(command(
        &profile.dir,
        &[
            "--cdp-port",
            &cdp,
            "--metrics-addr",
            &addr,
            "--tick-interval",
            "300ms",
            "--backoff",
            "300ms",
            "--max-failures",
            "100000",
            "daemon",
        ],
    ));
    eventually("healthy", START, || async {
        http_get(port, "/healthz").await.0 == 200
    })
    .await;

    assert!(executor::platform::signal(
        chrome.pid,
        executor::platform::Signal::Stop
    ));
    eventually("unhealthy while frozen", START, || async {
        http_get(port, "/healthz").await.0 == 503
    })
    .await;
    let (_, why) = http_get(port, "/healthz").await;
    assert!(why.contains("heartbeat") || why.contains("tick"), "{why}");
    assert!(executor::platform::signal(
        chrome.pid,
        executor::platform::Signal::Cont
    ));
    eventually("healthy again", START, || async {
        http_get(port, "/healthz").await.0 == 200
    })
    .await;

    daemon.signal(libc::SIGTERM);
    tokio::task::block_in_place(|| daemon.wait_exit(EXIT));
    let (code, _) = run(&mut command(&profile.dir, &["chrome", "--stop"]), EXIT);
    assert_eq!(code, 0);
}

#[test]
fn systemd_notify_socket_receives_ready_watchdog_and_stopping() {
    let profile = Profile::new("notify");
    let socket_path = profile.path("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut cmd = command(
        &profile.dir,
        &[
            "--browser-mode",
            "launch",
            "--cdp-port",
            "0",
            "--tick-interval",
            "300ms",
            "daemon",
        ],
    );
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let mut daemon = spawn(cmd);
    let mut received = Vec::new();
    let mut buffer = [0u8; 256];
    while !(received.iter().any(|m| m == "READY=1")
        && received.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2)
    {
        let n = socket
            .recv(&mut buffer)
            .expect("a notification within 30 s");
        received.push(String::from_utf8_lossy(&buffer[..n]).to_string());
    }
    assert_eq!(
        received[0], "READY=1",
        "READY comes first, after the first tick: {received:?}"
    );
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    loop {
        let n = socket.recv(&mut buffer).expect("STOPPING within 30 s");
        if &buffer[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
}
