//! The dashboard from outside, as an operator and a producer meet it: `executor ui` driven in
//! headless Chromium through our own CDP layer (the overview, the job filter, a dead job retried,
//! hostile job text shown as text, screenshots kept), a lane paused and resumed through it while
//! a real daemon runs (the daemon obeys; the page says why the job waits, in the CLI's words),
//! its door (401 without the token, the
//! token URL traded for a cookie, cross-site POSTs refused, the security headers), `POST
//! /api/jobs` answering as `executor enqueue` does, and the daemon serving it beside /metrics.
//! The store-reading parts run on SQLite and on PostgreSQL.
//!
//! Screenshots go to `target/ui-screenshots/` (or `$EXECUTOR_UI_SCREENSHOTS`).

mod common;

use common::daemons::*;
use common::rig::*;
use common::*;
use executor::browser::{Browser, BrowserConfig};
use executor::settings::DatabaseUrl;
use executor::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Job text a hostile producer could write: must be shown, never run.
const HOSTILE: &str =
    "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned=2\"> dead one";
/// The account of the jobs the tests act on: no daemon in these tests serves it.
const OTHER: &str = "other-account";

/// An HTTP answer: status, header block (lower-cased names) and body.
struct Answer {
    status: u16,
    headers: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// One HTTP/1.1 request with our own headers (the CDP layer's client sends none).
async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the dashboard");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .expect("read the answer");
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Answer {
        status,
        headers: headers.to_string(),
        body: body.to_string(),
    }
}

/// What the tests put in a store before the dashboard shows it.
struct Seeded {
    store: Arc<dyn Store>,
    /// `--database` for the binary.
    database: String,
    dead: i64,
    queued: i64,
}

/// A store with one active executor that has ticked (and closed strays, and stopped once), a
/// due job of the default account, and a dead job with hostile text for [`OTHER`].
async fn seed(database: String) -> Seeded {
    use executor::events::{Event, Identity, Severity};
    let (url, database) = if database.starts_with("postgres") {
        (DatabaseUrl::Postgres(database.clone()), database)
    } else {
        (
            DatabaseUrl::Sqlite(database.clone().into()),
            format!("sqlite://{database}"),
        )
    };
    let store = executor::store::open(&url).await.expect("open the store");
    let now = SystemTime::now();
    let identity = Identity {
        run_id: "run-1".into(),
        executor_id: "exec-ui-test".into(),
    };
    store
        .executor_register(
            &executor::fleet::ExecutorInfo {
                id: identity.executor_id.clone(),
                account: String::new(),
                host: "test-host".into(),
                pid: 4242,
                version: "0.1.0".into(),
                run_id: identity.run_id.clone(),
                started_at: now,
                pace: executor::fleet::Pace::default(),
            },
            now,
        )
        .await
        .expect("register");
    store
        .account_lease_hold(
            "",
            &identity.executor_id,
            Duration::from_secs(600),
            &identity,
            now,
        )
        .await
        .expect("lease");
    let tick = json!({"tick": 7, "pages": 1, "posting_ready": 1, "reply_ready": 0,
        "backoff_seconds": 0, "last_error": null, "duration_ms": 12});
    store
        .executor_tick(
            &identity.executor_id,
            &Event::new(
                &identity,
                executor::events::TICK,
                Severity::Info,
                "seeded",
                tick.clone(),
            ),
            None,
        )
        .await
        .expect("tick");
    for (kind, data) in [
        (
            executor::events::TICK,
            json!({"tick": 6, "pages": 2, "last_error": "CDP unreachable", "failed": true}),
        ),
        (executor::events::PAGE_CAP_ENFORCED, json!({"closed": 3})),
        (executor::events::STOP, json!({})),
    ] {
        store
            .event_insert(&Event::new(&identity, kind, Severity::Info, "seeded", data))
            .await
            .expect("event");
    }
    enqueue_now(
        store.as_ref(),
        executor::jobs::Kind::Post,
        "a due post",
        None,
    )
    .await;
    let queued = store
        .job_list(&executor::jobs::JobQuery::default())
        .await
        .expect("list")[0]
        .id;
    let hostile = executor::jobs::NewJob {
        kind: executor::jobs::Kind::Post,
        text: HOSTILE.into(),
        reply_to: None,
        account: OTHER.into(),
        idempotency_key: None,
        not_before: now,
        max_attempts: 5,
    };
    let dead = match store.job_enqueue(&hostile, now).await.expect("enqueue") {
        executor::store::Enqueued::Created(job) => job.id,
        other => panic!("a new job, not {other:?}"),
    };
    // A job gives up only after its attempts; the test puts it there directly.
    let sql = "UPDATE jobs SET state = 'dead', last_error = 'gave up after 5 attempts' WHERE id = ";
    if let DatabaseUrl::Sqlite(path) = &url {
        rusqlite::Connection::open(path)
            .expect("open sqlite")
            .execute(&format!("{sql}{dead}"), [])
            .expect("make it dead");
    } else {
        postgres_client(&database)
            .await
            .execute(&format!("{sql}{dead}"), &[])
            .await
            .expect("make it dead");
    }
    let attempt =
        json!({"job_id": dead, "kind": "post", "account": OTHER, "attempts": 5, "dead": true});
    store
        .event_insert(&Event::new(
            &identity,
            executor::events::POST_FAILED,
            Severity::Error,
            "gave up",
            attempt,
        ))
        .await
        .expect("the job's event");
    Seeded {
        store,
        database,
        dead,
        queued,
    }
}

