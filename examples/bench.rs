//! Benchmarks that print figures (never assertions): `cargo run --release --example bench [stop|browser|all]`.
//!
//! - stop: STOP latency (touch → process gone) of the real binary over N runs, idle between
//!   ticks; mid-tick latency in-process (work waiting on the page, and work that ignores STOP
//!   and must be aborted after the grace); the daemon's RSS and CPU while idle.
//! - jobs: claim + attempting + succeeded throughput with no browser (SQLite 1 worker,
//!   PostgreSQL 1 and 8 workers), and claim latency with 1k vs 100k finished jobs in the table.
//!   PostgreSQL from `EXECUTOR_TEST_DATABASE_URL` (default the local server's `test` database),
//!   in a schema of its own.
//! - fleet: the same store path for 16 executors on 16 accounts (each its own connection),
//!   with limits off and on, on PostgreSQL directly and through PgBouncer in transaction mode
//!   (`EXECUTOR_TEST_POOLER_URL`, default 127.0.0.1:6432; `.ci/pgbouncer` starts one).
//! - sites: verified actions per minute through the single page on the sandbox with limits off
//!   (prepare + publish with the id read from the site's answer), and the browser's memory after
//!   10 actions vs after 1,000.
//! - bulk: `executor enqueue bulk` of 100,000 lines (the real release binary, from a file on
//!   stdin to its exit, per-line output to /dev/null) on a fresh SQLite profile and a fresh
//!   PostgreSQL schema, N runs each (default 3); then one 50 MB batch on each, with the peak RSS.
//! - action: checked posts per minute through the daemon (the release binary) and at the floor
//!   (a bare CDP script doing the same checked action in the fewest round trips), turn by turn
//!   in the same run: `-- action [N] [ROUNDS]`; `EXECUTOR_BENCH_BEFORE=PATH` adds another build.
//! - browser: popup-close latency (target created → target destroyed, seen from a second CDP
//!   connection) over 100 popups, and the round trip of 1,000 `Runtime.evaluate`.

use executor::browser::cdp::{self, Connection};
use executor::browser::{Browser, BrowserConfig};
use executor::settings::{self, Layer};
use serde_json::json;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn temp_profile(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("executor-bench-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("profile");
    dir
}

fn stats(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: n={} median={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        pick(0.5),
        pick(0.99),
        samples[samples.len() - 1]
    );
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/bench → target/release/executor
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("executor"))
        .filter(|p| p.exists())
        .expect("build the binary first: cargo build --release")
}

fn proc_stat(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (rss_kib, ticks)
}

fn stop_idle(runs: usize) {
    let bin = binary();
    let mut latencies = Vec::new();
    let mut rss = Vec::new();
    for run in 0..runs {
        let profile = temp_profile("stop");
        let mut child = Command::new(&bin)
            .args(["--profile"])
            .arg(&profile)
            .args([
                "--browser-mode",
                "launch",
                "--cdp-port",
                "0",
                "--tick-interval",
                "60s",
                "daemon",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            if line.map(|l| l.contains(" pages=")).unwrap_or(false) {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        // Idle between ticks: let it settle, then measure memory and pull the switch.
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..300)));
        if run == 0 {
            let (rss_kib, cpu_before) = proc_stat(child.id());
            let window = Duration::from_secs(20);
            std::thread::sleep(window);
            let (_, cpu_after) = proc_stat(child.id());
            let cpu_seconds = (cpu_after - cpu_before) as f64 / 100.0;
            println!(
                "daemon idle: RSS {:.1} MiB; CPU {:.2} s over {}s idle = {:.1} s per hour",
                rss_kib as f64 / 1024.0,
                cpu_seconds,
                window.as_secs(),
                cpu_seconds * 3600.0 / window.as_secs_f64()
            );
        }
        rss.push(proc_stat(child.id()).0 as f64 / 1024.0);
        let started = Instant::now();
        std::fs::write(profile.join("STOP_EXECUTOR"), "").expect("touch");
        let status = child.wait().expect("wait");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(status.success());
        let _ = std::fs::remove_dir_all(&profile);
    }
    stats(&format!("STOP latency, idle ({runs} runs, touch -> process gone, launch mode incl. ending Chromium)"), latencies);
    rss.sort_by(|a, b| a.total_cmp(b));
    println!(
        "daemon RSS between ticks: median {:.1} MiB, max {:.1} MiB",
        rss[rss.len() / 2],
        rss[rss.len() - 1]
    );
}

/// Work that spends the whole tick waiting on the page; `obey` selects on STOP as real
/// pre-click work must, otherwise it ignores STOP like an outcome check after a click.
struct Busy {
    obey: bool,
}

