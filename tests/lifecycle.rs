//! The daemon's life as operators see it, through the real binary: one daemon per profile (the
//! lock, stale and corrupt lock files), bad input refused in one line, the original deployment's
//! environment, consecutive failures backing off then exiting non-zero, the store unreachable at
//! start, and the tick line and its stored event made from one result.

mod common;

use common::daemons::*;
use common::*;

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

#[test]
fn a_store_unreachable_at_start_exits_1_naming_it_and_releases_the_lock() {
    let profile = Profile::new("store-down");
    // Port 1: nothing listens there, the connection is refused at once.
    let (code, output) = run(
        &mut command(
            &profile.dir,
            &["--database", "postgres://postgres@127.0.0.1:1/x", "daemon"],
        ),
        EXIT,
    );
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("cannot open the store"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    assert!(
        !profile.path("executor.pid").exists(),
        "the lock is released on this exit too"
    );
}
