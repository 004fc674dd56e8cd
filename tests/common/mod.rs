//! Shared helpers for the integration tests: temporary profiles, the real binary as a child
//! process whose output lines can be awaited with a deadline, PostgreSQL schemas per test, and
//! waiting on conditions (never sleeping and hoping).

#![allow(dead_code)]

pub mod daemons;
pub mod rig;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_executor");

/// A fresh profile directory, removed on drop unless the test failed.
pub struct Profile {
    pub dir: PathBuf,
}

impl Profile {
    pub fn new(name: &str) -> Profile {
        let dir =
            std::env::temp_dir().join(format!("executor-test-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp profile");
        Profile { dir }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn db(&self) -> PathBuf {
        self.path("executor.db")
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        // Whatever a test (or a daemon it ran) starts on this profile, it must have ended by now:
        // a browser still running here is a leak. It is ended (verified by pid, start time and
        // path, as the product itself does), so that no test leaves one behind; and unless the
        // test is failing already, the leak fails it by name. Ending it silently would let a
        // daemon that leaks its browser pass.
        let chrome = self.dir.join("chrome-profile");
        let leaked = leaked_browser(&chrome);
        executor::browser::managed::end_processes(&leaked, &chrome, Duration::from_secs(2));
        if std::thread::panicking() {
            return; // the test failed: its profile stays for a look
        }
        if !leaked.is_empty() {
            let pids: Vec<u32> = leaked.iter().map(|p| p.pid).collect();
            panic!(
                "browser process(es) leaked on {} (pids {pids:?}, ended now)",
                chrome.display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The processes still using `chrome` (a browser profile) once those on their way out have had
/// a moment (bounded) to go: a browser's helpers may outlive its main process by a few
/// milliseconds, a leaked browser does not go by itself.
fn leaked_browser(chrome: &Path) -> Vec<executor::platform::ProcessInfo> {
    let left = || executor::browser::managed::leftovers(chrome, &[]);
    poll(Duration::from_secs(2), || {
        let now = left();
        now.is_empty().then_some(now)
    })
    .unwrap_or_else(left)
}

/// The one polling loop of the tests: `probe` until it gives a value, or `None` once `deadline`
/// has passed (the caller says what that means: a failure, or a fallback).
pub fn poll<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The exit status of `child` once it has ended, or `None` if it still runs at the deadline.
pub fn exited(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    poll(deadline, || child.try_wait().expect("try_wait"))
}

/// Ends `child` if it still runs: SIGTERM (a daemon closes its browser), SIGKILL after 10 s.
pub fn end_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        if exited(child, Duration::from_secs(10)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `condition` holds, polling, or panics with `what` at the deadline.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    if poll(deadline, || condition().then_some(())).is_none() {
        panic!("timed out after {deadline:?} waiting for: {what}");
    }
}

/// The async twin of [`wait_until`]: polls `condition` until it holds, or panics at the deadline.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // The deadline bounds the whole wait, a condition that never answers included; between
    // checks, the next tick of a 20 ms interval.
    let checks = async {
        let mut every = tokio::time::interval(Duration::from_millis(20));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if condition().await {
                return;
            }
        }
    };
    if tokio::time::timeout(deadline, checks).await.is_err() {
        panic!("timed out after {deadline:?} waiting for: {what}");
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Output lines of a child, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines {
    inner: Arc<(Mutex<Vec<String>>, Condvar)>,
}

impl Lines {
    fn push(&self, line: String) {
        let (lock, cvar) = &*self.inner;
        if let Ok(mut lines) = lock.lock() {
            lines.push(line);
        }
        cvar.notify_all();
    }

    pub fn all(&self) -> Vec<String> {
        self.inner.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits for the `n`-th line (1-based) matching `pred`; returns it.
    pub fn wait_for_nth(
        &self,
        n: usize,
        deadline: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let (lock, cvar) = &*self.inner;
        let end = Instant::now() + deadline;
        let mut lines = lock.lock().expect("lines lock");
        loop {
            let matching: Vec<&String> = lines.iter().filter(|l| pred(l)).collect();
            if matching.len() >= n {
                return matching[n - 1].clone();
            }
            let now = Instant::now();
            if now >= end {
                panic!(
                    "timed out after {deadline:?} waiting for line #{n}; output so far:\n{}",
                    lines.join("\n")
                );
            }
            lines = cvar.wait_timeout(lines, end - now).expect("wait").0;
        }
    }

    pub fn wait_for(&self, deadline: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_nth(1, deadline, pred)
    }
}

pub fn is_tick_line(line: &str) -> bool {
    line.starts_with("[EXECUTOR_DAEMON] ts=") && line.contains(" pages=")
}

/// The real binary running as a child, its stdout and stderr captured line by line.
pub struct Running {
    pub child: Child,
    pub lines: Lines,
    /// The threads reading stdout and stderr: done once the pipes are closed.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for exit, or panics at the deadline (killing the child); then until the reader
    /// threads have taken the last lines (bounded: a leaked grandchild may hold the pipes).
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let Some(status) = exited(&mut self.child, deadline) else {
            let _ = self.child.kill();
            panic!(
                "process did not exit within {deadline:?}; output:\n{}",
                self.lines.all().join("\n")
            );
        };
        let readers = &self.readers;
        poll(Duration::from_secs(2), || {
            readers.iter().all(|r| r.is_finished()).then_some(())
        });
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a daemon behind.
        end_child(&mut self.child);
    }
}

/// A command for the binary on `profile`, with a clean environment for our settings.
pub fn command<S: AsRef<std::ffi::OsStr>>(profile: &Path, args: &[S]) -> Command {
    let mut command = Command::new(BIN);
    command.arg("--profile").arg(profile);
    command.args(args);
    without_our_settings(&mut command);
    // Most tests are about the daemon, not a site: no site engine unless a test asks (--site).
    command.env("EXECUTOR_SITE", "none");
    command
}

/// Removes from `command`'s environment every variable that sets one of our settings (a test
/// run may have them, and a child must see only what its test gives it).
pub fn without_our_settings(command: &mut Command) {
    for (key, _) in std::env::vars() {
        let ours = key.starts_with("EXECUTOR_")
            || key.starts_with("RUNNER_")
            || matches!(
                key.as_str(),
                "CDP_PORT"
                    | "CDP_HOST"
                    | "DATABASE_URL"
                    | "STOP_EXECUTOR"
                    | "EXECUTION_MODE"
                    | "RUST_LOG"
            );
        if ours {
            command.env_remove(key);
        }
    }
}

/// A daemon's command-line flags: `defaults` (`--flag`, value), where `extra` (more
/// `--flag value` pairs) replaces the value of a flag it also sets and adds the others; then
/// the `daemon` subcommand.
pub fn daemon_args(defaults: &[(&str, &str)], extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<(String, String)> = defaults
        .iter()
        .map(|(flag, value)| (flag.to_string(), value.to_string()))
        .collect();
    for pair in extra.chunks(2) {
        let (flag, value) = (pair[0], pair.get(1).copied().unwrap_or(""));
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(slot) => slot.1 = value.to_string(),
            None => flags.push((flag.to_string(), value.to_string())),
        }
    }
    let mut args: Vec<String> = flags.into_iter().flat_map(|(f, v)| [f, v]).collect();
    args.push("daemon".into());
    args
}

pub fn spawn(command: Command) -> Running {
    spawn_with_stdin(command, Stdio::null())
}

/// [`spawn`] with `stdin` as the child's standard input (a file: `File::open(path)?.into()`).
pub fn spawn_with_stdin(mut command: Command, stdin: Stdio) -> Running {
    command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn executor");
    let lines = Lines::default();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let lines = lines.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(line) => lines.push(line),
                    Err(_) => break,
                }
            }
        }));
    }
    Running {
        child,
        lines,
        readers,
    }
}

