//! Scale benchmarks that print figures (never assertions), issue #13 items 3 and 4:
//! `cargo build --release && cargo run --release --example scale -- backlog|browsers|flags ...`
//!
//! - `backlog [sqlite|postgres|both] [JOBS] [RUNS]`: JOBS (default 1,000) due posts and no limits
//!   worth the name, published end to end by the REAL release binary (`target/release/executor
//!   daemon`, launch mode: its own managed headless Chromium, logged in to the sandbox first) with a
//!   100 ms tick, against the sandbox served in-process. Prints the time per action over the first
//!   and the last hundred (from the store's finish times) and their ratio: a claim or a tick that
//!   grows with the backlog shows as a ratio above 1.
//! - `backlog-store`: the store's share of a tick (the count of ready jobs the tick line shows,
//!   and one job's claim, `attempting` and outcome) with 1,000, 10,000 and 100,000 due jobs, on
//!   SQLite and PostgreSQL, without a browser: what the end-to-end figure cannot resolve.
//! - `browsers [N,N,...] [IDLE_S] [BUSY_S]`: N executors on one PostgreSQL schema (the fleet
//!   model), each the real binary with its own profile, browser and account, at a 60 s tick. First
//!   IDLE_S seconds with nothing queued (CPU per executor: daemon + its browser tree), then BUSY_S
//!   seconds with a post due for every account at every tick. Prints each browser's PSS, the CPU
//!   seconds per hour, and the ticks that slipped (see [`slips`]).
//! - `flags [RUNS] [ACTIONS]`: the browser's PSS idle and during actions on the sandbox for each
//!   candidate set of extra Chromium flags (added through a `--chrome-path` wrapper, exactly as an
//!   operator could), with the time per action so a flag that hurts the checks or the speed shows.
//!
//! PostgreSQL from `EXECUTOR_TEST_DATABASE_URL` (default the local server's `test` database), in a
//! schema of its own per run.

use executor::browser::managed::{self, LaunchOptions, Managed};
use executor::browser::{Browser, BrowserConfig};
use executor::jobs::{JobQuery, Kind, NewJob};
use executor::sandbox::Sandbox;
use executor::settings::{self, DatabaseUrl, Layer};
use executor::sites::{engine::SiteEngine, Site, SiteDefinition};
use executor::store::{self, EventQuery, Store};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const LONG: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("executor-scale-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// target/release/examples/scale → target/release/executor
fn binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("executor")))
        .filter(|p| p.exists())
        .expect("build the binary first: cargo build --release")
}