/// `executor ui` on a free port over `database`: the process and the URL it printed.
fn start_ui(profile: &Profile, database: &str) -> (Running, String) {
    let ui = spawn(command(
        &profile.dir,
        &["--database", database, "--ui-addr", "127.0.0.1:0", "ui"],
    ));
    let line = ui.lines.wait_for(START, |l| l.starts_with("Dashboard on "));
    let url = line.trim_start_matches("Dashboard on ").to_string();
    (ui, url)
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a loopback URL with a port: {url}"))
}

fn token_of(url: &str) -> String {
    url.split("token=").nth(1).expect("a token").to_string()
}

/// A headless browser of its own (launch mode on `viewer`), for looking at the dashboard.
async fn viewer(viewer: &Profile) -> Browser {
    let mut flags = executor::settings::Layer::default();
    flags.flag("browser_mode", Some("launch".into()));
    flags.flag("cdp_port", Some("0".into()));
    let settings =
        executor::settings::resolve(Some(viewer.dir.clone()), &flags, &|_| None).expect("settings");
    let browser = Browser::new(BrowserConfig::from_settings(&settings), Arc::new(|_| {}));
    eventually("the viewer browser answers", START, || async {
        browser.connect().await.is_ok()
    })
    .await;
    // A desktop-sized window, so the screenshots show the tables as an operator sees them.
    browser
        .page_call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
            Duration::from_secs(5),
        )
        .await
        .expect("window size");
    browser
}

/// Keeps a PNG of what the browser shows as `<dir>/<name>.png`.
async fn screenshot(browser: &Browser, name: &str) {
    let dir = std::env::var_os("EXECUTOR_UI_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots")
        });
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let shot = browser
        .page_call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
            Duration::from_secs(10),
        )
        .await
        .expect("screenshot");
    let bytes = base64_decode(shot["data"].as_str().expect("png data"));
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), &bytes).expect("keep the screenshot");
}

async fn look(browser: &Browser, expression: &str) -> Value {
    browser
        .evaluate(expression, Duration::from_secs(5))
        .await
        .expect("evaluate on the page")
}

/// Waits until `expression` is true on the page (a navigation started by a click or a submit).
async fn until_page(browser: &Browser, what: &str, expression: &str) {
    let deadline = Duration::from_secs(20);
    let holds = || async {
        browser
            .evaluate(expression, Duration::from_secs(5))
            .await
            .map(|v| v == json!(true))
            .unwrap_or(false)
    };
    // One second past `eventually`'s own deadline: on a timeout, say what the page shows.
    let waited = tokio::time::timeout(
        deadline,
        eventually(what, deadline + Duration::from_secs(1), holds),
    )
    .await;
    if waited.is_err() {
        let shown = browser
            .evaluate(
                "location.href + ' ' + document.body.innerText",
                Duration::from_secs(5),
            )
            .await;
        panic!("timed out after {deadline:?} waiting for {what}; the page: {shown:?}");
    }
}

/// `executor ui` over a store, and a browser of its own that has opened the printed URL (and so
/// holds the cookie). Dropped in this order: the browser's process is ended by
/// `browser.shutdown()`, then the dashboard, then the profiles.
struct Opened {
    browser: Browser,
    url: String,
    _ui: Running,
    _viewer: Profile,
    _profile: Profile,
}

/// Opens the dashboard over `database` (profiles named after `name`), and waits until the
/// page shows `ready` (a JavaScript condition).
async fn open_dashboard(name: &str, database: &str, ready: &str) -> Opened {
    let profile = Profile::new(name);
    let (ui, url) = start_ui(&profile, database);
    let viewer_profile = Profile::new(&format!("{name}-viewer"));
    let browser = viewer(&viewer_profile).await;
    browser
        .navigate(&url, Duration::from_secs(20))
        .await
        .expect("open the dashboard");
    until_page(&browser, &format!("the overview ({ready})"), ready).await;
    Opened {
        browser,
        url,
        _ui: ui,
        _viewer: viewer_profile,
        _profile: profile,
    }
}

