//! `executor fleet [--json]`: every executor registered in the store, with its account, host,
//! health (active / standby / dead / stopped), last tick, pages, backoff and last error.
//!
//! "dead" is derived, not stored: an executor that says it runs but has not been heard from
//! within its account lease's time (plus a tick of slack) has crashed, been killed, or lost its
//! machine — its account is (or soon will be) taken over by a standby.

use super::CliError;
use crate::fleet::FleetMember;
use crate::settings::Settings;
use clap::Args;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// One JSON object per executor instead of a table
    #[arg(long)]
    pub json: bool,
}

/// How long an executor may be silent before the view calls it dead: its lease's time to
/// live (a live one renews it every tick) plus the longest a tick may run.
pub(crate) fn silence(settings: &Settings) -> Duration {
    crate::holding::lease_ttl(settings.tick_interval) + settings.tick_timeout
}

pub(crate) fn row(member: &FleetMember, now: SystemTime, silence: Duration) -> Value {
    let tick = &member.last_tick;
    json!({
        "executor": member.id,
        "account": member.account,
        "host": member.host,
        "pid": member.pid,
        "version": member.version,
        "health": member.health(now, silence).as_str(),
        "state": member.state.as_str(),
        "holds_account": member.lease.as_ref().is_some_and(|(holder, until)| *holder == member.id && *until > now),
        "started_at": crate::clock::format_ts(member.started_at),
        "heartbeat_at": crate::clock::format_ts(member.heartbeat_at),
        "last_tick_at": member.last_tick_at.map(crate::clock::format_ts),
        "pages": tick.get("pages").cloned().unwrap_or(Value::Null),
        "backoff_seconds": tick.get("backoff_seconds").cloned().unwrap_or(Value::Null),
        "last_error": tick.get("last_error").cloned().unwrap_or(Value::Null),
        "standby_for": tick.get("standby_for").cloned().unwrap_or(Value::Null),
    })
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => crate::tick::one_line(text),
        other => other.to_string(),
    }
}

pub async fn run(settings: &Settings, args: &FleetArgs) -> Result<(), CliError> {
    let store = super::open_store(settings).await?;
    let members = store.fleet().await?;
    let now = SystemTime::now();
    let silence = silence(settings);
    let rows: Vec<Value> = members.iter().map(|m| row(m, now, silence)).collect();
    if args.json {
        for row in &rows {
            crate::outln!("{row}");
        }
        return Ok(());
    }
    if rows.is_empty() {
        crate::outln!("(no executor has registered in this store yet)");
        return Ok(());
    }
    let header = [
        "EXECUTOR",
        "ACCOUNT",
        "HOST",
        "HEALTH",
        "LAST TICK",
        "PAGES",
        "BACKOFF",
        "LAST ERROR",
    ];
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let account = match r["account"].as_str() {
                Some("") | None => "(default)".to_string(),
                Some(name) => name.to_string(),
            };
            let health = match (r["health"].as_str(), r["standby_for"].as_str()) {
                (Some("standby"), Some(holder)) => format!("standby ({holder})"),
                (health, _) => health.unwrap_or("-").to_string(),
            };
            [
                cell(&r["executor"]),
                account,
                cell(&r["host"]),
                health,
                cell(&r["last_tick_at"]),
                cell(&r["pages"]),
                match &r["backoff_seconds"] {
                    Value::Null => "-".into(),
                    seconds => format!("{seconds}s"),
                },
                cell(&r["last_error"]),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &table {
        for (width, value) in widths.iter_mut().zip(line) {
            *width = (*width).max(value.chars().count());
        }
    }
    let print = |cells: &[String]| {
        let mut line = String::new();
        for (i, (value, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(value);
            } else {
                line.push_str(&format!("{value:<width$}  "));
            }
        }
        crate::outln!("{}", line.trim_end());
    };
    print(&header.map(str::to_string));
    for line in &table {
        print(line);
    }
    Ok(())
}