#[async_trait::async_trait]
impl executor::tick::TickWork for Busy {
    async fn ready(&self) -> Result<executor::tick::LaneCounts, executor::tick::WorkError> {
        Ok(Default::default())
    }
    async fn run(
        &self,
        browser: &Browser,
        shutdown: &executor::stop::Shutdown,
    ) -> executor::tick::WorkReport {
        let wait = browser.evaluate(
            "new Promise(r => setTimeout(r, 60000))",
            Duration::from_secs(120),
        );
        if self.obey {
            tokio::select! { _ = wait => {}, _ = shutdown.stopped() => {} }
        } else {
            let _ = wait.await;
        }
        Default::default()
    }
}

async fn stop_mid_tick(runs: usize, obey: bool) {
    let mut latencies = Vec::new();
    for _ in 0..runs {
        let profile = temp_profile("midtick");
        let mut flags = Layer::default();
        flags.flag("browser_mode", Some("launch".into()));
        flags.flag("cdp_port", Some("0".into()));
        let settings =
            settings::resolve(Some(profile.clone()), &flags, &|_| None).expect("settings");
        let shutdown = executor::stop::Shutdown::new();
        let options = executor::daemon::RunOptions {
            logger: executor::log::Logger::quiet(settings.log_format, None),
            site: None,
            work: Some(Arc::new(Busy { obey })),
            browser: None,
        };
        let daemon = tokio::spawn(executor::daemon::run(settings, shutdown.clone(), options));
        // Wait until the tick is inside its work (the browser is up and the page is waiting).
        tokio::time::sleep(Duration::from_millis(2500 + fastrand::u64(0..500))).await;
        let started = Instant::now();
        std::fs::write(profile.join("STOP_EXECUTOR"), "").expect("touch");
        let _ = daemon.await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = std::fs::remove_dir_all(&profile);
    }
    let label = if obey {
        "STOP latency, mid-tick, work waiting before its irreversible step (cancelled at once)"
    } else {
        "STOP latency, mid-tick, work that ignores STOP (aborted after the 5 s grace)"
    };
    stats(&format!("{label} ({runs} runs)"), latencies);
}

