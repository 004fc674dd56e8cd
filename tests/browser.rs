//! The browser layer against a real Chromium: one page, strays closed as they appear, calls that
//! never hang on a dead or frozen browser, and nothing of the user's ever touched.

mod common;

use common::*;
use executor::browser::managed::{self, LaunchOptions, Managed};
use executor::browser::{Browser, BrowserConfig, BrowserError, Notice};
use executor::platform::{self, Signal};
use executor::settings::BrowserMode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn config(profile: &Profile, mode: BrowserMode, port: u16) -> BrowserConfig {
    BrowserConfig {
        mode,
        host: [127, 0, 0, 1].into(),
        port,
        chrome_path: None,
        profile_dir: profile.path("chrome-profile"),
        identity_path: profile.path("chrome.json"),
        stderr_log: profile.path("chrome-stderr.log"),
        headless: true,
        relaunch_interval: Duration::from_millis(500),
        call_deadline: Duration::from_secs(10),
        heartbeat_every: Duration::from_millis(500),
        heartbeat_deadline: Duration::from_secs(1),
        storm_bound: executor::browser::STORM_BOUND,
    }
}

type Notices = Arc<Mutex<Vec<Notice>>>;

fn browser(config: BrowserConfig) -> (Browser, Notices) {
    let notices: Notices = Arc::default();
    let sink = notices.clone();
    let browser = Browser::new(
        config,
        Arc::new(move |n| sink.lock().expect("notices").push(n)),
    );
    (browser, notices)
}

/// A Chromium the test itself starts (another profile: "the user's", or one to attach to).
fn own_chromium(dir: &std::path::Path, port: u16) -> Managed {
    let options = LaunchOptions {
        binary: managed::find_binary(None).expect("chromium installed"),
        profile_dir: dir.join("chrome-profile"),
        port,
        headless: true,
        stderr_log: dir.join("stderr.log"),
    };
    Managed::launch(&options, DEADLINE).expect("launch chromium")
}

async fn wait_pages(browser: &Browser, want: usize) {
    eventually(&format!("page count back to {want}"), DEADLINE, || async {
        browser.page_count().await.expect("page count") == want
    })
    .await;
}