/// Runs the binary to completion: (exit code, stdout + stderr).
pub fn run(command: &mut Command, deadline: Duration) -> (i32, String) {
    command.stdin(Stdio::null());
    let mut running = spawn(std::mem::replace(command, Command::new("true")));
    let status = running.wait_exit(deadline);
    (status.code().unwrap_or(-1), running.lines.all().join("\n"))
}

/// Runs the binary to completion with `input` on its stdin: (exit code, stdout, stderr).
/// Panics (killing the child) when it has not exited by the deadline.
pub fn run_with_stdin(
    mut command: Command,
    input: &str,
    deadline: Duration,
) -> (i32, String, String) {
    use std::io::{Read, Write};
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn executor");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    // A child that stops reading must not block the test: the writer is a thread of its own.
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let collect = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = collect(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let stderr = collect(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let Some(status) = exited(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("process did not exit within {deadline:?}");
    };
    (
        status.code().unwrap_or(-1),
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    )
}

/// Enqueues a job due now (default account, 5 attempts) straight into `store`.
pub async fn enqueue_now(
    store: &dyn executor::store::Store,
    kind: executor::jobs::Kind,
    text: &str,
    reply_to: Option<&str>,
) {
    let job = executor::jobs::NewJob {
        kind,
        text: text.into(),
        reply_to: reply_to.map(str::to_string),
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

/// The variable that points the tests at a PostgreSQL server.
pub const POSTGRES_VAR: &str = "EXECUTOR_TEST_DATABASE_URL";

/// The PostgreSQL URL the tests use, or `None` when [`POSTGRES_VAR`] is unset, after recording
/// the skip with [`skipped`]. Every test that needs PostgreSQL goes through here.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var(POSTGRES_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skipped(&format!("{POSTGRES_VAR} unset"));
            None
        }
    }
}

/// Records that the running test skipped (part of) its work, where it cannot go unnoticed:
///
/// - a `SKIPPED: <test binary>::<test> (<why>)` line on the process's stderr, written to the
///   handle and not with `eprintln!`, which libtest captures and hides for a passing test;
/// - the same line appended to the file named by `EXECUTOR_TEST_SKIP_LOG`, if set, so that a
///   run can count its skips (`.ci/run` fails when there is any).
///
/// The test is named by its thread: libtest runs each test on a thread named after it, and the
/// `#[tokio::test]` body runs on that thread.
pub fn skipped(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    let line = format!("SKIPPED: {}::{test} ({why})\n", env!("CARGO_CRATE_NAME"));
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(path) = std::env::var_os("EXECUTOR_TEST_SKIP_LOG") {
        // One write of one short line: appends from parallel tests do not interleave.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .unwrap_or_else(|err| panic!("cannot record the skip in {path:?}: {err}"));
    }
}

/// The variable that points the tests at a transaction-mode pooler (PgBouncer) in front of the
/// same server (`.ci/pgbouncer` starts one): `postgres://USER@HOST:PORT`, no database.
pub const POOLER_VAR: &str = "EXECUTOR_TEST_POOLER_URL";

/// For a test that runs through the pooler: a fresh database on the server (a pooler cannot keep
/// a per-connection search path, so each test gets a database rather than a schema), and the
/// pooler URL that reaches it. `None` (with the skip recorded) when either variable is unset.
pub async fn pooler_database() -> Option<String> {
    let direct = postgres_base_url()?;
    let pooler = match std::env::var(POOLER_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            skipped(&format!("{POOLER_VAR} unset"));
            return None;
        }
    };
    let name = create_database(&direct).await;
    Some(format!(
        "{}/{name}?pgbouncer=true",
        pooler.trim_end_matches('/')
    ))
}

