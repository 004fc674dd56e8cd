//! Opening and using the store never hangs (issue 11, item 2): a PostgreSQL address that accepts
//! TCP and never answers, a server that stops answering mid-session, and another session holding
//! the migrations' advisory lock each end in one error line naming the server, within the
//! store's deadlines; and a daemon still opening its store obeys STOP, SIGTERM and SIGINT within
//! the STOP bound, exiting as an orderly stop with its lock released.

mod common;

use common::daemons::*;
use common::*;
use executor::store::postgres::{MIGRATION_LOCK_KEY, MIGRATION_LOCK_WAIT};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Past the store's deadlines (10 s to connect, 15 s for the migration lock) with room for a
/// loaded machine: a command still running then has hung.
const GIVES_UP: Duration = Duration::from_secs(30);

/// A "PostgreSQL server" that accepts connections and never says a word.
struct SilentServer {
    port: u16,
    accepted: mpsc::Receiver<()>,
}

impl SilentServer {
    fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, accepted) = mpsc::channel();
        std::thread::spawn(move || {
            // Connections are kept open (never answered) for the life of the test process.
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
                let _ = tx.send(());
            }
        });
        SilentServer { port, accepted }
    }

    /// With a password, which must never be printed.
    fn url(&self) -> String {
        format!(
            "postgres://executor:hunter2secret@127.0.0.1:{}/x",
            self.port
        )
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}/x", self.port)
    }

    /// Waits until the executor has connected (and is waiting for an answer).
    fn wait_for_connection(&self) {
        self.accepted
            .recv_timeout(START)
            .expect("the executor connects to the server");
    }
}

