//! `executor jobs`: list (with filters), `show ID`, `retry ID`, `cancel ID`.

use super::CliError;
use crate::clock::format_ts;
use crate::jobs::{Job, JobQuery, JobState, Kind, STATE_NAMES};
use crate::settings::Settings;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::time::SystemTime;

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Only jobs in this state (repeatable): queued, claimed, attempting, succeeded, failed, uncertain, dead, cancelled
    #[arg(long, value_name = "STATE")]
    pub state: Vec<String>,
    /// Only `post` or `reply` jobs
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// At most this many (the newest)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u32,
    /// Print JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Everything about one job
    Show {
        /// The job's id (the first column of `executor jobs`)
        id: i64,
    },
    /// Put a failed, dead or cancelled job back in the queue (uncertain jobs are verified on the site, never retried by hand)
    Retry {
        /// The job's id (the first column of `executor jobs`)
        id: i64,
    },
    /// Cancel a job that is not in flight
    Cancel {
        /// The job's id (the first column of `executor jobs`)
        id: i64,
    },
}

/// A job as JSON (the `--json` form of every command that shows jobs).
pub fn job_json(job: &Job) -> Value {
    let (post_id, url, error) = match &job.state {
        JobState::Succeeded { post_id, url } => (post_id.clone(), url.clone(), None),
        JobState::Failed { error, .. }
        | JobState::Dead { error }
        | JobState::Uncertain { error, .. } => (None, None, Some(error.clone())),
        _ => (None, None, None),
    };
    json!({
        "id": job.id,
        "kind": job.kind.as_str(),
        "state": job.state.name(),
        "text": job.text,
        "reply_to": job.reply_to,
        "account": job.account,
        "idempotency_key": job.idempotency_key,
        "not_before": format_ts(job.not_before),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "lease": job.state.lease().map(|l| json!({ "owner": l.owner, "expires_at": format_ts(l.expires_at) })),
        "post_id": post_id,
        "url": url,
        "last_error": error,
        "created_at": format_ts(job.created_at),
        "updated_at": format_ts(job.updated_at),
    })
}

fn one_line(text: &str, max: usize) -> String {
    let flat = crate::tick::one_line(text);
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max - 1).collect::<String>())
    }
}

fn print_table(jobs: &[Job]) {
    crate::outln!(
        "{:>6}  {:<5}  {:<10}  {:>8}  {:<24}  {:<10}  TEXT",
        "ID",
        "KIND",
        "STATE",
        "ATTEMPTS",
        "DUE",
        "ACCOUNT"
    );
    for job in jobs {
        crate::outln!(
            "{:>6}  {:<5}  {:<10}  {:>8}  {:<24}  {:<10}  {}",
            job.id,
            job.kind.as_str(),
            job.state.name(),
            format!("{}/{}", job.attempts, job.max_attempts),
            format_ts(job.not_before),
            one_line(
                if job.account.is_empty() {
                    "-"
                } else {
                    &job.account
                },
                10
            ),
            one_line(&job.text, 50),
        );
    }
    if jobs.is_empty() {
        crate::outln!("(no jobs)");
    }
}

/// The order `jobs show` prints a job's fields in: what it is first, then what happened.
const SHOW_ORDER: &[&str] = &[
    "id",
    "kind",
    "state",
    "account",
    "text",
    "reply_to",
    "not_before",
    "attempts",
    "max_attempts",
    "lease",
    "post_id",
    "url",
    "last_error",
    "idempotency_key",
    "created_at",
    "updated_at",
];

/// A job's fields in the order people read them ([`SHOW_ORDER`]; any other after them), for
/// `jobs show` and the dashboard's job page.
pub(crate) fn job_fields(job: &Job) -> Vec<(String, Value)> {
    let Value::Object(mut object) = job_json(job) else {
        return Vec::new();
    };
    let mut fields: Vec<(String, Value)> = SHOW_ORDER
        .iter()
        .filter_map(|key| object.remove(*key).map(|value| (key.to_string(), value)))
        .collect();
    fields.extend(object);
    fields
}

fn print_job(job: &Job) {
    for (key, value) in job_fields(job) {
        let shown = match &value {
            // The empty account is the default one; nothing else is shown as a blank.
            Value::String(s) if s.is_empty() && key == "account" => "(default)".into(),
            Value::String(s) if s.is_empty() => "-".into(),
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        crate::outln!("{key:>16}: {shown}");
    }
}

/// The reasons a job waits, one line each, under its fields.
fn print_waiting(causes: &[crate::waiting::Cause]) {
    for (i, cause) in causes.iter().enumerate() {
        let label = if i == 0 { "waiting:" } else { "" };
        crate::outln!("{label:>17} {}", cause.message);
    }
}

pub async fn run(settings: &Settings, args: &JobsArgs) -> Result<(), CliError> {
    for state in &args.state {
        if !STATE_NAMES.contains(&state.as_str()) {
            return Err(CliError::usage(format!(
                "--state {state:?} is not one of {}",
                STATE_NAMES.join(", ")
            )));
        }
    }
    let kind = match args.kind.as_deref().map(|k| Kind::parse(k).ok_or(k)) {
        Some(Err(k)) => {
            return Err(CliError::usage(format!(
                "--kind {k:?} is not `post` or `reply`"
            )));
        }
        Some(Ok(kind)) => Some(kind),
        None => None,
    };
    let store = super::open_store(settings).await?;
    let now = SystemTime::now();
    let result = match &args.action {
        None => {
            let query = JobQuery {
                states: args.state.clone(),
                kind,
                limit: Some(args.limit),
                ..Default::default()
            };
            let jobs = store.job_list(&query).await?;
            if args.json {
                crate::outln!("{}", Value::Array(jobs.iter().map(job_json).collect()));
            } else {
                print_table(&jobs);
            }
            return Ok(());
        }
        Some(Action::Show { id }) => match store.job_get(*id).await {
            Ok(Some(job)) => Ok(job),
            Ok(None) => Err(crate::store::StoreError::NotFound { job_id: *id }),
            Err(err) => Err(err),
        },
        Some(Action::Retry { id }) => store.job_retry(*id, now).await,
        Some(Action::Cancel { id }) => store.job_cancel(*id, now).await,
    };
    let job = result.map_err(|err| match err {
        // An id that does not exist, or a retry/cancel the job's state forbids: bad input.
        crate::store::StoreError::NotFound { .. } | crate::store::StoreError::Transition { .. } => {
            CliError::usage(err.to_string())
        }
        err => CliError::from(err),
    })?;
    // What holds the job back (`show` only: the answer of retry/cancel is the change).
    let waiting = match &args.action {
        Some(Action::Show { .. }) => {
            Some(crate::waiting::why_job(store.as_ref(), &job, now).await?)
        }
        _ => None,
    };
    if args.json {
        let mut value = job_json(&job);
        if let (Some(object), Some(waiting)) = (value.as_object_mut(), &waiting) {
            object.insert("waiting".into(), json!(waiting));
        }
        crate::outln!("{value}");
        return Ok(());
    }
    match &args.action {
        Some(Action::Retry { .. }) => crate::outln!("Job {} is queued again", job.id),
        Some(Action::Cancel { .. }) => crate::outln!("Job {} is cancelled", job.id),
        _ => {}
    }
    print_job(&job);
    if let Some(waiting) = waiting {
        print_waiting(&waiting);
    }
    Ok(())
}