/// Creates a fresh database `t_<uuid>` on the server of `direct`; returns its name.
async fn create_database(direct: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(direct, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    name
}

/// A fresh database for one test on the server of `base` (a direct URL); returns its URL.
/// For a test that takes locks of database scope, such as the migrations' advisory lock, which
/// in a schema of the shared database would hold up every other test's migrations.
pub async fn postgres_database(base: &str) -> String {
    let name = create_database(base).await;
    let (url, query) = match base.split_once('?') {
        Some((url, query)) => (url, format!("?{query}")),
        None => (base, String::new()),
    };
    let server = match url.rsplit_once('/') {
        // postgres://user@host:port/db → postgres://user@host:port
        Some((server, _)) if server.contains("//") && !server.ends_with('/') => server,
        _ => url,
    };
    format!("{server}/{name}{query}")
}

/// A fresh schema for one test; returns a URL whose connections use it.
pub async fn postgres_schema(base: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

/// A client on a schema URL made by [`postgres_schema`].
pub async fn postgres_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Tick lines of a log file.
pub fn tick_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| is_tick_line(l))
        .map(str::to_string)
        .collect()
}

/// `key=value` from a tick line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    if key == "last_error" {
        return Some(rest);
    }
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// Standard base64 (CDP screenshots) to bytes.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a' + 26) as u32),
            b'0'..=b'9' => Some((c - b'0' + 52) as u32),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = value(c) else { continue };
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// `GET http://127.0.0.1:PORT/path`: the status and the body (status 0 when nothing answered).
pub async fn http_get(port: u16, path: &str) -> (u16, String) {
    executor::browser::cdp::http_request(
        [127, 0, 0, 1].into(),
        port,
        "GET",
        path,
        Duration::from_secs(5),
    )
    .await
    .unwrap_or((0, String::new()))
}

/// The value of the sample named `name` (with its labels, if any) in Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}