#[test]
fn store_commands_against_a_server_that_never_answers_end_with_one_line_naming_it() {
    let server = SilentServer::start();
    let url = server.url();
    let commands: [&[&str]; 3] = [&["jobs"], &["enqueue", "post", "hello"], &["status"]];
    // In parallel: each waits out the connect deadline.
    let results: Vec<(String, i32, String, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .iter()
            .map(|args| {
                let url = url.clone();
                scope.spawn(move || {
                    let profile = Profile::new("silent-cli");
                    let mut all = vec!["--database", url.as_str()];
                    all.extend_from_slice(args);
                    let started = Instant::now();
                    let (code, output) = run(&mut command(&profile.dir, &all), GIVES_UP);
                    (args.join(" "), code, output, started.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("command thread"))
            .collect()
    });
    for (what, code, output, took) in results {
        assert!(
            took < GIVES_UP,
            "`executor {what}` hung ({took:?}): {output}"
        );
        assert!(
            output.contains(&format!(
                "postgres {}: connect timed out after 10s",
                server.address()
            )),
            "`executor {what}` names what timed out and where: {output}"
        );
        assert!(
            !output.contains("hunter2secret"),
            "`executor {what}` printed the password: {output}"
        );
        if what == "status" {
            // Status reports what it could find; the store's line is part of it.
            continue;
        }
        assert_eq!(
            code, 1,
            "`executor {what}`: a store error is exit 1: {output}"
        );
        assert_eq!(
            output.lines().count(),
            1,
            "`executor {what}` ends with one line: {output}"
        );
        assert!(
            output.starts_with("error: cannot open the store"),
            "{output}"
        );
    }
}

enum StopBy {
    File,
    Signal(i32),
}

fn daemon_opening_a_silent_store_stops(by: StopBy, name: &str) {
    let server = SilentServer::start();
    let profile = Profile::new(name);
    let mut daemon = spawn(command(
        &profile.dir,
        &["--database", &server.url(), "daemon"],
    ));
    server.wait_for_connection();
    assert!(
        profile.path("executor.pid").exists(),
        "the daemon holds its lock"
    );
    let asked = Instant::now();
    match by {
        StopBy::File => std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP"),
        StopBy::Signal(signal) => daemon.signal(signal),
    }
    let status = daemon.wait_exit(STOP_BOUND);
    let took = asked.elapsed();
    let lines = daemon.lines.all();
    assert_eq!(
        status.code(),
        Some(0),
        "an orderly stop: {}",
        lines.join("\n")
    );
    // Well before the connect deadline (10 s) could have ended it instead.
    assert!(
        took < Duration::from_secs(5),
        "gone {took:?} after the stop"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Stopped while opening the store")),
        "{}",
        lines.join("\n")
    );
    exit_lines_in_order(&lines);
    assert!(
        !profile.path("executor.pid").exists(),
        "the lock file is removed"
    );
}

#[test]
fn daemon_opening_a_silent_store_obeys_the_stop_file() {
    daemon_opening_a_silent_store_stops(StopBy::File, "silent-stop-file");
}

#[test]
fn daemon_opening_a_silent_store_obeys_sigterm() {
    daemon_opening_a_silent_store_stops(StopBy::Signal(libc::SIGTERM), "silent-sigterm");
}

#[test]
fn daemon_opening_a_silent_store_obeys_sigint() {
    daemon_opening_a_silent_store_stops(StopBy::Signal(libc::SIGINT), "silent-sigint");
}

#[test]
fn daemon_gives_up_on_a_silent_store_within_the_connect_deadline() {
    let server = SilentServer::start();
    let profile = Profile::new("silent-daemon");
    let mut daemon = spawn(command(
        &profile.dir,
        &["--database", &server.url(), "daemon"],
    ));
    let status = daemon.wait_exit(GIVES_UP);
    let output = daemon.lines.all().join("\n");
    assert_eq!(
        status.code(),
        Some(1),
        "a store that cannot be reached: {output}"
    );
    assert!(
        output.contains(&format!(
            "error: cannot open the store postgres://executor:***@127.0.0.1:{}/x: postgres {}: connect timed out after 10s",
            server.port,
            server.address()
        )),
        "{output}"
    );
    assert!(!output.contains("hunter2secret"), "{output}");
    assert!(
        output.contains("[EXECUTOR_DAEMON] Lock released"),
        "{output}"
    );
    assert!(!profile.path("executor.pid").exists());
}

/// Another session holding the migrations' advisory lock, in a database of the test's own (the
/// lock is per database: held in the shared one it would stall every other test's migrations).
struct HeldMigrationLock {
    runtime: tokio::runtime::Runtime,
    url: String,
    holder: tokio_postgres::Client,
}

impl HeldMigrationLock {
    fn take() -> Option<HeldMigrationLock> {
        let base = postgres_base_url()?;
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (url, holder) = runtime.block_on(async {
            let url = postgres_database(&base).await;
            let holder = postgres_client(&url).await;
            holder
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
                .await
                .expect("take the migration lock");
            (url, holder)
        });
        Some(HeldMigrationLock {
            runtime,
            url,
            holder,
        })
    }

    /// Sessions waiting for an advisory lock in this database.
    fn waiting(&self) -> i64 {
        self.runtime.block_on(async {
            self.holder
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .await
                .expect("pg_locks")
                .get(0)
        })
    }

    fn release(&self) {
        self.runtime.block_on(async {
            self.holder
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
                .await
                .expect("release the migration lock");
        });
    }
}

fn lock_message() -> String {
    format!(
        "migration lock not granted within {}s: another session holds advisory lock {MIGRATION_LOCK_KEY}",
        MIGRATION_LOCK_WAIT.as_secs()
    )
}

#[test]
fn jobs_ends_with_an_error_while_another_session_holds_the_migration_lock_and_works_after() {
    let Some(lock) = HeldMigrationLock::take() else {
        return;
    };
    let profile = Profile::new("held-lock-jobs");
    let started = Instant::now();
    let (code, output) = run(
        &mut command(&profile.dir, &["--database", &lock.url, "jobs"]),
        GIVES_UP,
    );
    let took = started.elapsed();
    assert_eq!(code, 1, "{output}");
    assert_eq!(output.lines().count(), 1, "one line: {output}");
    assert!(output.contains(&lock_message()), "{output}");
    assert!(
        took >= MIGRATION_LOCK_WAIT && took < GIVES_UP,
        "gave up after {took:?}"
    );

    lock.release();
    let (code, output) = run(
        &mut command(&profile.dir, &["--database", &lock.url, "jobs"]),
        GIVES_UP,
    );
    assert_eq!(code, 0, "the store opens once the lock is free: {output}");
}

#[test]
fn daemon_waiting_for_the_migration_lock_obeys_stop() {
    let Some(lock) = HeldMigrationLock::take() else {
        return;
    };
    let profile = Profile::new("held-lock-stop");
    let mut daemon = spawn(command(&profile.dir, &["--database", &lock.url, "daemon"]));
    wait_until("the daemon waits for the migration lock", START, || {
        lock.waiting() > 0
    });
    let asked = Instant::now();
    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let status = daemon.wait_exit(STOP_BOUND);
    let took = asked.elapsed();
    let lines = daemon.lines.all();
    assert_eq!(status.code(), Some(0), "{}", lines.join("\n"));
    assert!(took < Duration::from_secs(5), "gone {took:?} after STOP");
    exit_lines_in_order(&lines);
    assert!(!profile.path("executor.pid").exists());
}

#[test]
fn daemon_gives_up_on_a_held_migration_lock_with_a_clear_error() {
    let Some(lock) = HeldMigrationLock::take() else {
        return;
    };
    let profile = Profile::new("held-lock-daemon");
    let mut daemon = spawn(command(&profile.dir, &["--database", &lock.url, "daemon"]));
    let status = daemon.wait_exit(GIVES_UP);
    let output = daemon.lines.all().join("\n");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains(&lock_message()), "{output}");
    assert!(
        output.contains("[EXECUTOR_DAEMON] Lock released"),
        "{output}"
    );
    assert!(!profile.path("executor.pid").exists());
}

/// A TCP proxy to the real server that can be frozen: it then reads but forwards nothing, like
/// a server (or a network) that stopped answering mid-session.
struct FreezingProxy {
    port: u16,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl FreezingProxy {
    async fn start(upstream: (String, u16)) -> FreezingProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream.clone()).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let mut watch = watch.clone();
                    tokio::spawn(async move {
                        let mut buffer = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if watch.wait_for(|frozen| !*frozen).await.is_err()
                                || to.write_all(&buffer[..n]).await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezingProxy { port, frozen }
    }

    fn freeze(&self, frozen: bool) {
        let _ = self.frozen.send(frozen);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_stops_answering_mid_session_fails_the_call_in_time_and_the_next_reconnects()
{
    use executor::jobs::JobQuery;
    use executor::settings::DatabaseUrl;
    let Some(base) = postgres_base_url() else {
        return;
    };
    let url = postgres_schema(&base).await;
    let config: tokio_postgres::Config = url.parse().expect("test URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("{POSTGRES_VAR} must name a TCP host"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = FreezingProxy::start((host.clone(), port)).await;
    let server = format!("{host}:{port}");
    assert!(
        url.contains(&server),
        "{POSTGRES_VAR} must spell out host:port"
    );
    // A short connect deadline keeps the call's deadline (connect + statement + slack) short.
    let proxied = format!(
        "{}&connect_timeout=2",
        url.replacen(&server, &format!("127.0.0.1:{}", proxy.port), 1)
    );
    let store = executor::store::open(&DatabaseUrl::Postgres(proxied))
        .await
        .expect("open through the proxy");
    store
        .job_list(&JobQuery::default())
        .await
        .expect("a call while the server answers");

    proxy.freeze(true);
    let started = Instant::now();
    let err = tokio::time::timeout(GIVES_UP, store.job_list(&JobQuery::default()))
        .await
        .expect("a call to a silent server hung")
        .expect_err("a call to a silent server fails");
    let took = started.elapsed();
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{}", proxy.port))
            && message.contains("job list timed out after 17s"),
        "{message}"
    );
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");

    // The connection left waiting was closed: the next call connects anew and is answered.
    proxy.freeze(false);
    store
        .job_list(&JobQuery::default())
        .await
        .expect("the next call works once the server answers again");
}
