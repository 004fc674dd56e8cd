//! `executor events [--type T] [--since 60m]`: recent `system_events` rows.

use super::CliError;
use crate::settings::Settings;
use crate::store::EventQuery;
use clap::Args;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this event type (repeatable), e.g. EXECUTOR_DAEMON_TICK, POST_SUCCESS
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// The window: a duration back from now (60m, 24h) or an RFC 3339 UTC time
    #[arg(long, default_value = "60m", value_name = "WINDOW")]
    pub since: String,
    /// At most this many (the newest)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: u32,
    /// One JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `--since`: a duration back from now, or an RFC 3339 UTC time.
pub fn parse_since(text: &str) -> Result<std::time::SystemTime, String> {
    let now = std::time::SystemTime::now();
    if let Ok(back) = crate::settings::parse_duration(text) {
        return Ok(now.checked_sub(back).unwrap_or(std::time::UNIX_EPOCH));
    }
    crate::clock::parse_ts(text).ok_or_else(|| {
        format!("--since {text:?} is neither a duration (60m, 24h) nor an RFC 3339 UTC time")
    })
}

pub async fn run(settings: &Settings, args: &EventsArgs) -> Result<(), CliError> {
    let since = parse_since(&args.since).map_err(CliError::usage)?;
    let store = super::open_store(settings).await?;
    let query = EventQuery {
        types: args.types.clone(),
        since: Some(since),
        limit: Some(args.limit),
        ..Default::default()
    };
    let events = store.event_list(&query).await?;
    for event in &events {
        if args.json {
            crate::outln!("{}", serde_json::to_string(event).unwrap_or_default());
        } else {
            crate::outln!(
                "{}  {:<8} {:<28} {}",
                crate::clock::format_ts(event.created_at),
                event.severity.as_str(),
                event.event_type,
                crate::tick::one_line(&event.message)
            );
        }
    }
    if events.is_empty() && !args.json {
        crate::outln!("(no events in the window)");
    }
    Ok(())
}
