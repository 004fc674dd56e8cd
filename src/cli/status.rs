//! `executor status`: is a daemon running (lock verified against the live process), its last
//! tick line, queue depths, backoff and last error.

use super::CliError;
use crate::events;
use crate::jobs::Kind;
use crate::lock::LockOwner;
use crate::settings::{DatabaseUrl, Settings};
use crate::store::{EventQuery, Store, StoreError};
use clap::Args;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// The last tick line in the log (current file first, then the newest rotated one).
fn last_tick_line(settings: &Settings) -> Option<String> {
    let current = settings.log_path();
    let rotated = std::path::PathBuf::from(format!("{}.1", current.display()));
    [current, rotated].iter().find_map(|path| {
        // The end of the file is enough (a tick line every interval), and a link or a FIFO in
        // its place is not read (see `files`).
        let tail = crate::files::read_tail(path, 1024 * 1024, crate::files::Links::Refuse).ok()?;
        let text = String::from_utf8_lossy(&tail);
        text.lines()
            .rev()
            .find(|line| line.contains(" pages=") && line.contains("ts="))
            .map(str::to_string)
    })
}

/// Per lane: jobs due now, counts by state, and an open 429 breaker.
async fn queue_depths(store: &dyn Store, account: &str) -> Result<Value, StoreError> {
    let now = std::time::SystemTime::now();
    let counts = store.job_count_by_state().await?;
    let mut out = serde_json::Map::new();
    for kind in Kind::ALL {
        let states: serde_json::Map<String, Value> = counts
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, state, n)| (state.clone(), json!(n)))
            .collect();
        let breaker = store
            .lane_breaker(account, kind)
            .await?
            .filter(|until| *until > now)
            .map(crate::clock::format_ts);
        out.insert(
            kind.as_str().into(),
            json!({ "due": store.job_count_due(kind, None, now).await?, "states": states, "breaker_until": breaker }),
        );
    }
    Ok(Value::Object(out))
}

