//! The store going away under a running daemon: ticks go on, their events are spooled to
//! `<profile>/spool/events.jsonl`, and every one lands exactly once, in order, when the store is
//! back (SQLite held locked; PostgreSQL behind a proxy the test takes down).

mod common;

use common::daemons::*;
use common::*;

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
    // A backlog the ticks that cannot reach the store must still show (as the last count).
    let batch = profile.path("backlog.jsonl");
    let lines: Vec<String> = (0..120)
        .map(|i| format!(r#"{{"kind":"post","text":"backlog {i}"}}"#))
        .collect();
    std::fs::write(&batch, lines.join("\n")).expect("batch");
    let enqueued = command(&profile.dir, &["--database", &url, "enqueue", "bulk"])
        .stdin(std::fs::File::open(&batch).expect("batch"))
        .output()
        .expect("enqueue");
    assert!(enqueued.status.success(), "{enqueued:?}");
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
    let during: Vec<String> = daemon
        .lines
        .all()
        .into_iter()
        .filter(|l| is_tick_line(l))
        .skip(seen + 1)
        .collect();
    assert!(
        during.iter().all(|l| l.contains("last_error=")),
        "the store is down: {during:?}"
    );
    // No site: the jobs stay due, so the last count is the backlog, and says how old it is.
    assert!(
        during
            .iter()
            .all(|l| field(l, "posting_ready") == Some("120")
                && field(l, "ready_as_of").is_some_and(|t| t != "unknown")),
        "ticks that could not count show the last count and since when: {during:?}"
    );
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