async fn still_works(browser: &Browser) {
    browser
        .navigate(
            "data:text/html,<title>ok</title><p id=p>fine</p>",
            Duration::from_secs(10),
        )
        .await
        .expect("navigate");
    let text = browser
        .evaluate(
            "document.getElementById('p').textContent",
            Duration::from_secs(5),
        )
        .await
        .expect("evaluate");
    assert_eq!(text, "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popups_blank_links_and_json_new_tabs_are_closed_and_our_page_still_works() {
    let profile = Profile::new("popups");
    let (browser, notices) = browser(config(&profile, BrowserMode::Launch, 0));
    browser.connect().await.expect("connect");
    assert_eq!(browser.page_count().await.expect("count"), 1);

    // window.open three times.
    browser
        .navigate(
            "data:text/html,<script>for (let i = 0; i < 3; i++) window.open('about:blank')</script>",
            Duration::from_secs(10),
        )
        .await
        .expect("navigate");
    wait_pages(&browser, 1).await;

    // A link with target=_blank, clicked.
    browser
        .navigate(
            "data:text/html,<a id=a href='about:blank' target=_blank>x</a>",
            Duration::from_secs(10),
        )
        .await
        .expect("navigate");
    browser
        .evaluate(
            "document.getElementById('a').click()",
            Duration::from_secs(5),
        )
        .await
        .expect("click");
    wait_pages(&browser, 1).await;

    // 30 tabs from outside, through the DevTools HTTP endpoint.
    let port = browser.managed_identity().await.expect("identity").port;
    for _ in 0..30 {
        executor::browser::cdp::http_request(
            [127, 0, 0, 1].into(),
            port,
            "PUT",
            "/json/new?about:blank",
            Duration::from_secs(5),
        )
        .await
        .expect("PUT /json/new");
    }
    wait_pages(&browser, 1).await;
    let closed = browser.take_strays_closed();
    assert!(closed >= 34, "closed {closed} strays");
    assert!(notices
        .lock()
        .expect("notices")
        .iter()
        .any(|n| matches!(n, Notice::StraysClosed { .. })));
    still_works(&browser).await;
    browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_fails_a_waiting_call_at_once_and_launch_mode_relaunches() {
    let profile = Profile::new("kill9");
    let (browser, notices) = browser(config(&profile, BrowserMode::Launch, 0));
    browser.connect().await.expect("connect");
    let pid = browser.pids()[0];

    let waiting = {
        let browser = browser.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = browser
                .evaluate(
                    "window.waiting = true; new Promise(() => {})",
                    Duration::from_secs(60),
                )
                .await;
            (result, started.elapsed())
        })
    };
    // The page itself says when the call is in flight.
    eventually("the call is waiting in the page", DEADLINE, || async {
        matches!(
            browser
                .evaluate("window.waiting === true", Duration::from_secs(5))
                .await,
            Ok(serde_json::Value::Bool(true))
        )
    })
    .await;
    assert!(platform::signal(pid, Signal::Kill));
    let (result, _) = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the waiting call fails within 2 s")
        .expect("join");
    assert!(
        matches!(
            result,
            Err(BrowserError::Cdp(
                executor::browser::cdp::CdpError::Disconnected { .. }
            ))
        ),
        "{result:?}"
    );
    eventually("loss reported", DEADLINE, || async {
        notices
            .lock()
            .expect("notices")
            .iter()
            .any(|n| matches!(n, Notice::Lost { .. }))
    })
    .await;

    // Relaunch (at most one launch per interval: retry until allowed).
    eventually("relaunched", DEADLINE, || async {
        match browser.connect().await {
            Ok(()) => true,
            Err(BrowserError::RelaunchTooSoon { .. }) => false,
            Err(err) => panic!("relaunch failed: {err}"),
        }
    })
    .await;
    assert_ne!(browser.pids(), vec![pid], "a new browser");
    still_works(&browser).await;
    browser.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_mode_reconnects_after_the_browser_is_back() {
    let profile = Profile::new("attach-kill");
    let port = free_port();
    let first = own_chromium(&profile.dir, port);
    let (browser, _) = browser(config(&profile, BrowserMode::Attach, port));
    browser.connect().await.expect("attach");
    assert_eq!(browser.pids(), vec![first.identity.pid]);
    assert!(platform::signal(first.identity.pid, Signal::Kill));
    let started = Instant::now();
    let result = browser
        .evaluate("new Promise(() => {})", Duration::from_secs(60))
        .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "failed at once");
    first.terminate(Duration::from_secs(1));

    let second = own_chromium(&profile.dir, port);
    browser.connect().await.expect("reattach");
    still_works(&browser).await;
    browser.shutdown().await;
    // Attach mode never ends the browser it was pointed at.
    assert!(second.identity.is_alive());
    second.terminate(Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_browser_times_out_is_reported_lost_and_recovers_after_sigcont() {
    let profile = Profile::new("frozen");
    let port = free_port();
    let chrome = own_chromium(&profile.dir, port);
    let (browser, notices) = browser(config(&profile, BrowserMode::Attach, port));
    browser.connect().await.expect("attach");
    let pid = chrome.identity.pid;
    assert!(platform::signal(pid, Signal::Stop));

    let started = Instant::now();
    let result = browser.evaluate("1 + 1", Duration::from_secs(1)).await;
    assert!(result.is_err(), "a frozen browser cannot answer");
    assert!(started.elapsed() < Duration::from_secs(3));
    eventually("heartbeat reports the loss", DEADLINE, || async {
        notices
            .lock()
            .expect("notices")
            .iter()
            .any(|n| matches!(n, Notice::Lost { reason } if reason.contains("heartbeat")))
    })
    .await;
    assert!(!browser.is_connected());

    assert!(platform::signal(pid, Signal::Cont));
    eventually("reconnected after SIGCONT", DEADLINE, || async {
        browser.connect().await.is_ok()
    })
    .await;
    still_works(&browser).await;
    browser.shutdown().await;
    chrome.terminate(Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_browser_survives_every_cleanup_and_restart_of_ours() {
    let user_dir = Profile::new("user-browser");
    let user_port = free_port();
    let user = own_chromium(&user_dir.dir, user_port);
    let user_pid = user.identity.pid;
    let user_start = user.identity.start_unix_ms;

    let profile = Profile::new("ours");
    let (browser, _) = browser(config(&profile, BrowserMode::Launch, 0));
    browser.connect().await.expect("connect");
    // Every path that ends processes: halting a runaway page, the shutdown that ends our browser
    // and sweeps our profile, and a fresh launch's leftover sweep.
    browser
        .navigate(
            "data:text/html,<script>while(true){}</script>",
            Duration::from_millis(500),
        )
        .await
        .ok();
    let _ = browser.halt().await;
    browser.shutdown().await;
    // Leftover sweep of our profile at a fresh start.
    let (again, _) = self::browser(config(&profile, BrowserMode::Launch, 0));
    again.connect().await.expect("connect again");
    again.shutdown().await;

    assert!(
        platform::is_same_process(user_pid, user_start),
        "the user's browser is untouched"
    );
    let ws = executor::browser::cdp::browser_ws_url(
        [127, 0, 0, 1].into(),
        user_port,
        Duration::from_secs(5),
    )
    .await;
    assert!(ws.is_ok(), "and still answering: {ws:?}");
    user.terminate(Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_browser_on_our_profile_is_ended_at_start() {
    let profile = Profile::new("leftover");
    // Launched and forgotten, as after a crash of the daemon.
    let forgotten = own_chromium(&profile.dir, 0).detach();
    assert!(forgotten.is_alive());
    let (browser, notices) = browser(config(&profile, BrowserMode::Launch, 0));
    browser.connect().await.expect("connect");
    wait_until("leftover gone", DEADLINE, || !forgotten.is_alive());
    assert!(notices
        .lock()
        .expect("n")
        .iter()
        .any(|n| matches!(n, Notice::LeftoversEnded { count } if *count >= 1)));
    assert_ne!(browser.pids(), vec![forgotten.pid]);
    browser.shutdown().await;
    assert!(
        managed::leftovers(&profile.path("chrome-profile"), &[]).is_empty(),
        "nothing left on our profile"
    );
}

#[test]
fn executor_chrome_twice_refuses_naming_the_running_pid() {
    let profile = Profile::new("chrome-twice");
    let port = free_port().to_string();
    let (code, output) = run(
        &mut command(&profile.dir, &["--cdp-port", &port, "chrome"]),
        DEADLINE,
    );
    assert_eq!(code, 0, "{output}");
    let identity = managed::Identity::read(&profile.path("chrome.json")).expect("chrome.json");
    assert!(identity.is_alive());
    assert_eq!(identity.port.to_string(), port);

    let (code, output) = run(
        &mut command(&profile.dir, &["--cdp-port", &port, "chrome"]),
        DEADLINE,
    );
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains(&format!("pid {}", identity.pid)),
        "{output}"
    );

    let (code, output) = run(&mut command(&profile.dir, &["chrome", "--stop"]), DEADLINE);
    assert_eq!(code, 0, "{output}");
    wait_until("browser ended", DEADLINE, || !identity.is_alive());
    assert!(!profile.path("chrome.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_that_are_not_cdp_give_clear_errors() {
    let profile = Profile::new("notcdp");
    // Nothing listening.
    let (nothing, _) = browser(config(&profile, BrowserMode::Attach, free_port()));
    let err = nothing.connect().await.expect_err("nothing there");
    assert!(
        err.to_string().contains("nothing is listening for CDP"),
        "{err}"
    );

    // Something that speaks HTTP but is not DevTools, something that is not HTTP at all, and a
    // fake DevTools endpoint that sends us to another host.
    let elsewhere = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 77\r\n\r\n{\"webSocketDebuggerUrl\": \"ws://10.9.8.7:9222/devtools/browser/0123456789abc\"}";
    for (answer, says) in [
        (
            &b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"[..],
            "HTTP 404",
        ),
        (&b"SSH-2.0-OpenSSH_9.2\r\n"[..], ""),
        (&elsewhere[..], "not to the address asked"),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(answer).await;
                let _ = socket.shutdown().await;
            }
        });
        let (other, _) = browser(config(&profile, BrowserMode::Attach, port));
        let started = Instant::now();
        let err = other.connect().await.expect_err("not CDP");
        assert!(
            err.to_string()
                .contains("is not a Chrome DevTools endpoint"),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    // A non-loopback address without --allow-remote-cdp is refused before anything starts.
    let (code, output) = run(
        &mut command(&profile.dir, &["--cdp-host", "10.9.8.7", "daemon"]),
        DEADLINE,
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("--allow-remote-cdp"), "{output}");
}

#[test]
fn a_missing_browser_binary_is_a_clear_error_with_install_hints() {
    let profile = Profile::new("nobinary");
    let (code, output) = run(
        &mut command(
            &profile.dir,
            &["--chrome-path", "/nonexistent/chromium", "chrome"],
        ),
        DEADLINE,
    );
    assert_eq!(code, 2, "{output}");
    assert!(output.contains("/nonexistent/chromium"), "{output}");

    // Nothing on PATH and no explicit path: the message says what to install.
    let mut cmd = command(&profile.dir, &["chrome"]);
    cmd.env("PATH", "/nonexistent");
    let found_elsewhere = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/snap/bin/chromium",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists());
    if !found_elsewhere {
        let (code, output) = run(&mut cmd, DEADLINE);
        assert_eq!(code, 2, "{output}");
        assert!(output.contains("apt-get install chromium"), "{output}");
    }
    let err = managed::LaunchError::NotFound { looked: "x".into() }.to_string();
    assert!(
        err.contains("apt-get install chromium")
            && err.contains("macOS")
            && err.contains("--chrome-path")
    );
}

/// A small HTTP server: `/start` redirects to `/landed`, which says so; `/other` is another
/// page. Its address.
fn redirecting_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let read = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..read]).to_string();
            let answer = if head.starts_with("GET /start ") {
                "HTTP/1.1 302 Found\r\nLocation: /landed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else {
                let body = if head.starts_with("GET /other ") {
                    "<title>other</title><p id=other>there</p>"
                } else {
                    "<title>landed</title><p id=landed>here</p>"
                };
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_handle_follows_the_pages_own_navigations_and_open_reports_where_it_landed() {
    let profile = Profile::new("document");
    let (browser, _notices) = browser(config(&profile, BrowserMode::Launch, 0));
    browser.connect().await.expect("connect");
    let found = |selector: &'static str| {
        let browser = browser.clone();
        async move {
            browser
                .call_function(
                    "function (s) { return !!this.querySelector(s); }",
                    &[serde_json::json!(selector)],
                    Duration::from_secs(5),
                )
                .await
                .expect("call")
                .as_bool()
                .expect("a bool")
        }
    };
    let base = redirecting_server();
    browser
        .navigate(&format!("{base}/landed"), Duration::from_secs(10))
        .await
        .expect("navigate");
    assert!(found("#landed").await, "the first document");
    // The page moves by itself: the handle kept for the first document is gone with it.
    browser
        .evaluate("location.href = '/other'; true", Duration::from_secs(5))
        .await
        .expect("evaluate");
    browser
        .wait_for("#other", Duration::from_secs(10))
        .await
        .expect("the new document is found, not through the first one's stale handle");
    assert!(!found("#landed").await);

    // A redirect: the URL the page landed on, as the browser announced it.
    let landed = browser
        .open_url(&format!("{base}/start"), Duration::from_secs(10))
        .await
        .expect("open");
    assert_eq!(landed, format!("{base}/landed"));
    assert_eq!(browser.current_url().await.expect("url"), landed);
    assert!(found("#landed").await);
    browser.shutdown().await;
}

/// The browser's memory is counted over its process tree, which is not looked for again every
/// tick (a read per thread of every process): a member that ended is noticed at the next count,
/// and the tree found again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counted_process_tree_notices_a_member_that_ended() {
    let profile = Profile::new("tree");
    let (browser, _notices) = browser(config(&profile, BrowserMode::Launch, 0));
    browser.connect().await.expect("connect");
    let root = browser.pids()[0];
    assert!(browser.resident_bytes() > 0);
    let counted = browser.counted_processes();
    assert!(counted.contains(&root) && counted.len() > 1, "{counted:?}");
    // A helper process of the browser's (not our page's renderer) ends.
    let helper = platform::process_tree(root)
        .into_iter()
        .find(|p| {
            p.pid != root
                && !p.cmdline.iter().any(|a| a == "--type=renderer")
                && counted.contains(&p.pid)
        })
        .expect("a helper process");
    assert!(platform::signal(helper.pid, Signal::Kill));
    eventually(
        "the ended helper is no longer counted",
        DEADLINE,
        || async {
            browser.resident_bytes();
            !browser.counted_processes().contains(&helper.pid)
        },
    )
    .await;
    // (Whether the browser copes with losing that helper is its own business: the network
    // service, say, is restarted, and a navigation in between fails.)
    browser.shutdown().await;
}
