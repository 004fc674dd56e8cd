//! `executor status`: is a daemon running (lock verified against the live process), its last
//! tick line, queue depths, backoff and last error.

use crate::events;
use crate::lock::LockOwner;
use crate::settings::{DatabaseUrl, Settings};
use crate::store::EventQuery;
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
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .rev()
            .find(|line| line.contains(" pages=") && line.contains("ts="))
            .map(str::to_string)
    })
}

pub async fn run(settings: &Settings, args: &StatusArgs) -> i32 {
    let lock_path = settings.lock_path();
    let recorded = LockOwner::read(&lock_path);
    let running = recorded.filter(LockOwner::is_alive);
    let stop_present = crate::stop::stop_file_present(&settings.stop_path()).is_some();
    let auth_required = settings.profile.join("AUTH_REQUIRED").exists();

    // Read the store only if it exists: status must not create a database as a side effect.
    let store_exists = match &settings.database {
        DatabaseUrl::Sqlite(path) => path.exists(),
        DatabaseUrl::Postgres(_) => true,
    };
    let mut last_tick: Option<Value> = None;
    let mut store_error: Option<String> = None;
    if store_exists {
        match crate::store::open(&settings.database).await {
            Ok(store) => {
                let query = EventQuery {
                    types: vec![events::TICK.to_string()],
                    since: None,
                    limit: Some(1),
                };
                match store.event_list(&query).await {
                    Ok(rows) => last_tick = rows.last().map(|e| e.event_data.clone()),
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
            "profile": settings.profile.display().to_string(),
            "store": settings.database.to_string(),
            "last_tick_line": tick_line,
            "last_tick": last_tick,
            "queue": { "posting_ready": field("posting_ready"), "reply_ready": field("reply_ready") },
            "backoff_seconds": field("backoff_seconds"),
            "last_error": field("last_error"),
            "store_error": store_error,
        });
        println!("{out:#}");
        return super::EXIT_OK;
    }
    match (running, recorded) {
        (Some(owner), _) => println!(
            "daemon:      running (pid {}, lock {})",
            owner.pid,
            lock_path.display()
        ),
        (None, Some(owner)) => println!(
            "daemon:      not running (stale lock from pid {} - the next start takes it over)",
            owner.pid
        ),
        (None, None) => println!("daemon:      not running"),
    }
    println!("profile:     {}", settings.profile.display());
    println!("store:       {}", settings.database);
    if stop_present {
        println!(
            "STOP switch: present ({}) - a daemon will not start",
            settings.stop_path().display()
        );
    }
    if auth_required {
        println!("AUTH:        login required - run `executor chrome --headed` and log in");
    }
    println!(
        "last tick:   {}",
        tick_line.as_deref().unwrap_or("(none yet)")
    );
    if let Some(tick) = &last_tick {
        println!(
            "queue:       posting_ready={} reply_ready={}",
            tick["posting_ready"], tick["reply_ready"]
        );
        println!("backoff:     {}s", tick["backoff_seconds"]);
        match tick["last_error"].as_str() {
            Some(error) => println!("last error:  {error}"),
            None => println!("last error:  none"),
        }
    }
    if let Some(error) = store_error {
        println!("store error: {error}");
    }
    super::EXIT_OK
}