/// The whole operator's path in a real browser over the store at `database`.
async fn drive_dashboard(database: String, label: &str) {
    let seeded = seed(database).await;
    // The token URL: the cookie is set and the token leaves the address bar.
    let opened = open_dashboard(
        &format!("ui-{label}"),
        &seeded.database,
        "!!document.getElementById('executors')",
    )
    .await;
    let (browser, url) = (&opened.browser, opened.url.as_str());
    assert_eq!(look(browser, "location.search").await, json!(""));
    let overview = look(
        browser,
        "(() => { const row = document.querySelector('#executors tbody tr');
            const q = (account, col) => { const r = [...document.querySelectorAll('#queue tbody tr')]
              .find(r => r.cells[0].textContent === account);
              return r ? r.querySelector(`td[data-col=\"${col}\"]`).textContent : null; };
            return { executors: document.querySelectorAll('#executors tbody tr').length,
              executor: row.cells[0].textContent, health: row.cells[2].textContent,
              tick: row.cells[4].textContent, due: q('(default)', 'due'), dead: q('other-account', 'dead'),
              bars: document.querySelectorAll('#timeline rect.bar').length,
              stops: document.querySelectorAll('#timeline line.stop').length,
              why: q('(default)', 'why'),
              pauseForm: !!document.getElementById('pause-form'),
              pauses: document.querySelectorAll('#pauses tbody tr.empty').length }; })()",
    )
    .await;
    assert_eq!(overview["executors"], 1, "{overview}");
    assert_eq!(overview["executor"], "exec-ui-test", "{overview}");
    assert_eq!(overview["health"], "active", "{overview}");
    assert!(
        overview["tick"]
            .as_str()
            .unwrap_or_default()
            .contains("tick 7"),
        "{overview}"
    );
    assert_eq!(
        overview["due"], "1",
        "one due post of the default account: {overview}"
    );
    assert_eq!(
        overview["dead"], "1",
        "one dead post of the other account: {overview}"
    );
    assert!(
        overview["bars"].as_u64().unwrap_or(0) >= 4,
        "pages, queue, failure, strays: {overview}"
    );
    assert_eq!(overview["stops"], 1, "{overview}");
    assert_eq!(
        overview["pauseForm"], true,
        "a lane can be paused: {overview}"
    );
    assert_eq!(overview["pauses"], 1, "nothing is paused yet: {overview}");
    assert!(
        overview["why"]
            .as_str()
            .unwrap_or_default()
            .starts_with("1 job due for the default account"),
        "the due post says why it waits, as `executor status` does: {overview}"
    );
    screenshot(browser, &format!("{label}-overview")).await;

    // The overview keeps itself up to date: a job added now shows without a reload.
    enqueue_now(
        seeded.store.as_ref(),
        executor::jobs::Kind::Post,
        "another due post",
        None,
    )
    .await;
    until_page(
        browser,
        "the overview shows the new job by itself",
        "[...document.querySelectorAll('#queue tbody tr')].some(r => r.cells[0].textContent === '(default)' \
           && r.querySelector('td[data-col=\"due\"]').textContent === '2')",
    )
    .await;

    // Filter the jobs with the form: dead ones only.
    browser
        .navigate(
            &url.replace(&format!("?token={}", token_of(url)), "jobs"),
            Duration::from_secs(20),
        )
        .await
        .expect("open the jobs");
    until_page(
        browser,
        "the job list",
        "!!document.getElementById('filter')",
    )
    .await;
    look(
        browser,
        "(() => { document.querySelector('#filter select[name=state]').value = 'dead';
            document.getElementById('filter').submit(); return true; })()",
    )
    .await;
    until_page(
        browser,
        "the filtered list",
        "location.search.includes('state=dead') && !!document.getElementById('jobs')",
    )
    .await;
    let listed = look(
        browser,
        "({ rows: [...document.querySelectorAll('#jobs tbody tr')].map(r => r.cells[2].textContent),
            text: document.querySelector('#jobs td.text').textContent,
            injected: document.querySelectorAll('#jobs td.text script, #jobs td.text img').length,
            pwned: typeof window.pwned })",
    )
    .await;
    assert_eq!(
        listed["rows"],
        json!(["dead"]),
        "only the dead job: {listed}"
    );
    assert_eq!(
        listed["text"], HOSTILE,
        "the hostile text is shown as text: {listed}"
    );
    assert_eq!(listed["injected"], 0, "{listed}");
    assert_eq!(listed["pwned"], "undefined", "nothing of it ran: {listed}");
    screenshot(browser, &format!("{label}-jobs-dead")).await;

    // By text, across states.
    browser
        .navigate(
            &format!("http://127.0.0.1:{}/jobs?text=another", port_of(url)),
            Duration::from_secs(20),
        )
        .await
        .expect("filter by text");
    let by_text = look(
        browser,
        "[...document.querySelectorAll('#jobs tbody tr')].map(r => r.cells[6].textContent)",
    )
    .await;
    assert_eq!(by_text, json!(["another due post"]));

    // Retry the dead job from its row: it is queued again, on the page and in the store.
    browser
        .navigate(
            &format!("http://127.0.0.1:{}/jobs?state=dead", port_of(url)),
            Duration::from_secs(20),
        )
        .await
        .expect("the dead jobs");
    browser
        .click(
            &format!("#jobs form[action='/jobs/{}/retry'] button", seeded.dead),
            Duration::from_secs(10),
        )
        .await
        .expect("click retry");
    until_page(
        browser,
        "the job page after the retry",
        &format!(
            "location.pathname === '/jobs/{}' && !!document.getElementById('history')",
            seeded.dead
        ),
    )
    .await;
    let state = look(
        browser,
        "[...document.querySelectorAll('#job tr')].find(r => r.cells[0].textContent === 'state').cells[1].textContent",
    )
    .await;
    assert_eq!(state, "queued");
    let history = look(
        browser,
        "[...document.querySelectorAll('#history tbody tr:not(.empty)')].map(r => r.cells[1].textContent)",
    )
    .await;
    assert_eq!(history, json!(["POST_FAILED"]), "the job's own events");
    let stored = seeded
        .store
        .job_get(seeded.dead)
        .await
        .expect("get")
        .expect("the job");
    assert_eq!(stored.state.name(), "queued");
    screenshot(browser, &format!("{label}-job-retried")).await;
    browser.shutdown().await;
}

