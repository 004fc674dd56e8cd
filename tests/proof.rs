//! The proof, from what a real run stored: the seed's SQL verbatim on PostgreSQL, `executor
//! verify` (passing, and failing by name with its evidence), `executor report` (the same on
//! SQLite and PostgreSQL, and its offline HTML page), `executor events`.

mod common;

use common::daemons::*;
use common::*;
use std::time::Duration;

/// The three queries of `tests/seed_queries.sql` (recent ticks, page-count distribution,
/// failure rate), as the original deployment runs them on PostgreSQL.
fn seed_queries() -> Vec<String> {
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/seed_queries.sql"
    ))
    .expect("seed sql");
    let queries: Vec<String> = seed
        .split(";\n")
        .map(str::trim)
        .filter(|q| q.contains("SELECT"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        queries.len(),
        3,
        "recent ticks, page-count distribution, failure rate"
    );
    queries
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
    let queries = seed_queries();

    let recent = client
        .query(&queries[0], &[])
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
        .query(&queries[1], &[])
        .await
        .expect("distribution query");
    assert_eq!(distribution.len(), 1, "only pages=1");
    assert_eq!(
        distribution[0].get::<_, Option<String>>("pages").as_deref(),
        Some("1")
    );
    assert_eq!(distribution[0].get::<_, i64>("count") as usize, ticks.len());
    let failure = client
        .query_one(&queries[2], &[])
        .await
        .expect("failure rate query");
    assert_eq!(failure.get::<_, i64>("total_ticks") as usize, ticks.len());
    assert_eq!(failure.get::<_, i64>("failed_ticks"), 0);
}

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
    // The sweep keeps up with this flood; with no storm bound it gives up at once, the browser
    // is replaced, and the flood's return breaches the hard cap.
    let (daemon, _shutdown) =
        in_process_daemon_without_storm_bound(&profile, std::sync::Arc::new(TabFlood));
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
    // Ticks of a few milliseconds, 3 s apart: frozen right after a tick line, the daemon is
    // frozen in its sleep between ticks, not inside a tick (a slow tick is allowed its time).
    let mut daemon = spawn(command(
        &profile.dir,
        &[
            "--browser-mode",
            "launch",
            "--cdp-port",
            "0",
            "--tick-interval",
            "3s",
            "daemon",
        ],
    ));
    daemon.lines.wait_for_nth(3, START, is_tick_line);
    let last_tick = std::time::Instant::now();
    daemon.signal(libc::SIGSTOP);
    // The fault itself: the daemon really stopped, and silent for longer than any allowed gap
    // (interval + the tick + 5 s slack) since its last tick line.
    let stopped = || {
        std::fs::read_to_string(format!("/proc/{}/stat", daemon.pid()))
            .ok()
            .and_then(|stat| Some(stat[stat.rfind(')')? + 2..].starts_with('T')))
            .unwrap_or(false)
    };
    wait_until("the daemon frozen past the allowed gap", START, || {
        stopped() && last_tick.elapsed() >= Duration::from_secs(10)
    });
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
    let from_sqlite = executor::proof::Report::collect(sqlite.as_ref(), since)
        .await
        .expect("report");
    let from_postgres = executor::proof::Report::collect(postgres.as_ref(), since)
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
    let queries = seed_queries();
    let distribution = client.query(&queries[1], &[]).await.expect("distribution");
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
        .query_one(&queries[2], &[])
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
    let ticks = tick_lines(&profile.path("executor.log")).len();
    assert!(ticks >= 5, "ticked every 300 ms for 3 s");
    // The progress shows what the run stored, not only the time: stderr is a pipe here, so the
    // line is printed at each tenth of the run instead of redrawn.
    let progress: Vec<&str> = output.lines().filter(|l| l.starts_with('[')).collect();
    assert!(progress.len() >= 3, "{output}");
    assert!(
        progress.iter().all(|l| l.contains(" of 0:03  ticks ")
            && l.contains("  published 0  failures 0 (0.0%, max 5%)  pages ")),
        "{progress:?}"
    );
    // After the run, the counts of everything it stored: every tick line is one stored tick.
    assert!(
        output.contains(&format!(
            "the run stored: ticks {ticks}  published 0  failures 0 (0.0%, max 5%)  pages 1"
        )),
        "{ticks} ticks in the log:\n{output}"
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
    assert_self_contained(&html_path);

    // Open it in headless Chromium (a file: URL — no network) and look at the drawn chart.
    let viewer = Profile::new("report-viewer");
    let browser = viewer_browser(&viewer).await;
    let drawn = inspect(
        &browser,
        &html_path,
        "({ series: document.querySelectorAll('#timeline polyline.series').length, \
            points: document.querySelectorAll('#timeline circle.point').length, \
            stops: document.querySelectorAll('#timeline line.stop').length, \
            width: document.getElementById('timeline').getBoundingClientRect().width, \
            rows: document.querySelectorAll('#ticks tr').length })",
    )
    .await;
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
    keep_screenshot(&browser, "report.png").await;
    browser.shutdown().await;
}

