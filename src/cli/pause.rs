//! `executor pause` and `executor resume`: stop claiming in a lane, an account, or everything,
//! fleet-wide, until resumed (docs/jobs.md, "Pausing").
//!
//! The pause is a row in the store, so it holds for every executor sharing it, across restarts;
//! each executor's next claim reads it. Jobs already in flight settle (see [`crate::pauses`]).

use super::CliError;
use crate::events::Identity;
use crate::jobs::Kind;
use crate::pauses::{Inserted, Pause, Scope};
use crate::settings::Settings;
use clap::Args;
use serde_json::json;
use std::time::SystemTime;

/// What happens while paused, for `pause --help`.
const WHILE_PAUSED: &str = "While paused, no executor sharing this store claims a job there (from its next claim, within a tick). \
Jobs already in flight still settle: an attempt's outcome is recorded and an uncertain job is still looked up on the site. \
`executor status` lists the pause as the reason due jobs wait. Examples:\n  \
executor pause --kind post\n  \
executor pause --account alice --reason \"checking the account\"\n  \
executor resume --kind post";

/// What to pause; without `--kind` both lanes, without `--account` every account.
#[derive(Debug, Args)]
#[command(after_help = WHILE_PAUSED)]
pub struct PauseArgs {
    /// Only this lane: `post` or `reply` (default: both)
    #[arg(long, value_name = "KIND", value_parser = ["post", "reply"])]
    pub kind: Option<String>,
    /// Only this account ("" is the default account; default: every account)
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Why, for the other operators (shown by status and in the event)
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        hide_default_value = true
    )]
    pub reason: String,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// What to resume: exactly the scope a pause was given (`--all`: every pause).
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Only this lane's pause: `post` or `reply` (default: the pause of both lanes)
    #[arg(long, value_name = "KIND", value_parser = ["post", "reply"])]
    pub kind: Option<String>,
    /// Only this account's pause ("" is the default account; default: the pause of every account)
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Lift every pause there is
    #[arg(long, conflicts_with_all = ["kind", "account"])]
    pub all: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

fn scope(kind: Option<&str>, account: Option<&String>) -> Result<Scope, CliError> {
    // clap has checked the kind against its two values.
    let kind = kind.and_then(Kind::parse);
    Scope::new(kind, account.cloned()).map_err(|err| CliError::usage(err.to_string()))
}

/// Who acts, as the pause records it: `user@host`.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into());
    format!("{user}@{}", crate::fleet::host_name())
}

/// The events of a command are this command's, under the profile's executor id.
fn identity(settings: &Settings) -> Identity {
    Identity {
        run_id: format!("cli-{}", uuid::Uuid::new_v4()),
        executor_id: settings.executor_id.clone(),
    }
}

fn too_long(reason: &str) -> Result<(), CliError> {
    if reason.chars().count() > 500 {
        return Err(CliError::usage("--reason must be at most 500 characters"));
    }
    Ok(())
}

pub async fn pause(settings: &Settings, args: &PauseArgs) -> Result<(), CliError> {
    let scope = scope(args.kind.as_deref(), args.account.as_ref())?;
    too_long(&args.reason)?;
    let store = super::open_store(settings).await?;
    let pause = Pause {
        scope,
        reason: crate::tick::one_line(&args.reason),
        by: operator(),
        since: SystemTime::now(),
    };
    let inserted = store.pause_insert(&pause, &identity(settings)).await?;
    let (new, holding) = match &inserted {
        Inserted::New => (true, &pause),
        Inserted::Already(existing) => (false, existing),
    };
    if args.json {
        crate::outln!(
            "{}",
            json!({ "paused": true, "new": new, "pause": holding.to_json() })
        );
        return Ok(());
    }
    if new {
        crate::outln!(
            "Paused: {}. Every executor on this store claims nothing there from its next tick; jobs in flight still settle. Resume with `{}`.",
            holding.scope.describe(),
            holding.scope.resume_command()
        );
    } else {
        crate::outln!(
            "Already paused: {}. Resume with `{}`.",
            holding.describe(),
            holding.scope.resume_command()
        );
    }
    Ok(())
}

pub async fn resume(settings: &Settings, args: &ResumeArgs) -> Result<(), CliError> {
    let store = super::open_store(settings).await?;
    let now = SystemTime::now();
    if args.all {
        let lifted = store
            .pause_delete_all(&operator(), &identity(settings), now)
            .await?;
        if args.json {
            let lifted: Vec<_> = lifted.iter().map(Pause::to_json).collect();
            crate::outln!("{}", json!({ "resumed": lifted }));
        } else if lifted.is_empty() {
            crate::outln!("Nothing was paused.");
        } else {
            for pause in &lifted {
                crate::outln!("Resumed: {}", pause.scope.describe());
            }
        }
        return Ok(());
    }
    let scope = scope(args.kind.as_deref(), args.account.as_ref())?;
    let lifted = store
        .pause_delete(&scope, &operator(), &identity(settings), now)
        .await?;
    let left = store.pause_list().await?;
    let still = crate::pauses::still_covering(&left, &scope);
    if args.json {
        let still: Vec<_> = still.iter().map(|p| p.to_json()).collect();
        crate::outln!(
            "{}",
            json!({ "resumed": lifted, "scope": scope.describe(), "still_paused_by": still })
        );
        return Ok(());
    }
    if lifted {
        crate::outln!(
            "Resumed: {}. Executors claim there again from their next tick.",
            scope.describe()
        );
    } else {
        crate::outln!(
            "{} was not paused on its own (nothing to resume).",
            capitalised(&scope.describe())
        );
    }
    for pause in still {
        crate::outln!(
            "Still paused: {}; resume with `{}`.",
            pause.describe(),
            pause.scope.resume_command()
        );
    }
    Ok(())
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