/// The `--database` value for a store the tests' macro names by path (SQLite) or URL.
fn database_flag(database: &str) -> String {
    if database.starts_with("postgres") {
        database.to_string()
    } else {
        format!("sqlite://{database}")
    }
}

/// `executor jobs show ID --json` on `database`: the job and why it waits.
fn jobs_show(profile: &Profile, database: &str, id: i64) -> Value {
    let id = id.to_string();
    let args = ["--database", database, "jobs", "show", &id, "--json"];
    let (code, output) =
        tokio::task::block_in_place(|| run(&mut command(&profile.dir, &args), START));
    assert_eq!(code, 0, "jobs show: {output}");
    serde_json::from_str(&output).unwrap_or_else(|err| panic!("not JSON ({err}): {output}"))
}

/// The reasons the dashboard lists in the cell or row `selector`: `[[reason, text], …]`.
async fn reasons_shown(browser: &Browser, selector: &str) -> Value {
    look(
        browser,
        &format!(
            "[...document.querySelectorAll(\"{selector} li[data-reason]\")].map(li => [li.dataset.reason, li.textContent])"
        ),
    )
    .await
}

/// The overview's cell `col` of `account`'s `lane`, as the page script finds it.
fn queue_cell(account: &str, lane: &str, col: &str) -> String {
    format!(
        "(() => {{ const r = [...document.querySelectorAll('#queue tbody tr')].find(r => r.cells[0].textContent === '{account}' && r.cells[1].textContent === '{lane}');
            const c = r && r.querySelector('td[data-col=\"{col}\"]'); return c ? c.textContent : ''; }})()"
    )
}