async fn browser_bench() {
    let profile = temp_profile("browser");
    let mut flags = Layer::default();
    flags.flag("browser_mode", Some("launch".into()));
    flags.flag("cdp_port", Some("0".into()));
    let settings = settings::resolve(Some(profile.clone()), &flags, &|_| None).expect("settings");
    let browser = Browser::new(BrowserConfig::from_settings(&settings), Arc::new(|_| {}));
    browser.connect().await.expect("connect");
    let port = browser.managed_identity().await.expect("identity").port;

    // A second, observing connection timestamps target creation and destruction.
    let ws = cdp::browser_ws_url([127, 0, 0, 1].into(), port, Duration::from_secs(5))
        .await
        .expect("ws");
    let observer = Connection::connect(&ws, Duration::from_secs(5))
        .await
        .expect("observer");
    let mut events = observer.subscribe();
    observer
        .call(
            "Target.setDiscoverTargets",
            json!({"discover": true}),
            None,
            Duration::from_secs(5),
        )
        .await
        .expect("discover");
    let created: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<std::sync::Mutex<Vec<f64>>> = Arc::default();
    {
        let (created, latencies) = (created.clone(), latencies.clone());
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                let now = Instant::now();
                match event.method.as_str() {
                    "Target.targetCreated" if event.params["targetInfo"]["type"] == "page" => {
                        if let Some(id) = event.params["targetInfo"]["targetId"].as_str() {
                            created.lock().expect("c").insert(id.to_string(), now);
                        }
                    }
                    "Target.targetDestroyed" => {
                        if let Some(id) = event.params["targetId"].as_str() {
                            if let Some(at) = created.lock().expect("c").remove(id) {
                                latencies
                                    .lock()
                                    .expect("l")
                                    .push((now - at).as_secs_f64() * 1000.0);
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    for _ in 0..100 {
        browser
            .evaluate("window.open('about:blank'); 1", Duration::from_secs(5))
            .await
            .expect("open");
        let end = Instant::now() + Duration::from_secs(5);
        while browser.page_count().await.unwrap_or(2) > 1 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let popups = latencies.lock().expect("l").clone();
    stats(
        "popup close latency (targetCreated -> targetDestroyed)",
        popups,
    );

    let mut round_trips = Vec::new();
    for _ in 0..1000 {
        let started = Instant::now();
        browser
            .evaluate("1 + 1", Duration::from_secs(5))
            .await
            .expect("evaluate");
        round_trips.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    stats("Runtime.evaluate round trip", round_trips);
    println!(
        "browser process tree RSS after the popups: {:.0} MiB",
        browser.memory_bytes() as f64 / 1024.0 / 1024.0
    );
    browser.shutdown().await;
    let _ = std::fs::remove_dir_all(&profile);
}

mod jobs_bench {
    use executor::events::Identity;
    use executor::jobs::{Claim, ClaimOutcome, Kind, Limits, NewJob, Outcome};
    use executor::settings::DatabaseUrl;
    use executor::store::{self, Store};
    use std::time::{Duration, Instant, SystemTime};

    fn identity() -> Identity {
        Identity {
            run_id: "bench".into(),
            executor_id: "bench".into(),
        }
    }

    async fn enqueue(store: &dyn Store, n: usize) {
        for i in 0..n {
            let job = NewJob {
                kind: Kind::Post,
                text: format!("bench {i}"),
                reply_to: None,
                account: String::new(),
                idempotency_key: None,
                not_before: SystemTime::now(),
                max_attempts: 5,
            };
            store
                .job_enqueue(&job, SystemTime::now())
                .await
                .expect("enqueue");
        }
    }

    fn claim() -> Claim {
        claim_for("", Limits::OFF)
    }

    fn claim_for(account: &str, limits: Limits) -> Claim {
        Claim {
            kind: Kind::Post,
            account: account.into(),
            owner: format!("bench-{account}"),
            lease_for: Duration::from_secs(300),
            limits,
            gap_jitter: Duration::ZERO,
            now: SystemTime::now(),
        }
    }

    /// Claim, mark attempting, finish: one job's whole store path. Returns false when empty.
    async fn one(store: &dyn Store) -> bool {
        one_of(store, &claim()).await
    }

    async fn one_of(store: &dyn Store, claim: &Claim) -> bool {
        let identity = identity();
        let claim = Claim {
            now: SystemTime::now(),
            ..claim.clone()
        };
        match store
            .job_claim_next(&claim, &identity)
            .await
            .expect("claim")
        {
            ClaimOutcome::Claimed(job) => {
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
                true
            }
            _ => false,
        }
    }

    async fn throughput(label: &str, url: &DatabaseUrl, workers: usize, jobs: usize) {
        enqueue(store::open(url).await.expect("open").as_ref(), jobs).await;
        let mut stores = Vec::new();
        for _ in 0..workers {
            stores.push(store::open(url).await.expect("open"));
        }
        let started = Instant::now();
        let mut handles = Vec::new();
        for store in stores {
            handles.push(tokio::spawn(async move {
                let mut n = 0u64;
                while one(store.as_ref()).await {
                    n += 1;
                }
                n
            }));
        }
        let mut done = 0;
        for handle in handles {
            done += handle.await.expect("join");
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("{label}: {done} jobs in {seconds:.2} s = {:.0} jobs/s (claim + attempting + succeeded)", done as f64 / seconds);
    }

    /// Adds `n` finished jobs straight through SQL (the store path would take minutes for 100k).
    async fn add_finished(url: &DatabaseUrl, n: usize) {
        match url {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = rusqlite::Connection::open(path).expect("open");
                let tx = conn.transaction().expect("tx");
                let now = executor::clock::format_ts(SystemTime::now());
                {
                    let mut insert = tx
                        .prepare("INSERT INTO jobs (kind, text, account, not_before, state, attempts, created_at, updated_at) VALUES ('post', ?1, '', ?2, 'succeeded', 1, ?2, ?2)")
                        .expect("prepare");
                    for i in 0..n {
                        insert
                            .execute(rusqlite::params![format!("done {i}"), now])
                            .expect("insert");
                    }
                }
                tx.commit().expect("commit");
            }
            DatabaseUrl::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                client
                    .execute(
                        "INSERT INTO jobs (kind, text, account, not_before, state, attempts, created_at, updated_at)
                         SELECT 'post', 'done ' || g, '', now(), 'succeeded', 1, now(), now() FROM generate_series(1, $1::int) g",
                        &[&(n as i32)],
                    )
                    .await
                    .expect("insert");
                client.execute("ANALYZE jobs", &[]).await.expect("analyze");
            }
        }
    }

    async fn claim_latency(label: &str, url: &DatabaseUrl) {
        let store = store::open(url).await.expect("open");
        let mut figures = Vec::new();
        let mut finished = 0;
        for target in [1_000usize, 100_000] {
            add_finished(url, target - finished).await;
            finished = target;
            enqueue(store.as_ref(), 200).await;
            let mut samples = Vec::new();
            let identity = identity();
            for _ in 0..200 {
                let started = Instant::now();
                let outcome = store
                    .job_claim_next(&claim(), &identity)
                    .await
                    .expect("claim");
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
                if let ClaimOutcome::Claimed(job) = outcome {
                    let token = job.state.lease().expect("lease").token.clone();
                    let done = Outcome::Succeeded {
                        post_id: None,
                        url: None,
                    };
                    store
                        .job_finish(job.id, &token, &done, &identity, SystemTime::now(), 0.0)
                        .await
                        .expect("finish");
                }
            }
            samples.sort_by(|a, b| a.total_cmp(b));
            figures.push((target, samples[samples.len() / 2]));
        }
        println!(
            "{label}: claim latency median {:.3} ms with 1k finished jobs, {:.3} ms with 100k ({:.2}x)",
            figures[0].1,
            figures[1].1,
            figures[1].1 / figures[0].1
        );
    }

    /// The fleet's store path: `workers` executors, each on its own connection and its own
    /// account, claiming, marking and finishing that account's jobs.
    async fn fleet_throughput(
        label: &str,
        url: &DatabaseUrl,
        workers: usize,
        per_worker: usize,
        limits: Limits,
    ) {
        let DatabaseUrl::Postgres(pg) = url else {
            return;
        };
        let setup = store::open(url).await.expect("open");
        drop(setup);
        // The jobs go in through a plain connection (the driver does not know our pooler flag).
        let (plain, _) = executor::settings::without_pooler_flag(pg);
        let (client, connection) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .execute(
                "INSERT INTO jobs (kind, text, account, not_before, state, created_at, updated_at)
                 SELECT 'post', 'bench ' || g, 'acct-' || (g % $1::int), now() - interval '1 second', 'queued', now(), now()
                 FROM generate_series(1, $2::int) g",
                &[&(workers as i32), &((workers * per_worker) as i32)],
            )
            .await
            .expect("jobs");
        client.execute("ANALYZE jobs", &[]).await.expect("analyze");
        let mut stores = Vec::new();
        for _ in 0..workers {
            stores.push(store::open(url).await.expect("open"));
        }
        let started = Instant::now();
        let mut handles = Vec::new();
        for (i, store) in stores.into_iter().enumerate() {
            let claim = claim_for(&format!("acct-{i}"), limits);
            handles.push(tokio::spawn(async move {
                let mut n = 0u64;
                while one_of(store.as_ref(), &claim).await {
                    n += 1;
                }
                n
            }));
        }
        let mut done = 0;
        for handle in handles {
            done += handle.await.expect("join");
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("{label}: {done} jobs in {seconds:.2} s = {:.0} jobs/s (claim + attempting + succeeded)", done as f64 / seconds);
    }

    /// A database of its own, reached through the pooler at `pooler` (a pooler cannot keep a
    /// per-connection search path).
    async fn pooler_url(direct: &str, pooler: &str) -> DatabaseUrl {
        let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(direct, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("database");
        DatabaseUrl::Postgres(format!(
            "{}/{name}?pgbouncer=true",
            pooler.trim_end_matches('/')
        ))
    }

    /// `only`: "direct" or "pooler" runs just those (limits off); `None` runs all four.
    pub async fn fleet(only: Option<&str>) {
        let base = std::env::var("EXECUTOR_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let pooler = std::env::var("EXECUTOR_TEST_POOLER_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432".into());
        let limited = Limits {
            per_hour: Some(1_000_000),
            min_gap: Duration::ZERO,
        };
        for (limits, name) in [(Limits::OFF, "limits off"), (limited, "limits on")] {
            if only.is_some() && limits != Limits::OFF {
                continue;
            }
            if only == Some("pooler") {
                fleet_throughput(
                    &format!("PostgreSQL through PgBouncer (transaction mode), 16 workers on 16 accounts, {name}"),
                    &pooler_url(&base, &pooler).await,
                    16,
                    500,
                    limits,
                )
                .await;
                continue;
            }
            fleet_throughput(
                &format!("PostgreSQL direct, 16 workers on 16 accounts, {name}"),
                &pg_url(&base).await,
                16,
                500,
                limits,
            )
            .await;
            if only.is_some() {
                continue;
            }
            fleet_throughput(
                &format!("PostgreSQL through PgBouncer (transaction mode), 16 workers on 16 accounts, {name}"),
                &pooler_url(&base, &pooler).await,
                16,
                500,
                limits,
            )
            .await;
        }
    }

    /// A fresh schema on `base`, as a URL whose connections use it.
    pub async fn pg_schema(base: &str) -> String {
        match pg_url(base).await {
            DatabaseUrl::Postgres(url) => url,
            DatabaseUrl::Sqlite(_) => unreachable!("pg_url makes PostgreSQL URLs"),
        }
    }

    async fn pg_url(base: &str) -> DatabaseUrl {
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        let separator = if base.contains('?') { '&' } else { '?' };
        DatabaseUrl::Postgres(format!("{base}{separator}options=-csearch_path%3D{schema}"))
    }

    pub async fn run() {
        let dir = super::temp_profile("jobs");
        throughput(
            "SQLite, 1 worker",
            &DatabaseUrl::Sqlite(dir.join("a.db")),
            1,
            2000,
        )
        .await;
        claim_latency("SQLite", &DatabaseUrl::Sqlite(dir.join("b.db"))).await;
        let base = std::env::var("EXECUTOR_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        throughput("PostgreSQL, 1 worker", &pg_url(&base).await, 1, 3000).await;
        throughput("PostgreSQL, 8 workers", &pg_url(&base).await, 8, 8000).await;
        claim_latency("PostgreSQL", &pg_url(&base).await).await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

mod sites_bench {
    use executor::browser::{Browser, BrowserConfig};
    use executor::jobs::{Job, JobState, Kind};
    use executor::sandbox::Sandbox;
    use executor::sites::Site;
    use executor::sites::{engine::SiteEngine, SiteDefinition};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    fn job(i: i64) -> Job {
        Job {
            id: i,
            kind: Kind::Post,
            text: format!("bench post {i} 🎉"),
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

    pub async fn run(actions: usize) {
        let profile = super::temp_profile("sites");
        let sandbox = Sandbox::new(None);
        let (addr, _task) = sandbox
            .serve(([127, 0, 0, 1], 0).into(), std::future::pending())
            .await
            .expect("sandbox");
        let url = format!("http://{addr}");
        let mut flags = executor::settings::Layer::default();
        flags.flag("browser_mode", Some("launch".into()));
        flags.flag("cdp_port", Some("0".into()));
        let settings = executor::settings::resolve(Some(profile.clone()), &flags, &|_| None)
            .expect("settings");
        let browser = Browser::new(BrowserConfig::from_settings(&settings), Arc::new(|_| {}));
        browser.connect().await.expect("browser");
        browser
            .navigate(&format!("{url}/i/flow/login"), Duration::from_secs(20))
            .await
            .expect("login");
        browser
            .click(
                "[data-testid=\"LoginForm_Login_Button\"]",
                Duration::from_secs(10),
            )
            .await
            .expect("click");
        browser
            .wait_for("[data-testid=\"tweetTextarea_0\"]", Duration::from_secs(20))
            .await
            .expect("home");
        let engine = SiteEngine::new(SiteDefinition::load("sandbox").expect("def"), Some(&url));
        let mut memory_at_10 = 0;
        let started = Instant::now();
        for i in 0..actions {
            let job = job(i as i64);
            engine.prepare(&browser, &job).await.expect("prepare");
            let published = engine.publish(&browser, &job).await.expect("publish");
            assert!(published.post_id.is_some());
            let _ = browser.park().await; // as the lanes do between actions
            if i + 1 == 10 {
                memory_at_10 = browser.memory_bytes();
            }
            if (i + 1) % 100 == 0 {
                eprintln!(
                    "  {} actions, {:.0}/min, browser {} MiB",
                    i + 1,
                    (i + 1) as f64 * 60.0 / started.elapsed().as_secs_f64(),
                    browser.memory_bytes() >> 20
                );
            }
        }
        let per_minute = actions as f64 * 60.0 / started.elapsed().as_secs_f64();
        let memory_at_end = browser.memory_bytes();
        let stored = sandbox.posts().len();
        println!("sites: {actions} verified actions (id from the site's answer; {stored} on the site) at {per_minute:.0} per minute");
        println!(
            "sites: browser process tree {} MiB after 10 actions, {} MiB after {actions} ({:+.1}%)",
            memory_at_10 >> 20,
            memory_at_end >> 20,
            (memory_at_end as f64 / memory_at_10.max(1) as f64 - 1.0) * 100.0
        );
        browser.shutdown().await;
        let _ = std::fs::remove_dir_all(profile);
    }
}

mod bulk_bench {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    /// A batch as operators write them: posts and some replies, some with keys, until `lines`
    /// lines or `bytes` bytes, whichever comes first.
    fn batch(dir: &Path, name: &str, lines: usize, bytes: usize, text_chars: usize) -> PathBuf {
        let path = dir.join(name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("batch"));
        let mut written = 0;
        for n in 0..lines {
            let text = format!("bulk {n:07} {}", "lorem ipsum ".repeat(text_chars / 12));
            let line = match n % 10 {
                0 => format!(
                    r#"{{"kind":"reply","to":"https://x.com/a/status/{n}","text":"{text}"}}"#
                ),
                1 => format!(r#"{{"kind":"post","text":"{text}","key":"bench-{n}"}}"#),
                _ => format!(r#"{{"kind":"post","text":"{text}"}}"#),
            };
            writeln!(file, "{line}").expect("write");
            written += line.len() + 1;
            if written >= bytes {
                break;
            }
        }
        file.flush().expect("flush");
        path
    }

    /// Runs `enqueue bulk` once; (wall seconds, peak RSS in MiB).
    fn once(profile: &Path, database: &str, input: &Path) -> (f64, f64) {
        let started = Instant::now();
        // Reaped by wait4 below, which also gives the child's peak RSS (`Child::wait` does not).
        #[allow(clippy::zombie_processes)]
        let child = Command::new(super::binary())
            .args(["--profile"])
            .arg(profile)
            .args(["--database", database, "enqueue", "bulk"])
            .stdin(std::fs::File::open(input).expect("input"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn executor");
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child's pid, with pointers to live locals.
        let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            waited > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "enqueue bulk failed (status {status})"
        );
        (seconds, usage.ru_maxrss as f64 / 1024.0)
    }

    fn report(label: &str, mut samples: Vec<f64>) {
        samples.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{label}: n={} median={:.2} s min={:.2} s max={:.2} s",
            samples.len(),
            samples[samples.len() / 2],
            samples[0],
            samples[samples.len() - 1]
        );
    }

    pub async fn run(runs: usize) {
        let dir = super::temp_profile("bulk");
        let lines = batch(&dir, "100k.jsonl", 100_000, usize::MAX, 80);
        let big = batch(&dir, "50mb.jsonl", usize::MAX, 50 << 20, 260);
        let base = std::env::var("EXECUTOR_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let sqlite = |n: usize| {
            let profile = dir.join(format!("sqlite-{n}"));
            let url = format!("sqlite://{}", profile.join("executor.db").display());
            (profile, url)
        };
        let postgres = |n: usize| {
            let profile = dir.join(format!("pg-{n}"));
            (profile, base.clone())
        };
        let mut sqlite_runs = Vec::new();
        let mut pg_runs = Vec::new();
        for n in 0..runs {
            let (profile, url) = sqlite(n);
            sqlite_runs.push(once(&profile, &url, &lines).0);
            let (profile, _) = postgres(n);
            let url = super::jobs_bench::pg_schema(&base).await;
            pg_runs.push(once(&profile, &url, &lines).0);
        }
        report("enqueue bulk, 100,000 lines, SQLite", sqlite_runs);
        report("enqueue bulk, 100,000 lines, PostgreSQL", pg_runs);
        let size = std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64;
        let count = std::fs::read_to_string(&big)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let (profile, url) = sqlite(runs);
        let (seconds, rss) = once(&profile, &url, &big);
        println!(
            "enqueue bulk, {size:.0} MB ({count} lines), SQLite: {seconds:.2} s, peak RSS {rss:.0} MiB"
        );
        let url = super::jobs_bench::pg_schema(&base).await;
        let (seconds, rss) = once(&postgres(runs).0, &url, &big);
        println!(
            "enqueue bulk, {size:.0} MB ({count} lines), PostgreSQL: {seconds:.2} s, peak RSS {rss:.0} MiB"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `action [N] [ROUNDS]`: the rate of one checked post, through the daemon and at the floor, in
/// the same run, turn by turn (issue #13, item 2).
///
/// The floor is a bare CDP script doing the same checked action in the fewest round trips, on
/// its own browser: open `/home` (one navigation), check who is logged in and focus the empty
/// composer (one call), type (one call), read the text back and find the button (one call),
/// press and release the mouse on it (two calls), and read the new id from the site's own answer
/// (one call once it is complete). The daemon is the release binary, attached to a logged-in
/// browser of its own, with N posts queued, no limits and a tick every 10 ms. Both rates are
/// taken from the first post the sandbox received to the last, so start-up is not counted.
/// `EXECUTOR_BENCH_BEFORE=PATH` adds a turn for another build of the binary (the "before").
mod action_bench {
    use executor::browser::cdp::{self, CdpEvent, Connection, Events};
    use executor::browser::managed::{self, LaunchOptions, Managed};
    use executor::sandbox::Sandbox;
    use serde_json::{json, Value};
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const CALL: Duration = Duration::from_secs(10);
    const COMPOSER: &str = r#"[data-testid="tweetTextarea_0"]"#;
    const BUTTON: &str = r#"[data-testid="tweetButtonInline"]"#;
    const ACCOUNT: &str = r#"[data-testid="AppTabBar_Profile_Link"]"#;

    fn launch(dir: &Path) -> Managed {
        let options = LaunchOptions {
            binary: managed::find_binary(None).expect("chromium"),
            profile_dir: dir.join("chrome-profile"),
            port: 0,
            headless: true,
            stderr_log: dir.join("chrome-stderr.log"),
        };
        Managed::launch(&options, Duration::from_secs(30)).expect("launch")
    }

    /// One page target of `port`'s browser and a session on it, for the floor script.
    struct Page {
        conn: Connection,
        session: String,
        events: Events,
    }

    impl Page {
        async fn open(port: u16) -> Page {
            let ws = cdp::browser_ws_url([127, 0, 0, 1].into(), port, CALL)
                .await
                .expect("ws");
            let conn = Connection::connect(&ws, CALL).await.expect("connect");
            let events = conn.subscribe();
            let target = conn
                .call(
                    "Target.createTarget",
                    json!({"url": "about:blank"}),
                    None,
                    CALL,
                )
                .await
                .expect("target")["targetId"]
                .as_str()
                .expect("id")
                .to_string();
            let session = conn
                .call(
                    "Target.attachToTarget",
                    json!({"targetId": target, "flatten": true}),
                    None,
                    CALL,
                )
                .await
                .expect("attach")["sessionId"]
                .as_str()
                .expect("session")
                .to_string();
            let page = Page {
                conn,
                session,
                events,
            };
            page.call("Page.enable", json!({})).await;
            page.call("Network.enable", json!({})).await;
            page
        }

        async fn call(&self, method: &str, params: Value) -> Value {
            self.conn
                .call(method, params, Some(&self.session), CALL)
                .await
                .unwrap_or_else(|e| panic!("{method}: {e}"))
        }

        async fn event(&mut self, want: impl Fn(&CdpEvent) -> bool) -> CdpEvent {
            loop {
                match tokio::time::timeout(CALL, self.events.recv()).await {
                    Ok(Ok(event)) if event.session_id.as_deref() == Some(&self.session) => {
                        if want(&event) {
                            return event;
                        }
                    }
                    Ok(Ok(_)) | Ok(Err(cdp::EventsEnded::Lagged(_))) => {}
                    other => panic!("no event: {other:?}"),
                }
            }
        }

        async fn navigate(&mut self, url: &str) {
            self.call("Page.navigate", json!({ "url": url })).await;
            self.event(|e| e.method == "Page.loadEventFired").await;
        }

        async fn eval(&self, expression: String) -> Value {
            let answer = self
                .call(
                    "Runtime.evaluate",
                    json!({"expression": expression, "returnByValue": true}),
                )
                .await;
            assert!(answer.get("exceptionDetails").is_none(), "{answer}");
            answer["result"]["value"].clone()
        }

        async fn log_in(&mut self, base: &str) {
            self.navigate(&format!("{base}/i/flow/login")).await;
            self.eval(
                r#"document.querySelector('[data-testid="LoginForm_Login_Button"]').click(); true"#
                    .to_string(),
            )
            .await;
            self.event(|e| e.method == "Page.loadEventFired").await;
        }

        /// One checked post: its id, from the site's answer.
        async fn post(&mut self, base: &str, text: &str) -> String {
            self.navigate(&format!("{base}/home")).await;
            let who = self
                .eval(format!(
                    "(() => {{ const a = document.querySelector({account:?}); const b = document.querySelector({composer:?}); \
                     if (!a || !b) return null; b.focus(); b.textContent = ''; return a.getAttribute('href'); }})()",
                    account = ACCOUNT,
                    composer = COMPOSER
                ))
                .await;
            assert_eq!(who, json!("/demo"), "logged in");
            self.call("Input.insertText", json!({ "text": text })).await;
            let check = self
                .eval(format!(
                    "(() => {{ const b = document.querySelector({composer:?}); const k = document.querySelector({button:?}); \
                     const r = k.getBoundingClientRect(); return [b.textContent, r.left + r.width / 2, r.top + r.height / 2]; }})()",
                    composer = COMPOSER,
                    button = BUTTON
                ))
                .await;
            assert_eq!(check[0], json!(text), "read back before the click");
            for kind in ["mousePressed", "mouseReleased"] {
                self.call(
                    "Input.dispatchMouseEvent",
                    json!({"type": kind, "x": check[1], "y": check[2], "button": "left", "clickCount": 1}),
                )
                .await;
            }
            let answered = self
                .event(|e| {
                    e.method == "Network.responseReceived"
                        && e.params["response"]["url"]
                            .as_str()
                            .is_some_and(|u| u.contains("/CreateTweet"))
                })
                .await;
            let request = answered.params["requestId"].clone();
            self.event(|e| {
                e.method == "Network.loadingFinished" && e.params["requestId"] == request
            })
            .await;
            let body = self
                .call("Network.getResponseBody", json!({ "requestId": request }))
                .await;
            let answer: Value =
                serde_json::from_str(body["body"].as_str().expect("body")).expect("json");
            answer["data"]["create_tweet"]["tweet_results"]["result"]["rest_id"]
                .as_str()
                .expect("an id")
                .to_string()
        }
    }

    /// Posts per minute from the first to the last of `n` posts with `prefix` the sandbox got.
    async fn rate(sandbox: &Sandbox, prefix: &str, n: usize, limit: Duration) -> f64 {
        let end = Instant::now() + limit;
        let mut first = None;
        loop {
            // Cheap to ask (the sandbox copies its list), often enough for a rate over minutes.
            let got = sandbox
                .posts()
                .iter()
                .filter(|p| p.text.starts_with(prefix))
                .count();
            if got >= 1 && first.is_none() {
                first = Some(Instant::now());
            }
            if got >= n {
                let first = first.expect("first");
                return (n - 1) as f64 * 60.0 / first.elapsed().as_secs_f64();
            }
            assert!(
                Instant::now() < end,
                "{prefix}: {got} of {n} posts in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn floor(sandbox: &Sandbox, base: &str, round: usize, n: usize) -> f64 {
        let dir = super::temp_profile("floor");
        let browser = launch(&dir);
        let mut page = Page::open(browser.identity.port).await;
        page.log_in(base).await;
        let prefix = format!("floor {round} ");
        let counting = rate(sandbox, &prefix, n, Duration::from_secs(600));
        let posting = async {
            for i in 0..n {
                page.post(base, &format!("{prefix}{i}")).await;
            }
        };
        let (per_minute, ()) = tokio::join!(counting, posting);
        browser.terminate(Duration::from_secs(3));
        let _ = std::fs::remove_dir_all(dir);
        per_minute
    }

    fn executor(bin: &Path, profile: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(bin);
        for (key, _) in std::env::vars() {
            if key.starts_with("EXECUTOR_") || key.starts_with("RUNNER_") || key == "DATABASE_URL" {
                command.env_remove(key);
            }
        }
        command.arg("--profile").arg(profile).args(args);
        command
    }

    async fn daemon(bin: &Path, sandbox: &Sandbox, base: &str, label: &str, n: usize) -> f64 {
        let dir = super::temp_profile("daemon");
        let browser = launch(&dir.join("browser"));
        let port = browser.identity.port;
        {
            let mut page = Page::open(port).await;
            page.log_in(base).await;
            page.navigate("about:blank").await;
        }
        let prefix = format!("{label} ");
        let mut bulk = executor(bin, &dir, &["enqueue", "bulk"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("enqueue");
        {
            let mut stdin = bulk.stdin.take().expect("stdin");
            for i in 0..n {
                let line = json!({"kind": "post", "text": format!("{prefix}{i}")});
                writeln!(stdin, "{line}").expect("write");
            }
        }
        assert!(bulk.wait().expect("bulk").success(), "enqueue bulk");
        let port = port.to_string();
        let mut child = executor(
            bin,
            &dir,
            &[
                "daemon",
                "--browser-mode",
                "cdp",
                "--cdp-port",
                &port,
                "--site",
                "sandbox",
                "--site-url",
                base,
                "--tick-interval",
                "10ms",
                "--posts-per-hour",
                "1000000",
                "--replies-per-hour",
                "0",
                "--min-gap",
                "0s",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");
        let per_minute = rate(sandbox, &prefix, n, Duration::from_secs(600)).await;
        let _ = std::fs::write(dir.join("STOP_EXECUTOR"), "");
        let _ = child.wait();
        browser.terminate(Duration::from_secs(3));
        let _ = std::fs::remove_dir_all(dir);
        per_minute
    }

    pub async fn run(n: usize, rounds: usize) {
        let sandbox = Sandbox::new(None);
        let (addr, _task) = sandbox
            .serve(([127, 0, 0, 1], 0).into(), std::future::pending())
            .await
            .expect("sandbox");
        let base = format!("http://{addr}");
        let after = super::binary();
        let before = std::env::var_os("EXECUTOR_BENCH_BEFORE").map(std::path::PathBuf::from);
        let mut rows: Vec<(String, Vec<f64>)> =
            vec![("floor".into(), vec![]), ("daemon".into(), vec![])];
        if before.is_some() {
            rows.push(("daemon (before)".into(), vec![]));
        }
        for round in 0..rounds {
            let floor = floor(&sandbox, &base, round, n).await;
            rows[0].1.push(floor);
            eprintln!("  round {round}: floor {floor:.0}/min");
            let now = daemon(&after, &sandbox, &base, &format!("daemon {round}"), n).await;
            rows[1].1.push(now);
            eprintln!(
                "  round {round}: daemon {now:.0}/min ({:.2} of the floor)",
                now / floor
            );
            if let Some(before) = &before {
                let old = daemon(before, &sandbox, &base, &format!("before {round}"), n).await;
                rows[2].1.push(old);
                eprintln!(
                    "  round {round}: daemon (before) {old:.0}/min ({:.2} of the floor)",
                    old / floor
                );
            }
        }
        let floor_mean = rows[0].1.iter().sum::<f64>() / rounds as f64;
        for (label, rates) in &rows {
            let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let high = rates.iter().copied().fold(0.0, f64::max);
            let mean = rates.iter().sum::<f64>() / rounds as f64;
            println!(
                "action: {label}: {low:.0}-{high:.0} posts/min over {rounds} rounds of {n} ({:.2} of the floor)",
                mean / floor_mean
            );
        }
    }
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let runs: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if what == "action" {
        let n: usize = std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(200);
        let rounds: usize = std::env::args()
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or(3);
        runtime.block_on(action_bench::run(n, rounds));
    }
    if what == "sites" || what == "all" {
        runtime.block_on(sites_bench::run(1000));
    }
    if what == "jobs" || what == "all" {
        runtime.block_on(jobs_bench::run());
    }
    if what == "fleet" || what == "all" {
        runtime.block_on(jobs_bench::fleet(None));
    }
    if let Some(only) = what.strip_prefix("fleet-") {
        runtime.block_on(jobs_bench::fleet(Some(only)));
    }
    if what == "bulk" || what == "all" {
        runtime.block_on(bulk_bench::run(runs.min(10)));
    }
    if what == "browser" || what == "all" {
        runtime.block_on(browser_bench());
    }
    if what == "stop" || what == "all" {
        stop_idle(runs);
        runtime.block_on(stop_mid_tick(runs.min(10), true));
        runtime.block_on(stop_mid_tick(runs.min(5), false));
    }
}