/// A marker file's first few KiB (a marker is short; anything longer is not ours to print).
fn read_marker(path: &std::path::Path) -> Option<String> {
    let (head, _) = crate::files::read_head(path, 4096, crate::files::Links::Refuse).ok()?;
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// What holds a lane's due jobs of this profile's account back, and when the next one goes.
fn print_waiting(lane: Option<&crate::waiting::Waiting>) {
    let Some(lane) = lane.filter(|lane| lane.due > 0) else {
        return;
    };
    if lane.reasons.is_empty() {
        crate::outln!("{:<12} {}", "", lane.headline());
        return;
    }
    crate::outln!("{:<12} {}:", "", lane.headline());
    for cause in &lane.reasons {
        crate::outln!("{:<12}   - {}", "", cause.message);
    }
}

pub async fn run(settings: &Settings, args: &StatusArgs) -> Result<(), CliError> {
    let lock_path = settings.lock_path();
    let recorded = LockOwner::read(&lock_path);
    let running = recorded.filter(LockOwner::is_alive);
    let stop_present = crate::stop::stop_file_present(&settings.stop_path()).is_some();
    let auth_required = settings.profile.join("AUTH_REQUIRED").exists();
    // The marker holds the time it was written and the reason, on its second line.
    let account_mismatch = read_marker(&settings.profile.join("ACCOUNT_MISMATCH"))
        .map(|text| crate::tick::one_line(text.lines().nth(1).unwrap_or("")));

    // Read the store only if it exists: status must not create a database as a side effect.
    let store_exists = match &settings.database {
        DatabaseUrl::Sqlite(path) => path.exists(),
        DatabaseUrl::Postgres(_) => true,
    };
    let mut last_tick: Option<Value> = None;
    let mut queue = json!({});
    let mut waiting: Vec<crate::waiting::Waiting> = Vec::new();
    let mut pauses: Vec<crate::pauses::Pause> = Vec::new();
    let mut store_error: Option<String> = None;
    if store_exists {
        match crate::store::open(&settings.database).await {
            Ok(store) => {
                let query = EventQuery {
                    types: vec![events::TICK.to_string()],
                    limit: Some(1),
                    ..Default::default()
                };
                match store.event_list(&query).await {
                    Ok(rows) => last_tick = rows.last().map(|e| e.event_data.clone()),
                    Err(err) => store_error = Some(err.to_string()),
                }
                match queue_depths(store.as_ref(), &settings.account).await {
                    Ok(depths) => queue = depths,
                    Err(err) => store_error = Some(err.to_string()),
                }
                let now = std::time::SystemTime::now();
                let why = crate::waiting::read(store.as_ref(), &settings.account, now).await;
                match why {
                    Ok(facts) => {
                        waiting = crate::waiting::explain(&facts);
                        pauses = facts.pauses;
                    }
                    Err(err) => store_error = Some(err.to_string()),
                }
            }
            Err(err) => store_error = Some(err.to_string()),
        }
    }
    let tick_line = last_tick_line(settings);
    let field = |key: &str| {
        last_tick
            .as_ref()
            .map(|t| t[key].clone())
            .unwrap_or(Value::Null)
    };

    if args.json {
        let out = json!({
            "running": running.is_some(),
            "pid": running.map(|o| o.pid),
            "stale_lock": recorded.is_some() && running.is_none(),
            "stop_switch": stop_present,
            "auth_required": auth_required,
            "account": settings.account,
            "account_mismatch": account_mismatch,
            "profile": settings.profile.display().to_string(),
            "store": settings.database.to_string(),
            "last_tick_line": tick_line,
            "last_tick": last_tick,
            "queue": queue,
            "waiting": waiting,
            "pauses": pauses.iter().map(crate::pauses::Pause::to_json).collect::<Vec<_>>(),
            "backoff_seconds": field("backoff_seconds"),
            "last_error": field("last_error"),
            "store_error": store_error,
        });
        crate::outln!("{out:#}");
        return Ok(());
    }
    match (running, recorded) {
        (Some(owner), _) => crate::outln!(
            "daemon:      running (pid {}, lock {})",
            owner.pid,
            lock_path.display()
        ),
        (None, Some(owner)) => crate::outln!(
            "daemon:      not running (stale lock from pid {} - the next start takes it over)",
            owner.pid
        ),
        (None, None) => crate::outln!("daemon:      not running"),
    }
    crate::outln!("profile:     {}", settings.profile.display());
    crate::outln!("store:       {}", settings.database);
    if stop_present {
        crate::outln!(
            "STOP switch: present ({}) - a daemon will not start",
            settings.stop_path().display()
        );
    }
    if auth_required {
        crate::outln!("AUTH:        login required - run `executor chrome --headed` and log in");
    }
    if let Some(problem) = &account_mismatch {
        crate::outln!("ACCOUNT:     mismatch - {problem}; nothing is claimed until the browser is logged in as the right account");
    }
    crate::outln!(
        "last tick:   {}",
        tick_line.as_deref().unwrap_or("(none yet)")
    );
    for kind in Kind::ALL {
        let lane = &queue[kind.as_str()];
        if lane.is_null() {
            continue;
        }
        let states: Vec<String> = lane["states"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        let breaker = lane["breaker_until"]
            .as_str()
            .map(|u| format!("  PAUSED by the site's rate limit until {u}"))
            .unwrap_or_default();
        crate::outln!(
            "{:<12} due={} {}{breaker}",
            format!("{} lane:", kind.as_str()),
            lane["due"],
            states.join(" ")
        );
        print_waiting(waiting.iter().find(|w| w.kind == kind));
        if let Some(n) = lane["states"]["uncertain"].as_u64().filter(|n| *n > 0) {
            crate::outln!(
                "{:<12} {n} job(s) uncertain: published or not is being settled on the site; one that cannot be looked up far enough stays so (executor jobs --state uncertain)",
                ""
            );
        }
    }
    for pause in &pauses {
        crate::outln!(
            "paused:      {}; resume: {}",
            pause.describe(),
            pause.scope.resume_command()
        );
    }
    if let Some(tick) = &last_tick {
        crate::outln!("backoff:     {}s", tick["backoff_seconds"]);
        match tick["last_error"].as_str() {
            Some(error) => crate::outln!("last error:  {error}"),
            None => crate::outln!("last error:  none"),
        }
    }
    if let Some(error) = store_error {
        crate::outln!("store error: {error}");
    }
    Ok(())
}
