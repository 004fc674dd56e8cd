//! `executor pause` and `executor resume`: stop claiming in a lane, an account, or everything,
//! fleet-wide, until resumed (docs/jobs.md, "Pausing").
//!
//! The pause is a row in the store, so it holds for every executor sharing it, across restarts;
//! each executor's next claim reads it. Jobs already in flight settle (see [`crate::pauses`]).
//! The dashboard pauses and resumes through the same [`request`], [`apply`] and [`lift`], so a
//! pause made there is stored, checked and announced exactly as one made here.

use super::CliError;
use crate::events::Identity;
use crate::jobs::Kind;
use crate::pauses::{Inserted, Pause, Scope};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
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
pub(crate) fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into());
    format!("{user}@{}", crate::fleet::host_name())
}

/// The events of an operator's command are that command's (`run` names it: `cli`, `ui`),
/// under the profile's executor id.
pub(crate) fn identity(settings: &Settings, run: &str) -> Identity {
    Identity {
        run_id: format!("{run}-{}", uuid::Uuid::new_v4()),
        executor_id: settings.executor_id.clone(),
    }
}

/// The most characters a pause's reason may have.
const REASON_CHARS: usize = 500;

/// The pause an operator asks for, checked: the reason's length (the scope is checked when
/// it is made). The reason is kept on one line. `Err`: the line that says what is wrong.
pub(crate) fn request(
    scope: Scope,
    reason: &str,
    by: String,
    now: SystemTime,
) -> Result<Pause, String> {
    if reason.chars().count() > REASON_CHARS {
        return Err(format!(
            "--reason must be at most {REASON_CHARS} characters"
        ));
    }
    Ok(Pause {
        scope,
        reason: crate::tick::one_line(reason),
        by,
        since: now,
    })
}

/// Stores `pause` for every executor sharing `store`, with its event: the pause that now
/// holds the scope, and whether it is this one (`false`: the scope was paused already, and
/// that pause is kept as it was). The CLI and the dashboard both pause through here.
pub(crate) async fn apply(
    store: &dyn Store,
    pause: Pause,
    identity: &Identity,
) -> Result<(bool, Pause), StoreError> {
    Ok(match store.pause_insert(&pause, identity).await? {
        Inserted::New => (true, pause),
        Inserted::Already(existing) => (false, existing),
    })
}

/// What lifting one scope's pause did.
#[derive(Debug)]
pub(crate) struct Lifted {
    /// Whether the scope had a pause of its own (now lifted).
    pub lifted: bool,
    /// The wider (or narrower) pauses that still hold part of the scope.
    pub still: Vec<Pause>,
}

/// Lifts exactly `scope`'s pause, with its event, and says which pauses still hold part of
/// it. The CLI and the dashboard both resume through here.
pub(crate) async fn lift(
    store: &dyn Store,
    scope: &Scope,
    by: &str,
    identity: &Identity,
    now: SystemTime,
) -> Result<Lifted, StoreError> {
    let lifted = store.pause_delete(scope, by, identity, now).await?;
    let left = store.pause_list().await?;
    let still = crate::pauses::still_covering(&left, scope)
        .into_iter()
        .cloned()
        .collect();
    Ok(Lifted { lifted, still })
}

pub async fn pause(settings: &Settings, args: &PauseArgs) -> Result<(), CliError> {
    let scope = scope(args.kind.as_deref(), args.account.as_ref())?;
    let pause =
        request(scope, &args.reason, operator(), SystemTime::now()).map_err(CliError::usage)?;
    let store = super::open_store(settings).await?;
    let (new, holding) = apply(store.as_ref(), pause, &identity(settings, "cli")).await?;
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
    let identity = identity(settings, "cli");
    if args.all {
        let lifted = store.pause_delete_all(&operator(), &identity, now).await?;
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
    let Lifted { lifted, still } =
        lift(store.as_ref(), &scope, &operator(), &identity, now).await?;
    if args.json {
        let still: Vec<_> = still.iter().map(Pause::to_json).collect();
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