fn postgres_base() -> String {
    std::env::var("EXECUTOR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema on the PostgreSQL server, as a URL whose connections use it.
async fn postgres_schema() -> String {
    let base = postgres_base();
    let schema = format!("scale_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The sandbox on a free port of 127.0.0.1, served until the program ends.
async fn sandbox() -> (Sandbox, String) {
    let sandbox = Sandbox::new(None);
    let (addr, _task) = sandbox
        .serve(([127, 0, 0, 1], 0).into(), std::future::pending())
        .await
        .expect("sandbox");
    (sandbox, format!("http://{addr}"))
}

/// A managed headless Chromium on `chrome_profile`, started with `binary` (a wrapper adds flags).
async fn launch(binary: PathBuf, chrome_profile: &Path) -> Managed {
    let options = LaunchOptions {
        binary,
        profile_dir: chrome_profile.to_path_buf(),
        port: 0,
        headless: true,
        stderr_log: chrome_profile.with_extension("stderr.log"),
    };
    tokio::task::spawn_blocking(move || Managed::launch(&options, LONG))
        .await
        .expect("join")
        .expect("launch Chromium")
}

/// A handle attached to the browser listening on `port` (attach mode: shutting it down leaves
/// the browser running).
async fn attach(profile: &Path, port: u16) -> Browser {
    let mut flags = Layer::default();
    flags.flag("browser_mode", Some("cdp".into()));
    flags.flag("cdp_port", Some(port.to_string()));
    let settings =
        settings::resolve(Some(profile.to_path_buf()), &flags, &|_| None).expect("settings");
    let browser = Browser::new(BrowserConfig::from_settings(&settings), Arc::new(|_| {}));
    let end = Instant::now() + LONG;
    while browser.connect().await.is_err() {
        assert!(Instant::now() < end, "the browser does not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser
}

/// Logs in through the sandbox's login form as `user`, as an operator would once.
async fn log_in(browser: &Browser, url: &str, user: &str) {
    browser
        .navigate(&format!("{url}/i/flow/login"), LONG)
        .await
        .expect("login page");
    browser
        .call_function(
            "function (u) { this.querySelector('[data-testid=\"username\"]').value = u; return true; }",
            &[serde_json::json!(user)],
            LONG,
        )
        .await
        .expect("user name");
    browser
        .click("[data-testid=\"LoginForm_Login_Button\"]", LONG)
        .await
        .expect("log in");
    browser
        .wait_for("[data-testid=\"tweetTextarea_0\"]", LONG)
        .await
        .expect("logged in");
}

/// `<profile>/chrome-profile` logged in to the sandbox as `user`, the session on disk (Chromium
/// writes its cookie store some seconds after a login), the browser ended: a launch-mode daemon
/// on `profile` starts logged in.
async fn prepare_profile(profile: &Path, url: &str, user: &str) {
    let chrome_profile = profile.join("chrome-profile");
    let chrome = launch(
        managed::find_binary(None).expect("Chromium"),
        &chrome_profile,
    )
    .await;
    let browser = attach(profile, chrome.identity.port).await;
    log_in(&browser, url, user).await;
    browser.shutdown().await;
    let cookies = chrome_profile.join("Default/Cookies");
    let end = Instant::now() + Duration::from_secs(60);
    while !std::fs::read(&cookies)
        .map(|bytes| bytes.windows(10).any(|w| w == b"auth_token"))
        .unwrap_or(false)
    {
        assert!(
            Instant::now() < end,
            "the session cookie never reached the disk"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::task::spawn_blocking(move || chrome.terminate(Duration::from_secs(5)))
        .await
        .expect("join");
}

/// The real binary as a daemon on `profile`; its stdout lines are drained into the returned log.
fn daemon(profile: &Path, args: &[&str]) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut command = Command::new(binary());
    command
        .arg("--profile")
        .arg(profile)
        .args(args)
        .arg("daemon");
    // Only the flags above: the operator's environment must not redirect the run.
    for (key, _) in std::env::vars() {
        if key.starts_with("EXECUTOR_") || key == "CHROME_PATH" {
            command.env_remove(key);
        }
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the daemon");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = child.stdout.take().expect("stdout");
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("log").push(line);
        }
    });
    (child, lines)
}

/// Pulls the STOP switch and waits for the daemon to exit (it ends its browser first).
fn stop(profile: &Path, child: &mut Child) {
    std::fs::write(profile.join("STOP_EXECUTOR"), "").expect("touch STOP_EXECUTOR");
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post(text: String, account: &str, not_before: SystemTime) -> NewJob {
    NewJob {
        kind: Kind::Post,
        text,
        reply_to: None,
        account: account.to_string(),
        idempotency_key: None,
        not_before,
        max_attempts: 5,
    }
}

async fn succeeded(store: &dyn Store, account: Option<&str>) -> Vec<executor::jobs::Job> {
    store
        .job_list(&JobQuery {
            states: vec!["succeeded".into()],
            limit: Some(1_000_000),
            account: account.map(str::to_string),
            ..Default::default()
        })
        .await
        .unwrap_or_default()
}

/// How many jobs succeeded: a count, so polling it costs the daemon under test little.
async fn succeeded_count(store: &dyn Store) -> usize {
    store
        .job_count_by_state()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|(_, state, _)| state == "succeeded")
        .map(|(_, _, count)| *count as usize)
        .sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// Item 3: a backlog of due jobs.

mod backlog {
    use super::*;

    /// Per-action figures over one slice of the finish times: (mean ms, median ms) of the gaps
    /// between consecutive finishes.
    fn slice(finished: &[SystemTime]) -> (f64, f64) {
        let gaps: Vec<f64> = finished
            .windows(2)
            .map(|w| ms(w[1].duration_since(w[0]).unwrap_or_default()))
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
        (mean, median(gaps))
    }

    pub async fn run(store_name: &str, jobs: usize) {
        let dir = scratch("backlog");
        let profile = dir.join("profile");
        let (sandbox, url) = sandbox().await;
        prepare_profile(&profile, &url, executor::sandbox::HANDLE).await;
        let (database, url_of_store) = match store_name {
            "sqlite" => {
                let path = profile.join("executor.db");
                (
                    format!("sqlite://{}", path.display()),
                    DatabaseUrl::Sqlite(path),
                )
            }
            _ => {
                let url = postgres_schema().await;
                (url.clone(), DatabaseUrl::Postgres(url))
            }
        };
        let store = store::open(&url_of_store).await.expect("open the store");
        let now = SystemTime::now();
        for i in 0..jobs {
            store
                .job_enqueue(&post(format!("backlog {i:04} 🎉"), "", now), now)
                .await
                .expect("enqueue");
        }
        let load_before = load();
        let limit = (jobs * 100).to_string();
        let (mut child, _log) = daemon(
            &profile,
            &[
                "--database",
                &database,
                "--browser-mode",
                "launch",
                "--cdp-port",
                "0",
                "--site",
                "sandbox",
                "--site-url",
                &url,
                "--tick-interval",
                "100ms",
                "--posts-per-hour",
                &limit,
                "--replies-per-hour",
                &limit,
                "--min-gap",
                "0s",
                "--max-failures",
                "1000",
            ],
        );
        let started = Instant::now();
        let deadline = Duration::from_secs(60 + jobs as u64); // ≥ 1 s per action: far beyond
        let mut done = 0;
        while done < jobs && started.elapsed() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            done = succeeded_count(store.as_ref()).await;
            if child.try_wait().ok().flatten().is_some() {
                eprintln!("  the daemon exited early");
                break;
            }
        }
        let wall = started.elapsed();
        stop(&profile, &mut child);
        let mut finished: Vec<SystemTime> = succeeded(store.as_ref(), None)
            .await
            .iter()
            .map(|j| j.updated_at)
            .collect();
        finished.sort();
        let on_site = sandbox.posts().len();
        println!(
            "backlog, {store_name}: {} of {jobs} succeeded ({on_site} on the site) in {:.1} s, load before {load_before}, after {}",
            finished.len(),
            wall.as_secs_f64(),
            load()
        );
        if finished.len() >= 200 {
            let first = slice(&finished[..100]);
            let n = finished.len();
            let last = slice(&finished[n - 100..]);
            println!(
                "backlog, {store_name}: per action, actions 1-100: mean {:.1} ms (median {:.1}); actions {}-{n}: mean {:.1} ms (median {:.1}); last/first {:.2} (medians {:.2})",
                first.0,
                first.1,
                n - 99,
                last.0,
                last.1,
                last.0 / first.0,
                last.1 / first.1
            );
            let deciles: Vec<String> = finished
                .chunks(100)
                .map(|c| format!("{:.0}", slice(c).0))
                .collect();
            println!(
                "backlog, {store_name}: mean ms per action by hundred: {}",
                deciles.join(" ")
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The store's share of a tick against the size of the due backlog, without a browser: what the
/// tick's count of ready jobs costs (both lanes), and what one job's store path costs (claim with
/// the daemon's rate limits on but high, `attempting`, `succeeded`).
mod backlog_store {
    use super::*;
    use executor::events::Identity;
    use executor::jobs::{Claim, ClaimOutcome, Limits, Outcome};

    async fn measure(store_name: &str, url: DatabaseUrl, backlog: usize) {
        let store = store::open(&url).await.expect("open the store");
        let now = SystemTime::now();
        let mut left = backlog;
        while left > 0 {
            let chunk = left.min(10_000);
            let jobs = (0..chunk)
                .map(|i| post(format!("store backlog {left} {i}"), "", now))
                .collect();
            store
                .job_enqueue_batch(jobs, now, &Default::default())
                .await
                .expect("enqueue");
            left -= chunk;
        }
        let identity = Identity {
            run_id: "scale".into(),
            executor_id: "scale".into(),
        };
        let (mut counts, mut paths) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let started = Instant::now();
            let now = SystemTime::now();
            for kind in [Kind::Post, Kind::Reply] {
                store
                    .job_count_due(kind, Some(""), now)
                    .await
                    .expect("count");
            }
            counts.push(ms(started.elapsed()));
            let started = Instant::now();
            let claim = Claim {
                kind: Kind::Post,
                account: String::new(),
                owner: "scale".into(),
                lease_for: Duration::from_secs(300),
                limits: Limits {
                    per_hour: Some(1_000_000),
                    min_gap: Duration::ZERO,
                },
                gap_jitter: Duration::ZERO,
                now: SystemTime::now(),
            };
            let ClaimOutcome::Claimed(job) = store
                .job_claim_next(&claim, &identity)
                .await
                .expect("claim")
            else {
                panic!("nothing claimed from a backlog of {backlog}");
            };
            let token = job.state.lease().expect("lease").token.clone();
            store
                .job_mark_attempting(job.id, &token, SystemTime::now())
                .await
                .expect("attempting");
            let done = Outcome::Succeeded {
                post_id: Some(job.id.to_string()),
                url: None,
            };
            store
                .job_finish(job.id, &token, &done, &identity, SystemTime::now(), 0.0)
                .await
                .expect("finish");
            paths.push(ms(started.elapsed()));
        }
        println!(
            "backlog-store, {store_name}, {backlog} due: count of ready jobs (both lanes) median {:.3} ms; claim + attempting + succeeded median {:.3} ms (200 jobs)",
            median(counts),
            median(paths)
        );
    }

    pub async fn run() {
        let dir = scratch("backlog-store");
        for backlog in [1_000, 10_000, 100_000] {
            let path = dir.join(format!("{backlog}.db"));
            measure("SQLite", DatabaseUrl::Sqlite(path), backlog).await;
            let url = DatabaseUrl::Postgres(postgres_schema().await);
            measure("PostgreSQL", url, backlog).await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Item 4: several executors, each with its own browser, on one machine.

/// CPU time (user + system, with reaped children) of the processes in `pids`' trees, in seconds.
fn cpu_seconds(roots: &[u32]) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut seen = Vec::new();
    let mut total = 0u64;
    for root in roots {
        for process in executor::platform::process_tree(*root) {
            if seen.contains(&process.pid) {
                continue;
            }
            seen.push(process.pid);
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", process.pid)).unwrap_or_default();
            let after_name = stat.rfind(')').map(|i| i + 2).unwrap_or(stat.len());
            let fields: Vec<u64> = stat[after_name..]
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // utime, stime, cutime, cstime: fields 14-17 of the line, 11-14 after the name.
            total += fields.iter().skip(11).take(4).sum::<u64>();
        }
    }
    total as f64 / ticks_per_second
}

/// The PSS of `root`'s process tree, MiB.
fn pss_mib(root: u32) -> f64 {
    executor::platform::process_tree(root)
        .iter()
        .map(|p| executor::platform::proportional_memory(p.pid).unwrap_or(p.rss_bytes))
        .sum::<u64>() as f64
        / (1u64 << 20) as f64
}

/// The browser's pid from the daemon's latest tick line (`pids=[PID]`).
fn browser_pid(log: &Mutex<Vec<String>>) -> Option<u32> {
    log.lock().ok()?.iter().rev().find_map(|line| {
        line.split(" pids=[")
            .nth(1)?
            .split([']', ','])
            .next()?
            .parse()
            .ok()
    })
}

/// A tick "slips" when it starts later than its schedule or runs longer than the interval. The
/// daemon runs at a fixed rate: the next start is one interval after this start, plus a jitter
/// of at most 2 % of the interval (≤ 1 s). So a start more than interval + 1 s (+ 0.5 s for the
/// sleep's own wake-up) after the previous start is late. Returns (ticks, slipped, worst lateness
/// ms, longest tick ms) over every executor's tick events.
fn slips(ticks: &[(String, SystemTime, u64)], interval: Duration) -> (usize, usize, f64, u64) {
    let mut by_executor: BTreeMap<&str, Vec<(SystemTime, u64)>> = BTreeMap::new();
    for (executor, at, duration) in ticks {
        by_executor
            .entry(executor)
            .or_default()
            .push((*at, *duration));
    }
    let allowed = interval + interval.mul_f64(0.02).min(Duration::from_secs(1));
    let slack = Duration::from_millis(500);
    let (mut count, mut slipped, mut worst, mut longest) = (0, 0, 0.0f64, 0u64);
    for ticks in by_executor.values_mut() {
        ticks.sort();
        for (i, (at, duration)) in ticks.iter().enumerate() {
            count += 1;
            longest = longest.max(*duration);
            let late = i > 0 && {
                let gap = at.duration_since(ticks[i - 1].0).unwrap_or_default();
                let lateness = ms(gap) - ms(allowed);
                worst = worst.max(lateness);
                gap > allowed + slack
            };
            if late || Duration::from_millis(*duration) > interval {
                slipped += 1;
            }
        }
    }
    (count, slipped, worst, longest)
}

async fn tick_events(store: &dyn Store, since: SystemTime) -> Vec<(String, SystemTime, u64)> {
    store
        .event_list(&EventQuery {
            types: vec![executor::events::TICK.into()],
            since: Some(since),
            ..Default::default()
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|event| {
            let data = &event.event_data;
            Some((
                data["executor_id"].as_str()?.to_string(),
                executor::clock::parse_ts(data["timestamp"].as_str()?)?,
                data["duration_ms"].as_u64()?,
            ))
        })
        .collect()
}

struct Member {
    profile: PathBuf,
    account: String,
    child: Child,
    browser: u32,
}

impl Member {
    fn roots(&self) -> Vec<u32> {
        vec![self.child.id(), self.browser]
    }
}

mod browsers {
    use super::*;

    pub async fn run(n: usize, idle: Duration, busy: Duration) {
        let interval = Duration::from_secs(60);
        let dir = scratch("browsers");
        let (sandbox, url) = sandbox().await;
        let database = postgres_schema().await;
        let store = store::open(&DatabaseUrl::Postgres(database.clone()))
            .await
            .expect("open the store");
        // Logged in side by side: each waits some 30 s for Chromium to write its cookie store.
        let mut logins = Vec::new();
        for i in 0..n {
            let account = format!("acct{i}");
            let profile = dir.join(&account);
            let url = url.clone();
            logins.push(tokio::spawn(async move {
                prepare_profile(&profile, &url, &account).await;
                (profile, account)
            }));
        }
        let mut members = Vec::new();
        for login in logins {
            members.push(login.await.expect("login"));
        }
        let mut running = Vec::new();
        for (profile, account) in members {
            let (child, log) = daemon(
                &profile,
                &[
                    "--database",
                    &database,
                    "--account",
                    &account,
                    "--browser-mode",
                    "launch",
                    "--cdp-port",
                    "0",
                    "--site",
                    "sandbox",
                    "--site-url",
                    &url,
                    "--tick-interval",
                    "60s",
                    "--posts-per-hour",
                    "1000",
                    "--min-gap",
                    "0s",
                ],
            );
            running.push((profile, account, child, log));
        }
        // Every daemon up, with its browser, before anything is measured.
        let mut members = Vec::new();
        for (profile, account, child, log) in running {
            let end = Instant::now() + Duration::from_secs(120);
            let browser = loop {
                if let Some(pid) = browser_pid(&log) {
                    break pid;
                }
                assert!(
                    Instant::now() < end,
                    "{account}: no tick line with a browser"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            members.push(Member {
                profile,
                account,
                child,
                browser,
            });
        }
        tokio::time::sleep(Duration::from_secs(5)).await; // past the first tick's start-up
        let since = SystemTime::now();

        // Idle: nothing queued.
        let roots: Vec<Vec<u32>> = members.iter().map(Member::roots).collect();
        let cpu_before: Vec<f64> = roots.iter().map(|r| cpu_seconds(r)).collect();
        let load_idle_before = load();
        tokio::time::sleep(idle).await;
        let idle_cpu: Vec<f64> = roots
            .iter()
            .zip(&cpu_before)
            .map(|(r, before)| (cpu_seconds(r) - before) * 3600.0 / idle.as_secs_f64())
            .collect();
        let idle_pss: Vec<f64> = members.iter().map(|m| pss_mib(m.browser)).collect();
        let load_idle = load();

        // Busy: a post due for every account at every tick of the window.
        let now = SystemTime::now();
        let per_account = busy.as_secs() / interval.as_secs() + 2;
        for m in &members {
            for k in 0..per_account {
                store
                    .job_enqueue(
                        &post(format!("{} busy {k}", m.account), &m.account, now),
                        now,
                    )
                    .await
                    .expect("enqueue");
            }
        }
        let cpu_before: Vec<f64> = roots.iter().map(|r| cpu_seconds(r)).collect();
        let busy_started = Instant::now();
        let mut busy_pss = vec![0.0f64; members.len()];
        while busy_started.elapsed() < busy {
            for (peak, m) in busy_pss.iter_mut().zip(&members) {
                *peak = peak.max(pss_mib(m.browser));
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let busy_cpu: Vec<f64> = roots
            .iter()
            .zip(&cpu_before)
            .map(|(r, before)| (cpu_seconds(r) - before) * 3600.0 / busy.as_secs_f64())
            .collect();
        let load_busy = load();
        let published = succeeded(store.as_ref(), None).await.len();
        let ticks = tick_events(store.as_ref(), since).await;
        let (count, slipped, worst, longest) = slips(&ticks, interval);
        for m in &mut members {
            stop(&m.profile, &mut m.child);
        }
        let ranged = |values: &[f64]| {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            format!(
                "{:.0}-{:.0} (median {:.0})",
                min,
                max,
                median(values.to_vec())
            )
        };
        println!(
            "browsers N={n}: idle {}s (load {load_idle_before} -> {load_idle}), busy {}s (load {load_busy}); {published} posts published ({} on the site)",
            idle.as_secs(),
            busy.as_secs(),
            sandbox.posts().len()
        );
        println!(
            "browsers N={n}: PSS per browser MiB idle {}, busy peak {}; sum idle {:.0} MiB",
            ranged(&idle_pss),
            ranged(&busy_pss),
            idle_pss.iter().sum::<f64>()
        );
        println!(
            "browsers N={n}: CPU-seconds per hour per executor (daemon + browser tree) idle {}, busy {}",
            ranged(&idle_cpu),
            ranged(&busy_cpu)
        );
        println!(
            "browsers N={n}: ticks {count}, slipped {slipped} (start > interval + jitter + 0.5 s after the previous one, or longer than the interval); worst lateness {worst:.0} ms; longest tick {longest} ms"
        );
        drop(members);
        let _ = std::fs::remove_dir_all(dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Item 4: Chromium flags and the browser's memory.

mod flags {
    use super::*;
    use executor::jobs::{Job, JobState};

    /// The flag sets tried, each added to the product's own launch flags. Chromium keeps the last
    /// `--disable-features`, so the feature set repeats the product's list.
    pub const SETS: &[(&str, &[&str])] = &[
        ("today's flags", &[]),
        ("--renderer-process-limit=1", &["--renderer-process-limit=1"]),
        (
            "--disable-site-isolation-trials",
            &["--disable-site-isolation-trials"],
        ),
        (
            "--js-flags=--max-old-space-size=64",
            &["--js-flags=--max-old-space-size=64"],
        ),
        (
            "--disable-features=+BackForwardCache,SpareRendererForSitePerProcess",
            &["--disable-features=Translate,MediaRouter,OptimizationHints,BackForwardCache,SpareRendererForSitePerProcess"],
        ),
        (
            "all of the above",
            &[
                "--renderer-process-limit=1",
                "--disable-site-isolation-trials",
                "--js-flags=--max-old-space-size=64",
                "--disable-features=Translate,MediaRouter,OptimizationHints,BackForwardCache,SpareRendererForSitePerProcess",
            ],
        ),
    ];

    /// A `--chrome-path` that starts the real Chromium with `extra` flags after the product's.
    pub fn wrapper(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
        let chromium = managed::find_binary(None).expect("Chromium");
        let path = dir.join(format!("chromium-{name}.sh"));
        let quoted: Vec<String> = extra.iter().map(|f| format!("'{f}'")).collect();
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec '{}' \"$@\" {}\n",
                chromium.display(),
                quoted.join(" ")
            ),
        )
        .expect("wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    fn job(i: i64) -> Job {
        Job {
            id: i,
            kind: Kind::Post,
            text: format!("flags post {i} 🎉"),
            reply_to: None,
            account: String::new(),
            idempotency_key: None,
            not_before: SystemTime::now(),
            state: JobState::Queued,
            attempts: 0,
            max_attempts: 5,
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            attempted_at: None,
        }
    }

    /// One browser's figures under one flag set.
    #[derive(Debug, Clone)]
    struct Sample {
        /// PSS MiB 5 s after the login, parked on about:blank.
        idle: f64,
        /// The highest PSS MiB seen right after an action.
        peak: f64,
        /// PSS MiB 3 s after the last action.
        after: f64,
        processes: usize,
        per_action_ms: f64,
        /// Every action was published with its id read from the site's answer.
        verified: bool,
    }

    async fn once(dir: &Path, name: &str, extra: &[&str], url: &str, actions: usize) -> Sample {
        let profile = dir.join(format!("p-{}", uuid::Uuid::new_v4().simple()));
        let chrome = launch(wrapper(dir, name, extra), &profile.join("chrome-profile")).await;
        let pid = chrome.identity.pid;
        let browser = attach(&profile, chrome.identity.port).await;
        log_in(&browser, url, executor::sandbox::HANDLE).await;
        let _ = browser.park().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = pss_mib(pid);
        let engine = SiteEngine::new(SiteDefinition::load("sandbox").expect("def"), Some(url));
        let mut peak = 0.0f64;
        let mut ok = true;
        let started = Instant::now();
        for i in 0..actions {
            let job = job(i as i64);
            let done = async {
                engine.prepare(&browser, &job).await.ok()?;
                engine.publish(&browser, &job).await.ok()?.post_id
            }
            .await;
            ok &= done.is_some();
            peak = peak.max(pss_mib(pid));
            let _ = browser.park().await;
        }
        let per_action = ms(started.elapsed()) / actions as f64;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = pss_mib(pid);
        let processes = executor::platform::process_tree(pid).len();
        browser.shutdown().await;
        tokio::task::spawn_blocking(move || chrome.terminate(Duration::from_secs(5)))
            .await
            .expect("join");
        let _ = std::fs::remove_dir_all(profile);
        Sample {
            idle,
            peak,
            after,
            processes,
            per_action_ms: per_action,
            verified: ok,
        }
    }

    pub async fn run(runs: usize, actions: usize) {
        let dir = scratch("flags");
        let (sandbox, url) = sandbox().await;
        let mut results: Vec<Vec<Sample>> = vec![Vec::new(); SETS.len()];
        // Interleaved: every set once per round, so a change of machine load hits them all.
        for round in 0..runs {
            for (i, (name, extra)) in SETS.iter().enumerate() {
                let result = once(&dir, &format!("{i}"), extra, &url, actions).await;
                eprintln!("  round {round} {name}: {result:?} load {}", load());
                results[i].push(result);
            }
        }
        println!(
            "flags: {runs} runs x {actions} actions each on the sandbox ({} posts there), load now {}",
            sandbox.posts().len(),
            load()
        );
        let range = |values: Vec<f64>| {
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(0.0, f64::max);
            format!("{min:.0}-{max:.0}")
        };
        for ((name, _), runs) in SETS.iter().zip(&results) {
            println!(
                "flags: {name}: PSS MiB idle {}, during actions (peak) {}, after {}; processes {}; ms per action {}; every action verified: {}",
                range(runs.iter().map(|r| r.idle).collect()),
                range(runs.iter().map(|r| r.peak).collect()),
                range(runs.iter().map(|r| r.after).collect()),
                range(runs.iter().map(|r| r.processes as f64).collect()),
                range(runs.iter().map(|r| r.per_action_ms).collect()),
                runs.iter().all(|r| r.verified)
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("load average at start: {}", load());
    match arg(0) {
        Some("backlog") => {
            let stores: &[&str] = match arg(1) {
                Some("sqlite") => &["sqlite"],
                Some("postgres") => &["postgres"],
                _ => &["sqlite", "postgres"],
            };
            let jobs = arg(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
            let runs = arg(3).and_then(|n| n.parse().ok()).unwrap_or(1);
            for _ in 0..runs {
                for store in stores {
                    runtime.block_on(backlog::run(store, jobs));
                }
            }
        }
        Some("backlog-store") => runtime.block_on(backlog_store::run()),
        Some("browsers") => {
            let counts: Vec<usize> = arg(1)
                .unwrap_or("1,4,8")
                .split(',')
                .filter_map(|n| n.parse().ok())
                .collect();
            let idle = Duration::from_secs(arg(2).and_then(|n| n.parse().ok()).unwrap_or(130));
            let busy = Duration::from_secs(arg(3).and_then(|n| n.parse().ok()).unwrap_or(190));
            for n in counts {
                runtime.block_on(browsers::run(n, idle, busy));
            }
        }
        Some("flags") => {
            let runs = arg(1).and_then(|n| n.parse().ok()).unwrap_or(2);
            let actions = arg(2).and_then(|n| n.parse().ok()).unwrap_or(30);
            runtime.block_on(flags::run(runs, actions));
        }
        _ => {
            eprintln!("usage: scale backlog [sqlite|postgres|both] [JOBS] [RUNS] | backlog-store | browsers [N,N,...] [IDLE_S] [BUSY_S] | flags [RUNS] [ACTIONS]");
            std::process::exit(2);
        }
    }
}