/// The page is self-contained: nothing in it loads from anywhere.
fn assert_self_contained(path: &std::path::Path) {
    let html = std::fs::read_to_string(path).expect("html written");
    for external in ["<script", "<link", " src=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "self-contained: found {external:?}"
        );
    }
    assert!(html.contains("Content-Security-Policy"), "nothing may load");
}

/// A headless browser of its own (launch mode, any free port) to look at a page with.
async fn viewer_browser(viewer: &Profile) -> executor::browser::Browser {
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
}

/// Keeps a screenshot of the page in `test-artifacts/NAME`, to look at.
async fn keep_screenshot(browser: &executor::browser::Browser, name: &str) {
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
    std::fs::write(artifacts.join(name), &bytes).expect("keep the screenshot");
}

/// The window the README gives for the seed's SQL on SQLite, in place of PostgreSQL's
/// `NOW() - INTERVAL '60 minutes'`. It must be written in the stored `created_at` format
/// (`2026-01-23T12:00:00.000Z`), which compares as text.
const SQLITE_WINDOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 minutes')";

#[test]
fn seed_sql_runs_on_sqlite_with_the_readmes_window_and_shows_pages_1_for_every_tick() {
    use rusqlite::types::Value;
    let profile = Profile::new("seedsql-sqlite");
    let mut daemon = launch_daemon(&profile, &[]);
    daemon.lines.wait_for_nth(3, START, is_tick_line);
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
    let ticks = tick_lines(&profile.path("executor.log"));

    let conn = rusqlite::Connection::open(profile.db()).expect("open db");
    // A tick from before the window, which the window must leave out.
    let old = std::time::SystemTime::now() - Duration::from_secs(61 * 60);
    conn.execute(
        "INSERT INTO system_events (id, event_type, severity, message, event_data, created_at) \
         VALUES (?1, 'EXECUTOR_DAEMON_TICK', 'info', 'tick', '{\"pages\": 7}', ?2)",
        (
            uuid::Uuid::new_v4().to_string(),
            humantime::format_rfc3339_millis(old).to_string(),
        ),
    )
    .expect("insert an old tick");

    let queries: Vec<String> = seed_queries()
        .iter()
        .map(|q| q.replace("NOW() - INTERVAL '60 minutes'", SQLITE_WINDOW))
        .collect();
    assert!(queries.iter().all(|q| q.contains(SQLITE_WINDOW)));

    // Recent ticks: `event_data->>'pages'` reads the stored tick (SQLite gives the number).
    let mut recent = conn.prepare(&queries[0]).expect("recent ticks query");
    let rows: Vec<(Value, Value, Value)> = recent
        .query_map([], |row| {
            Ok((
                row.get("pages")?,
                row.get("chrome_pids")?,
                row.get("last_error")?,
            ))
        })
        .expect("run")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(rows.len(), ticks.len().min(20));
    for (pages, pids, last_error) in &rows {
        assert_eq!(*pages, Value::Integer(1));
        assert!(
            matches!(pids, Value::Text(p) if p.starts_with('[')),
            "{pids:?}"
        );
        assert_eq!(*last_error, Value::Null);
    }
    // Page-count distribution: only pages=1, every tick of the run, not the old one.
    let distribution: Vec<(Value, i64)> = conn
        .prepare(&queries[1])
        .expect("distribution query")
        .query_map([], |row| Ok((row.get("pages")?, row.get("count")?)))
        .expect("run")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(distribution, [(Value::Integer(1), ticks.len() as i64)]);
    // Failure rate.
    let (total, failed): (i64, i64) = conn
        .query_row(&queries[2], [], |row| {
            Ok((row.get("total_ticks")?, row.get("failed_ticks")?))
        })
        .expect("failure rate query");
    assert_eq!(total as usize, ticks.len());
    assert_eq!(failed, 0);
}