/// The operator pauses the post lane in the dashboard while a daemon runs: tick after tick the
/// daemon claims no post (replies still go out), the overview and the job's page say the post
/// waits for the pause in `executor status`'s and `jobs show`'s words; resumed in the
/// dashboard, the held post is published once.
async fn pause_and_resume_in_the_dashboard(database: String, label: &str) {
    let database = database_flag(&database);
    let site = sandbox_rig().await;
    let profile = Profile::new(&format!("ui-pause-{label}"));
    let chrome = logged_in_chrome(&profile, &site.url).await;
    let store = executor::store::open(&if database.starts_with("postgres") {
        DatabaseUrl::Postgres(database.clone())
    } else {
        DatabaseUrl::Sqlite(database.trim_start_matches("sqlite://").into())
    })
    .await
    .expect("open the store");
    let mut daemon = site_daemon(&profile, &chrome, &site.url, &database, &[]);
    enqueue_now(
        store.as_ref(),
        executor::jobs::Kind::Post,
        "published before the pause",
        None,
    )
    .await;
    let target = published(&site, "published before the pause").await;

    let opened = open_dashboard(
        &format!("ui-pause-dashboard-{label}"),
        &database,
        "!!document.getElementById('pause-form')",
    )
    .await;
    let (browser, port) = (&opened.browser, port_of(&opened.url));

    // Pause the post lane of every account, as `executor pause --kind post --reason …` would.
    look(
        browser,
        "(() => { const f = document.getElementById('pause-form');
            f.querySelector('select[name=kind]').value = 'post';
            f.querySelector('input[name=reason]').value = 'checking the planner';
            f.submit(); return true; })()",
    )
    .await;
    until_page(
        browser,
        "the pause listed on the overview",
        "[...document.querySelectorAll('#pauses tbody tr')].some(r => r.cells[0].textContent === 'the post lane of every account')",
    )
    .await;
    let listed = look(
        browser,
        "(() => { const r = document.querySelector('#pauses tbody tr');
            return { by: r.cells[2].textContent, reason: r.cells[3].textContent,
              resume: !!r.querySelector('form[action=\"/pauses/resume\"] button') }; })()",
    )
    .await;
    assert_eq!(listed["reason"], "checking the planner", "{listed}");
    assert_eq!(listed["resume"], true, "{listed}");
    let pauses = store.pause_list().await.expect("pauses");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(
        pauses[0].scope,
        executor::pauses::Scope {
            kind: Some(executor::jobs::Kind::Post),
            account: None
        }
    );
    assert!(pauses[0].by.ends_with("(dashboard)"), "{:?}", pauses[0].by);
    assert_eq!(listed["by"], pauses[0].by.as_str(), "{listed}");

    let since = SystemTime::now();
    enqueue_now(
        store.as_ref(),
        executor::jobs::Kind::Post,
        "held by the pause",
        None,
    )
    .await;
    let held = store
        .job_list(&executor::jobs::JobQuery {
            text: Some("held by the pause".into()),
            ..Default::default()
        })
        .await
        .expect("list")[0]
        .clone();
    enqueue_now(
        store.as_ref(),
        executor::jobs::Kind::Reply,
        "replies are not paused",
        Some(&target.id),
    )
    .await;
    // The daemon obeys: several ticks see the post due, none claims it; the reply goes out.
    post_lane_held(&site, store.as_ref(), since, 5, "held by the pause").await;
    published(&site, "replies are not paused").await;
    let ticks = ticks_since(store.as_ref(), since).await;
    assert!(
        ticks.iter().all(|t| t["posting_attempts"] == 0),
        "no post claimed while paused: {ticks:?}"
    );
    assert!(site
        .sandbox
        .posts()
        .iter()
        .all(|p| p.text != "held by the pause"));
    assert_eq!(
        store
            .job_get(held.id)
            .await
            .expect("get")
            .expect("the job")
            .state
            .name(),
        "queued"
    );

    // The overview says why, as the library (and so `executor status`) says it.
    until_page(
        browser,
        "the overview says the post lane is paused",
        &format!("{} === 'paused'", queue_cell("(default)", "post", "paused")),
    )
    .await;
    let lane = executor::waiting::why(store.as_ref(), "", SystemTime::now())
        .await
        .expect("why")
        .into_iter()
        .find(|lane| lane.kind == executor::jobs::Kind::Post)
        .expect("the post lane");
    let paused = lane
        .reasons
        .iter()
        .find(|cause| cause.reason == executor::waiting::Reason::Paused)
        .unwrap_or_else(|| panic!("the library says paused: {lane:?}"));
    let overview = reasons_shown(browser, "#queue td[data-col=why]").await;
    assert!(
        overview
            .as_array()
            .is_some_and(|shown| shown.contains(&json!(["paused", paused.message]))),
        "the overview says {:?}: {overview}",
        paused.message
    );
    let why = look(browser, &queue_cell("(default)", "post", "why")).await;
    assert!(
        why.as_str()
            .unwrap_or_default()
            .starts_with("1 job due for the default account waits"),
        "{why}"
    );
    screenshot(browser, &format!("{label}-overview-paused")).await;

    // The job's page says what `jobs show` says.
    browser
        .navigate(
            &format!("http://127.0.0.1:{port}/jobs/{}", held.id),
            Duration::from_secs(20),
        )
        .await
        .expect("the held job");
    until_page(
        browser,
        "the job's page",
        "!!document.getElementById('job')",
    )
    .await;
    let shown = reasons_shown(browser, "#waiting").await;
    let cli = jobs_show(&profile, &database, held.id);
    let said: Vec<Value> = cli["waiting"]
        .as_array()
        .unwrap_or_else(|| panic!("jobs show says why: {cli:#}"))
        .iter()
        .map(|cause| json!([cause["reason"], cause["message"]]))
        .collect();
    assert_eq!(shown, json!(said), "the page and `jobs show` agree");
    assert!(said.iter().any(|c| c[0] == "paused"), "{said:?}");
    screenshot(browser, &format!("{label}-job-waiting")).await;

    // Resume from the overview: the held post goes out, once.
    browser
        .navigate(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(20),
        )
        .await
        .expect("the overview");
    until_page(
        browser,
        "the resume button",
        "!!document.querySelector('#pauses button.resume')",
    )
    .await;
    browser
        .click("#pauses button.resume", Duration::from_secs(10))
        .await
        .expect("click resume");
    until_page(
        browser,
        "the overview with nothing paused",
        "!!document.querySelector('#pauses tbody tr.empty')",
    )
    .await;
    assert!(store.pause_list().await.expect("pauses").is_empty());
    published_once(&site, store.as_ref(), held.id, "held by the pause").await;
    assert_eq!(
        pause_events(store.as_ref()).await,
        ["QUEUE_PAUSED", "QUEUE_RESUMED"]
    );
    screenshot(browser, &format!("{label}-resumed")).await;
    browser.shutdown().await;
    daemon.signal(libc::SIGTERM);
    let status = tokio::task::block_in_place(|| daemon.wait_exit(Duration::from_secs(20)));
    assert_eq!(status.code(), Some(0), "{}", daemon.lines.all().join("\n"));
}

