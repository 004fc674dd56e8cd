//! What a supervisor sees: Prometheus `/metrics` equal to the stored events, `/healthz` that
//! turns unhealthy while the browser is frozen, and systemd's READY, WATCHDOG and STOPPING.

mod common;

use common::daemons::*;
use common::*;
use std::time::Duration;

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