/// Tick work whose first `failing` ticks fail (the queue cannot be counted), and every later one
/// succeeds: a run with a known share of failed ticks while the browser stays healthy (pages=1),
/// so that the failure rate is the only criterion it can fail.
struct FailFirst {
    left: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl executor::tick::TickWork for FailFirst {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, executor::tick::WorkError> {
        use std::sync::atomic::Ordering;
        match self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Err(executor::tick::WorkError::Machinery(
                "the queue could not be counted".into(),
            )),
            Err(_) => Ok(Default::default()),
        }
    }
    async fn run(
        &self,
        _browser: &executor::browser::Browser,
        _shutdown: &executor::stop::Shutdown,
    ) -> executor::tick::WorkReport {
        Default::default()
    }
}

/// A run of at least 8 ticks, the first 2 failed, on `database` (the profile's SQLite file when
/// `None`); then `verify` with thresholds just below and just above its failure rate, and with
/// the default. Returns nothing: it asserts.
async fn verify_judges_the_failure_rate_of_a_real_run(name: &str, database: Option<String>) {
    let profile = Profile::new(name);
    let mut extra: Vec<(&'static str, &str)> = vec![("backoff", "100ms"), ("max_failures", "100")];
    if let Some(url) = &database {
        extra.push(("database", url));
    }
    let work = std::sync::Arc::new(FailFirst {
        left: std::sync::atomic::AtomicUsize::new(2),
    });
    let (daemon, shutdown) = in_process_daemon(&profile, &extra, work);
    let exit = stop_after_ticks(&profile, 8, daemon, shutdown).await;
    assert_eq!(exit.code(), 0);
    let ticks = tick_lines(&profile.path("executor.log"));
    let failed = ticks.iter().filter(|l| l.contains(" last_error=")).count();
    assert_eq!(failed, 2, "{ticks:#?}");
    let pct = 100.0 * failed as f64 / ticks.len() as f64;

    let mut database_args = vec![];
    if let Some(url) = &database {
        database_args = vec!["--database".to_string(), url.clone()];
    }
    let verify_with = move |threshold: Option<String>, env: Option<String>| {
        let profile_dir = profile.dir.clone();
        let database_args = database_args.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut args: Vec<String> = database_args;
                args.extend(["verify".into(), "--since".into(), "10m".into()]);
                if let Some(threshold) = threshold {
                    args.extend(["--max-failure-rate".into(), threshold]);
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut cmd = command(&profile_dir, &args);
                if let Some(env) = env {
                    cmd.env("EXECUTOR_MAX_FAILURE_RATE", env);
                }
                run(&mut cmd, EXIT)
            })
            .await
            .expect("join")
        }
    };

    // Above the threshold (a point under the run's rate): FAIL, by name, with the numbers.
    let (code, output) = verify_with(Some(format!("{:.2}%", pct - 1.0)), None).await;
    assert_eq!(code, 1, "{output}");
    let line = criterion(&output, "failure rate");
    assert!(
        line.starts_with("FAIL")
            && line.contains(&format!("2 of {} ticks failed ({pct:.2}%)", ticks.len()))
            && line.contains("above the"),
        "{line}"
    );
    assert!(
        output.contains("1 of 8 criteria fail."),
        "only the rate fails: {output}"
    );

    // Below it (a point over the rate, given as a fraction in the environment): every criterion
    // passes and verify exits 0.
    let fraction = format!("{:.4}", (pct + 1.0) / 100.0);
    let (code, output) = verify_with(None, Some(fraction)).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        criterion(&output, "failure rate").starts_with("PASS")
            && criterion(&output, "failure rate").contains("within the"),
        "{output}"
    );
    assert!(output.contains("All 8 criteria pass."), "{output}");

    // The default, 5 %: two failed ticks in a short run are far above it.
    let (code, output) = verify_with(None, None).await;
    assert_eq!(code, 1, "{output}");
    assert!(
        criterion(&output, "failure rate").contains("above the 5% threshold"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_a_run_above_the_failure_rate_threshold_and_passes_one_below_on_sqlite() {
    verify_judges_the_failure_rate_of_a_real_run("verify-rate-sqlite", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_a_run_above_the_failure_rate_threshold_and_passes_one_below_on_postgres() {
    let Some(base) = postgres_base_url() else {
        return;
    };
    let url = postgres_schema(&base).await;
    verify_judges_the_failure_rate_of_a_real_run("verify-rate-postgres", Some(url)).await;
}

/// Opens `path` in `browser` and evaluates `expression` there.
async fn inspect(
    browser: &executor::browser::Browser,
    path: &std::path::Path,
    expression: &str,
) -> serde_json::Value {
    browser
        .navigate(
            &format!("file://{}", path.display()),
            Duration::from_secs(10),
        )
        .await
        .expect("open");
    browser
        .evaluate(expression, Duration::from_secs(5))
        .await
        .expect("inspect")
}

/// What the page shows: the verdict's result and rows, and the published table's cells.
const READ_REPORT: &str = "(() => {
    const cells = (row) => Array.from(row.querySelectorAll('td'));
    return {
        verdict: document.querySelector('#verdict').className,
        result: document.querySelector('#verdict-result').textContent,
        summary: document.querySelector('#verdict-summary').textContent,
        first: document.body.querySelector('h2').textContent,
        rows: Array.from(document.querySelectorAll('#checklist tr.criterion')).map(row => ({
            result: row.querySelector('td.result').textContent,
            name: row.querySelector('td.name').textContent,
            evidence: row.querySelector('td.evidence').textContent,
            class: row.className,
        })),
        published: Array.from(document.querySelectorAll('#published tr')).slice(1).map(row => ({
            text: row.querySelector('td.text').textContent,
            href: row.querySelector('td.link a') ? row.querySelector('td.link a').getAttribute('href') : null,
            link: row.querySelector('td.link').textContent,
        })),
        nowrap: Array.from(document.querySelectorAll('td.ts')).map(cell => getComputedStyle(cell).whiteSpace),
        stamps: document.querySelectorAll('#published td.ts, #ticks td.ts').length,
    };
})()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_leads_with_the_verdict_and_shows_each_post_with_its_text_and_link() {
    use executor::jobs::Kind;
    let rig = common::rig::sandbox_rig().await;
    let profile = Profile::new("report-verdict");
    let chrome = common::rig::logged_in_chrome(&profile, &rig.url).await;
    let db = format!("sqlite://{}", profile.db().display());
    let texts = ["First post of the report <b>&", "Second post, with a link"];
    {
        let store = executor::store::open(&executor::settings::DatabaseUrl::Sqlite(profile.db()))
            .await
            .expect("store");
        for text in texts {
            enqueue_now(store.as_ref(), Kind::Post, text, None).await;
        }
    }
    let mut daemon = common::rig::site_daemon(&profile, &chrome, &rig.url, &db, &[]);
    let database = profile.db();
    let published = tokio::task::spawn_blocking(move || {
        poll(START, || {
            let events = sqlite_events(&database, "POST_SUCCESS");
            (events.len() >= 2).then_some(events)
        })
        .expect("both posts published")
    })
    .await
    .expect("join");
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let daemon = tokio::task::spawn_blocking(move || {
        assert_eq!(daemon.wait_exit(EXIT).code(), Some(0));
        daemon
    })
    .await
    .expect("join");
    drop(daemon);
    drop(chrome);
    std::fs::remove_file(profile.path("STOP_EXECUTOR")).expect("remove STOP");

    // The report, and verify over the same window: the page must say what verify says.
    let html_path = profile.path("report.html");
    let empty_path = profile.path("empty.html");
    let dir = profile.dir.clone();
    let (html_arg, empty_arg) = (
        html_path.display().to_string(),
        empty_path.display().to_string(),
    );
    let after_the_run =
        humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(1))
            .to_string();
    let (verify_code, verified) = tokio::task::spawn_blocking(move || {
        let (code, output) = run(
            &mut command(&dir, &["report", "--since", "10m", "--html", &html_arg]),
            EXIT,
        );
        assert_eq!(code, 0, "{output}");
        let (code, output) = run(
            &mut command(
                &dir,
                &["report", "--since", &after_the_run, "--html", &empty_arg],
            ),
            EXIT,
        );
        assert_eq!(code, 0, "{output}");
        run(&mut command(&dir, &["verify", "--since", "10m"]), EXIT)
    })
    .await
    .expect("join");
    assert_self_contained(&html_path);
    let viewer = Profile::new("report-verdict-viewer");
    let browser = viewer_browser(&viewer).await;
    let page = inspect(&browser, &html_path, READ_REPORT).await;

    // The verdict comes first, and it is verify's: the same criteria, the same results.
    // (A clean run passes; should a busy machine fail a criterion, the page must still say
    // exactly what verify says.)
    let word = if verify_code == 0 { "PASS" } else { "FAIL" };
    assert_eq!(page["first"], format!("Verdict: {word}"), "{page}");
    assert_eq!(page["verdict"], word.to_lowercase());
    assert_eq!(page["result"], word);
    let summary = page["summary"].as_str().expect("summary");
    assert!(
        verified.lines().any(|l| l == summary),
        "{summary:?} is not verify's:\n{verified}"
    );
    let rows = page["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 8, "{page}");
    for row in rows {
        let name = row["name"].as_str().expect("name");
        let result = row["result"].as_str().expect("result");
        let line = criterion(&verified, name);
        assert!(line.starts_with(result), "{line} / {row}");
        assert_eq!(row["class"], format!("criterion {}", result.to_lowercase()));
        assert!(!row["evidence"].as_str().unwrap_or("").is_empty(), "{row}");
    }
    assert!(
        rows.iter()
            .any(|r| r["name"] == "failure rate within --max-failure-rate"
                && r["evidence"]
                    .as_str()
                    .is_some_and(|e| e.contains("the 5% threshold"))),
        "{page}"
    );

    // Each post with the text that was queued and the link the site gave.
    let shown = page["published"].as_array().expect("published rows");
    assert_eq!(shown.len(), 2, "{page}");
    for event in &published {
        let url = event["url"]
            .as_str()
            .expect("the sandbox gives each post a URL");
        let job = event["job_id"].as_i64().expect("job id");
        let row = shown
            .iter()
            .find(|row| row["href"] == url)
            .unwrap_or_else(|| panic!("no link to {url}: {page}"));
        assert_eq!(row["link"], url);
        assert_eq!(row["text"], texts[(job - 1) as usize], "{page}");
    }
    // Timestamps do not wrap.
    let nowrap = page["nowrap"].as_array().expect("cells");
    assert!(page["stamps"].as_u64().unwrap_or(0) >= 3, "{page}");
    assert!(nowrap.iter().all(|w| w == "nowrap"), "{page}");

    // An empty window: the verdict fails, and the page says so first.
    let empty = inspect(&browser, &empty_path, READ_REPORT).await;
    assert_eq!(empty["verdict"], "fail", "{empty}");
    assert_eq!(empty["result"], "FAIL");
    let rows = empty["rows"].as_array().expect("rows");
    assert!(
        rows.iter().any(|r| r["result"] == "FAIL"
            && r["class"] == "criterion fail"
            && r["evidence"] == "no ticks in the window"),
        "{empty}"
    );
    assert!(
        empty["summary"]
            .as_str()
            .is_some_and(|s| s.ends_with("criteria fail.")),
        "{empty}"
    );
    // The page as a person sees it, kept for a look.
    inspect(&browser, &html_path, "true").await;
    keep_screenshot(&browser, "report-verdict.png").await;
    browser.shutdown().await;
}