/// Each `case(database, label)` as one test on SQLite and one on PostgreSQL.
macro_rules! on_both_stores {
    ($($case:ident: $sqlite:ident, $postgres:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let profile = Profile::new(stringify!($sqlite));
            $case(profile.db().display().to_string(), "sqlite").await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(base) = postgres_base_url() else {
                return;
            };
            $case(postgres_schema(&base).await, "postgres").await;
        }
    )*};
}

on_both_stores! {
    drive_dashboard:
        dashboard_in_chromium_shows_the_fleet_filters_jobs_and_retries_a_dead_job_on_sqlite,
        dashboard_in_chromium_shows_the_fleet_filters_jobs_and_retries_a_dead_job_on_postgres;
    api_answers_as_the_cli:
        post_api_jobs_answers_as_the_cli_on_sqlite,
        post_api_jobs_answers_as_the_cli_on_postgres;
    pause_and_resume_in_the_dashboard:
        a_lane_paused_in_the_dashboard_holds_a_running_daemon_until_resumed_on_sqlite,
        a_lane_paused_in_the_dashboard_holds_a_running_daemon_until_resumed_on_postgres;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_the_token_and_cross_site_posts_are_refused() {
    let profile = Profile::new("ui-door");
    let seeded = seed(profile.db().display().to_string()).await;
    let (_ui, url) = start_ui(&profile, &seeded.database);
    let (port, token) = (port_of(&url), token_of(&url));

    for (method, path) in [
        ("GET", "/nowhere"),
        ("GET", "/"),
        ("GET", "/jobs"),
        ("GET", "/api/overview"),
        ("POST", "/api/jobs"),
    ] {
        let answer = http(port, method, path, &[], "").await;
        assert_eq!(
            answer.status, 401,
            "{method} {path} without the token: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("exec-ui-test"),
            "nothing of the store leaks"
        );
    }
    let wrong = http(
        port,
        "GET",
        "/?token=0123456789abcdef0123456789abcdef",
        &[],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bearer_wrong = http(
        port,
        "GET",
        "/api/overview",
        &[("Authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(bearer_wrong.status, 401);

    // The token URL: a cookie the page's script cannot read and no other site's request carries.
    let first = http(port, "GET", &format!("/?token={token}"), &[], "").await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.header("location"), Some("/"));
    let cookie = first.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().expect("name=value").to_string();

    let page = http(port, "GET", "/", &[("Cookie", &cookie)], "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("exec-ui-test"));
    let policy = page.header("content-security-policy").expect("a CSP");
    assert!(
        policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce");
    assert!(
        page.body.contains(&format!("<script nonce=\"{nonce}\">")),
        "the script carries it"
    );
    assert!(!page.body.contains("src=\"http"), "no external asset");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let other = http(port, "GET", "/", &[("Cookie", &cookie)], "").await;
    assert_ne!(
        other.header("content-security-policy"),
        Some(policy),
        "a fresh nonce per answer"
    );

    // The hostile text is escaped in the HTML itself.
    let jobs = http(port, "GET", "/jobs?state=dead", &[("Cookie", &cookie)], "").await;
    assert!(
        !jobs.body.contains("<script>window.pwned"),
        "raw markup in the page"
    );
    assert!(jobs
        .body
        .contains("&lt;script&gt;window.pwned = 1&lt;/script&gt;"));
    let csrf = jobs
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_string();

    // A cross-site POST, even with the cookie: refused, and the job untouched.
    let cancel = format!("/jobs/{}/cancel", seeded.queued);
    let form = format!("csrf={csrf}");
    let post = |path: &str, from: (&str, &str), body: &str| {
        let headers = [
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
            from,
        ]
        .map(|(name, value)| (name.to_string(), value.to_string()));
        let (path, body) = (path.to_string(), body.to_string());
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            http(port, "POST", &path, &headers, &body).await
        }
    };
    let state_of = |id: i64| {
        let store = seeded.store.clone();
        async move {
            let job = store.job_get(id).await.expect("get").expect("the job");
            job.state.name().to_string()
        }
    };
    for cross in [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let answer = post(&cancel, cross, &form).await;
        assert_eq!(answer.status, 403, "{cross:?}: {}", answer.body);
    }
    // Same origin but no CSRF field (a form not made by this dashboard): refused too.
    let origin = format!("http://127.0.0.1:{port}");
    let same = ("Origin", origin.as_str());
    let answer = post(&cancel, same, "csrf=").await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(
        state_of(seeded.queued).await,
        "queued",
        "no refused POST changed anything"
    );

    // From the dashboard's own page: done, with the CLI's rule (a cancelled job cannot be
    // cancelled again: 409 with the CLI's words).
    let answer = post(&cancel, same, &form).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(state_of(seeded.queued).await, "cancelled");
    let again = post(&cancel, same, &form).await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["error"],
        format!("job {} is cancelled: cannot cancel it", seeded.queued)
    );

    // Bulk retry of the dead: the dead job of the other account is queued again.
    let answer = post("/jobs/retry-dead", same, &form).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let location = answer.header("location").unwrap_or_default();
    assert!(location.contains("retried=1"), "{location}");
    assert_eq!(state_of(seeded.dead).await, "queued");

    // Pausing is guarded as every action: cross-site or without the field, nothing is paused;
    // a bad scope is one line naming the field, as the CLI's.
    let pause = "kind=post&account=&reason=x";
    let answer = post(
        "/pauses",
        ("Sec-Fetch-Site", "cross-site"),
        &format!("{form}&{pause}"),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let answer = post("/pauses", same, &format!("csrf=&{pause}")).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let long = "a".repeat(101);
    let answer = post("/pauses", same, &format!("{form}&kind=post&account={long}")).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(
        answer.json()["error"],
        "account must be at most 100 characters"
    );
    let answer = post("/pauses", same, &format!("{form}&kind=story")).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert!(seeded.store.pause_list().await.expect("pauses").is_empty());
    let answer = post("/pauses", same, &format!("{form}&{pause}")).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let pauses = seeded.store.pause_list().await.expect("pauses");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0].reason, "x");
    let answer = post(
        "/pauses/resume",
        ("Origin", "http://evil.example"),
        &format!("{form}&kind=post"),
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert_eq!(seeded.store.pause_list().await.expect("pauses").len(), 1);
    let answer = post("/pauses/resume", same, &format!("{form}&kind=post")).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(seeded.store.pause_list().await.expect("pauses").is_empty());
}

/// `POST /api/jobs` against `executor enqueue` on the same store.
async fn api_answers_as_the_cli(database: String, label: &str) {
    let seeded = seed(database).await;
    let profile = Profile::new(&format!("ui-api-{label}"));
    let (_ui, url) = start_ui(&profile, &seeded.database);
    let (port, token) = (port_of(&url), token_of(&url));
    let bearer = format!("Bearer {token}");
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let job = r#"{"kind":"post","text":"from a planner","key":"plan-1","account":"other-account"}"#;

    let refused = http(
        port,
        "POST",
        "/api/jobs",
        &[("Content-Type", "application/json")],
        job,
    )
    .await;
    assert_eq!(refused.status, 401);

    let created = http(port, "POST", "/api/jobs", &auth, job).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    assert_eq!(created["created"], true);
    assert_eq!(created["job"]["text"], "from a planner");
    assert_eq!(created["job"]["account"], OTHER);
    assert_eq!(created["job"]["state"], "queued");

    let repeated = http(port, "POST", "/api/jobs", &auth, job).await;
    assert_eq!(repeated.status, 200, "{}", repeated.body);
    let repeated = repeated.json();
    assert_eq!(repeated["created"], false);
    assert_eq!(
        repeated["job"]["id"], created["job"]["id"],
        "the job that has the key"
    );

    // The CLI sees the same key taken by the same job, in the same words of JSON.
    let (code, output) = run(
        &mut command(
            &profile.dir,
            &[
                "--database",
                &seeded.database,
                "enqueue",
                "post",
                "--key",
                "plan-1",
                "--json",
                "from a planner",
            ],
        ),
        EXIT,
    );
    assert_eq!(code, 0, "{output}");
    let cli: Value = serde_json::from_str(output.trim()).expect("the CLI's JSON");
    assert_eq!(cli["created"], false);
    assert_eq!(cli["job"]["id"], created["job"]["id"]);

    // Too long for the site (280 characters without a site): the CLI's reason, one line.
    let long = json!({"kind": "post", "text": "x".repeat(281)}).to_string();
    let too_long = http(port, "POST", "/api/jobs", &auth, &long).await;
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    let reason = too_long.json()["error"]
        .as_str()
        .expect("an error line")
        .to_string();
    assert!(!reason.contains('\n'));
    let (code, _, stderr) = run_with_stdin(
        command(
            &profile.dir,
            &["--database", &seeded.database, "enqueue", "bulk"],
        ),
        &format!("{long}\n"),
        EXIT,
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("line 1: rejected: {reason}")),
        "the CLI refuses it with the same reason {reason:?}: {stderr}"
    );

    for (body, why) in [
        ("not json", "not a job"),
        (r#"{"kind":"poll","text":"x"}"#, "poll"),
        (r#"{"kind":"post","text":"x","at":"someday"}"#, "--at"),
        (r#"{"kind":"post","text":"x","acount":"a"}"#, "acount"),
    ] {
        let answer = http(port, "POST", "/api/jobs", &auth, body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        assert!(
            answer.json()["error"]
                .as_str()
                .unwrap_or_default()
                .contains(why),
            "{body}: {}",
            answer.body
        );
    }
    let huge = json!({"kind": "post", "text": "x".repeat(100 * 1024)}).to_string();
    assert_eq!(
        http(port, "POST", "/api/jobs", &auth, &huge).await.status,
        413
    );
    // Nothing refused was stored: the seeded two and the planner's one.
    let jobs = seeded
        .store
        .job_list(&executor::jobs::JobQuery::default())
        .await
        .expect("list");
    assert_eq!(jobs.len(), 3, "{jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_the_dashboard_beside_its_metrics_with_ui() {
    let profile = Profile::new("ui-daemon");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = launch_daemon(&profile, &["--metrics-addr", &addr, "--ui"]);
    let line = daemon
        .lines
        .wait_for(START, |l| l.contains("Dashboard on http://"));
    let url = line
        .split("Dashboard on ")
        .nth(1)
        .expect("the URL")
        .trim()
        .to_string();
    assert_eq!(port_of(&url), port, "on the metrics address");
    let token = token_of(&url);
    let stored = std::fs::read_to_string(profile.path("ui-token")).expect("the token file");
    assert_eq!(stored.trim(), token);
    let lines = daemon.lines.clone();
    tokio::task::spawn_blocking(move || lines.wait_for_nth(1, START, is_tick_line))
        .await
        .expect("join");

    let (status, _) = http_get(port, "/metrics").await;
    assert_eq!(status, 200, "the scraper needs no token, as before");
    assert_eq!(http(port, "GET", "/", &[], "").await.status, 401);
    let bearer = format!("Bearer {token}");
    let overview = http(
        port,
        "GET",
        "/api/overview",
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let executors = overview.json()["executors"].clone();
    assert_eq!(executors.as_array().map(Vec::len), Some(1), "{executors}");
    let id = executors[0]["executor"].as_str().unwrap_or_default();
    assert!(
        id.ends_with(&*profile.dir.to_string_lossy()),
        "this daemon: {executors}"
    );
    assert_ne!(executors[0]["health"], "dead", "{executors}");
    assert!(
        executors[0]["tick_line"]
            .as_str()
            .unwrap_or_default()
            .starts_with("tick "),
        "its last tick: {executors}"
    );

    std::fs::write(profile.path("STOP_EXECUTOR"), "").expect("touch STOP");
    let status = tokio::task::spawn_blocking(move || daemon.wait_exit(EXIT))
        .await
        .expect("join");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn the_dashboard_stays_on_loopback_unless_allowed_and_its_token_file_is_private() {
    let profile = Profile::new("ui-settings");
    let (code, output) = run(
        &mut command(&profile.dir, &["--ui-addr", "0.0.0.0:9465", "ui"]),
        EXIT,
    );
    assert_eq!(code, 2, "{output}");
    assert_eq!(output.lines().count(), 1, "one line: {output}");
    assert!(
        output.contains("--ui-addr") && output.contains("--allow-remote-ui"),
        "{output}"
    );

    // The token is made 0600 and kept; a link in its place is refused, not followed.
    let token = executor::ui::Token::load_or_create(&profile.dir).expect("a token");
    let again = executor::ui::Token::load_or_create(&profile.dir).expect("the same token");
    assert_eq!(token.reveal(), again.reveal());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(profile.path("ui-token"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let linked = Profile::new("ui-settings-link");
    std::fs::write(linked.path("elsewhere"), token.reveal()).expect("a file");
    std::os::unix::fs::symlink(linked.path("elsewhere"), linked.path("ui-token")).expect("link");
    let err = executor::ui::Token::load_or_create(&linked.dir).expect_err("a link is refused");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_metrics_address_the_daemon_serves_the_dashboard_on_ui_addr() {
    let profile = Profile::new("ui-daemon-alone");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // Its ticks fail (no browser on that port): the dashboard still comes up and says so.
    // `--ui` is a switch, which the daemon's `--flag value` pairs cannot carry.
    let mut command = failing_daemon_command(&profile, free_port(), &["--ui-addr", &addr]);
    command.env("EXECUTOR_UI", "true");
    let daemon = spawn(command);
    let line = daemon
        .lines
        .wait_for(START, |l| l.contains("Dashboard on http://"));
    let url = line
        .split("Dashboard on ")
        .nth(1)
        .expect("the URL")
        .trim()
        .to_string();
    assert_eq!(port_of(&url), port, "on --ui-addr");
    assert_eq!(
        http(port, "GET", "/api/overview", &[], "").await.status,
        401
    );
    let bearer = format!("Bearer {}", token_of(&url));
    eventually("the failed tick shows as the last error", START, || async {
        let overview = http(
            port,
            "GET",
            "/api/overview",
            &[("Authorization", &bearer)],
            "",
        )
        .await;
        overview.status == 200 && !overview.json()["executors"][0]["last_error"].is_null()
    })
    .await;
}
