//! `executor enqueue post|reply|bulk`: add jobs (SPEC §1, §5). Everything is validated before
//! anything is stored: a bad job is one clear line (exit 2) and nothing is added.

use super::CliError;
use crate::jobs::{Kind, NewJob, DEFAULT_MAX_ATTEMPTS};
use crate::settings::Settings;
use crate::store::{BatchControl, BatchEnqueued, Enqueued, Store, StoreError};
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::io::BufRead;
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Queue a post: `executor enqueue post "Hello world"`
    Post {
        /// The text to publish, exactly as written
        text: String,
        #[command(flatten)]
        options: JobOptions,
    },
    /// Queue a reply: `executor enqueue reply --to https://x.com/a/status/123 "Thanks!"`
    Reply {
        /// The post to reply to: its URL (…/status/ID) or its id
        #[arg(long, value_name = "URL_OR_ID")]
        to: String,
        /// The text to publish, exactly as written
        text: String,
        #[command(flatten)]
        options: JobOptions,
    },
    /// Queue many jobs from JSON lines on stdin, all or nothing:
    /// {"kind":"post","text":"…","at":"…","key":"…","account":"…"} or {"kind":"reply","to":"…","text":"…"}
    Bulk,
}

#[derive(Debug, Args, Default)]
pub struct JobOptions {
    /// Not before this time: RFC 3339 UTC (2026-12-01T09:00:00Z) or a delay from now (90s, 10m, 2h)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Idempotency key: a second enqueue with the same key adds nothing and says so
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// The account to act as (rate limits are per account)
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// The longest text the configured site accepts, as it counts (its definition's `max_chars`
/// and `[text] count`; 280 characters when the site cannot be loaded).
pub fn text_limit(settings: &Settings) -> crate::jobs::TextLimit {
    crate::sites::SiteDefinition::load(&settings.site)
        .map(|def| def.text_limit())
        .unwrap_or(crate::jobs::TextLimit::chars(280))
}

/// `--at`: RFC 3339 UTC, or a delay from now. Returns the time and whether it was in the past.
pub fn parse_at(text: &str, now: SystemTime) -> Result<(SystemTime, bool), String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok((now, false));
    }
    if let Ok(delay) = crate::settings::parse_duration(text.trim_start_matches('+')) {
        return Ok((now + delay, false));
    }
    match crate::clock::parse_ts(text) {
        Some(at) if at < now => Ok((now, true)),
        Some(at) => Ok((at, false)),
        None => Err(format!(
            "--at {} is neither an RFC 3339 UTC time (2026-12-01T09:00:00Z) nor a delay (10m)",
            crate::quote::quoted(text)
        )),
    }
}

/// One line of `enqueue bulk`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkLine {
    kind: String,
    text: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

/// One line of `enqueue bulk` (a JSON object) checked as the CLI checks it: the same kinds,
/// times, keys, accounts and text limit. `POST /api/jobs` takes its body through here too, so
/// the two doors cannot accept different jobs. The error is one line.
pub(crate) fn check_line(
    settings: &Settings,
    limit: crate::jobs::TextLimit,
    line: &str,
    now: SystemTime,
) -> Result<Ready, String> {
    let raw = serde_json::from_str::<BulkLine>(line).map_err(|e| format!("not a job: {e}"))?;
    let kind = Kind::parse(&raw.kind)
        .ok_or_else(|| crate::jobs::JobError::UnknownKind(raw.kind.clone()).to_string())?;
    let options = JobOptions {
        at: raw.at,
        key: raw.key,
        account: raw.account,
        json: false,
    };
    build_with_limit(settings, limit, kind, raw.text, raw.to, &options, now)
}

/// A validated job and what to tell the operator about its time.
pub(crate) struct Ready {
    pub job: NewJob,
    pub was_past: bool,
}

fn build(
    settings: &Settings,
    kind: Kind,
    text: String,
    to: Option<String>,
    options: &JobOptions,
    now: SystemTime,
) -> Result<Ready, String> {
    build_with_limit(settings, text_limit(settings), kind, text, to, options, now)
}

/// [`build`] with the site's text limit already known (a batch reads it once).
fn build_with_limit(
    settings: &Settings,
    limit: crate::jobs::TextLimit,
    kind: Kind,
    text: String,
    to: Option<String>,
    options: &JobOptions,
    now: SystemTime,
) -> Result<Ready, String> {
    let (not_before, was_past) = match &options.at {
        Some(at) => parse_at(at, now)?,
        None => (now, false),
    };
    let job = NewJob {
        kind,
        text,
        reply_to: to,
        // The job's own account, else the one this profile's executor serves.
        account: options
            .account
            .clone()
            .unwrap_or_else(|| settings.account.clone()),
        idempotency_key: options.key.clone(),
        not_before,
        max_attempts: DEFAULT_MAX_ATTEMPTS,
    }
    .validate(limit)
    .map_err(|e| e.to_string())?;
    Ok(Ready { job, was_past })
}

/// What an enqueue did, as the line a person reads and as `--json` (which `POST /api/jobs`
/// answers too).
pub(crate) fn describe(result: &Enqueued) -> (String, serde_json::Value) {
    match result {
        Enqueued::Created(job) => (
            format!(
                "Queued job {} ({}, due {})",
                job.id,
                job.kind.as_str(),
                due_text(job.not_before)
            ),
            serde_json::json!({ "created": true, "job": super::jobs::job_json(job) }),
        ),
        Enqueued::Exists(job) => (
            format!(
                "Job {} already has key {} ({}); nothing was added",
                job.id,
                crate::quote::quoted(job.idempotency_key.as_deref().unwrap_or_default()),
                job.state.name()
            ),
            serde_json::json!({ "created": false, "job": super::jobs::job_json(job) }),
        ),
    }
}

fn due_text(at: SystemTime) -> String {
    if at <= SystemTime::now() {
        "now".into()
    } else {
        crate::clock::format_ts(at)
    }
}

pub async fn run(settings: &Settings, args: &EnqueueArgs) -> Result<(), CliError> {
    let now = SystemTime::now();
    let (ready, json) = match &args.what {
        What::Post { text, options } => (
            build(settings, Kind::Post, text.clone(), None, options, now),
            options.json,
        ),
        What::Reply { to, text, options } => (
            build(
                settings,
                Kind::Reply,
                text.clone(),
                Some(to.clone()),
                options,
                now,
            ),
            options.json,
        ),
        What::Bulk => return bulk(settings, now).await,
    };
    let ready = ready.map_err(|reason| CliError::usage(format!("{reason}; nothing was queued")))?;
    let store = super::open_store(settings).await?;
    let result = store.job_enqueue(&ready.job, now).await?;
    let (line, value) = describe(&result);
    if json {
        crate::outln!("{value}");
    } else {
        if ready.was_past {
            crate::outln!("--at is in the past: the job is due now");
        }
        crate::outln!("{line}");
    }
    Ok(())
}

/// JSON lines on stdin; every line is checked first, and nothing is stored unless all pass.
/// Then the whole batch is stored in one transaction: all of it, or — on a store error, a full
/// disk, SIGTERM or SIGINT — none of it.
async fn bulk(settings: &Settings, now: SystemTime) -> Result<(), CliError> {
    // The site's limit, read once for the batch (loading the definition per line cost seconds).
    let limit = text_limit(settings);
    let stdin = std::io::stdin();
    // The checked jobs, and the line each came from (blank lines are skipped).
    let mut jobs: Vec<NewJob> = Vec::new();
    let mut numbers: Vec<usize> = Vec::new();
    let mut rejected = 0usize;
    let mut lines = 0usize;
    for (index, line) in stdin.lock().lines().enumerate() {
        let number = index + 1;
        let line = match line {
            Ok(line) => line,
            Err(err) => {
                crate::errln!("line {number}: rejected: cannot read: {err}");
                rejected += 1;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        let checked = check_line(settings, limit, &line, now);
        match checked {
            // Only the job is kept (bulk says nothing per line about a time in the past).
            Ok(ready) if rejected == 0 => {
                jobs.push(ready.job);
                numbers.push(number);
            }
            // One bad line rejects the batch: the rest is only checked, to name every bad line.
            Ok(_) => {}
            Err(reason) => {
                crate::errln!("line {number}: rejected: {reason}");
                rejected += 1;
                jobs = Vec::new();
                numbers = Vec::new();
            }
        }
    }
    if rejected > 0 {
        return Err(CliError::usage(format!(
            "{rejected} of {lines} line(s) rejected; nothing was queued"
        )));
    }
    if jobs.is_empty() {
        return Err(CliError::usage(
            "no jobs on stdin (one JSON object per line)",
        ));
    }
    let store = super::open_store(settings).await?;
    let answers = store_batch(store.as_ref(), jobs, now).await?;
    let mut out = String::new();
    for (number, answer) in numbers.iter().zip(&answers) {
        out.push_str(&format!("line {number}: {}\n", describe_batch(answer)));
        // Written in pieces of ~64 KiB: one write each, not one per line.
        if out.len() >= 64 * 1024 {
            crate::out!("{out}");
            out.clear();
        }
    }
    crate::out!("{out}");
    Ok(())
}

/// How often a batch still being stored says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// After SIGTERM or SIGINT, how long the store has to roll the batch back (it stops within one
/// chunk, milliseconds) before the command ends anyway.
const ROLLBACK_BOUND: Duration = Duration::from_secs(5);

/// Stores the batch in one transaction, saying how far it got while it takes long. SIGTERM and
/// SIGINT abandon it: the transaction is rolled back, never committed, and the command ends with
/// one line saying nothing was queued.
async fn store_batch(
    store: &dyn Store,
    jobs: Vec<NewJob>,
    now: SystemTime,
) -> Result<Vec<BatchEnqueued>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let total = jobs.len();
    // From here on a signal no longer ends the process at once: it abandons the transaction.
    // (Before, while reading stdin, the default ends it, and nothing was stored yet.)
    let listen = |kind: SignalKind| {
        signal(kind).map_err(|err| CliError::failure(format!("cannot watch for signals: {err}")))
    };
    let (mut sigterm, mut sigint) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::interrupt())?,
    );
    let control = BatchControl::default();
    let work = store.job_enqueue_batch(jobs, now, &control);
    tokio::pin!(work);
    let mut progress = tokio::time::interval(PROGRESS_EVERY / 10);
    let mut last_said: Option<std::time::Instant> = None;
    let mut interrupted: Option<(&str, tokio::time::Instant)> = None;
    let result = loop {
        let bound = interrupted.map(|(_, at)| at + ROLLBACK_BOUND);
        tokio::select! {
            result = &mut work => break result,
            _ = sigterm.recv(), if interrupted.is_none() => {
                control.cancel();
                interrupted = Some(("SIGTERM", tokio::time::Instant::now()));
            }
            _ = sigint.recv(), if interrupted.is_none() => {
                control.cancel();
                interrupted = Some(("SIGINT", tokio::time::Instant::now()));
            }
            _ = tokio::time::sleep_until(bound.unwrap_or_else(tokio::time::Instant::now)), if bound.is_some() => {
                let signal = interrupted.map(|(name, _)| name).unwrap_or("a signal");
                return Err(CliError::failure(format!(
                    "interrupted by {signal} while storing the batch; the store did not confirm \
                     the rollback within {}s: the batch's transaction was not committed by this \
                     command",
                    ROLLBACK_BOUND.as_secs()
                )));
            }
            _ = progress.tick(), if interrupted.is_none() => {
                let written = control.written();
                let due = last_said.is_none_or(|at| at.elapsed() >= PROGRESS_EVERY);
                if written > 0 && written < total && due {
                    crate::errln!(
                        "storing: {written} of {total} job(s) written; none is queued until all are"
                    );
                    last_said = Some(std::time::Instant::now());
                }
            }
        }
    };
    match (result, interrupted) {
        (Ok(answers), _) => Ok(answers),
        (Err(StoreError::Abandoned { .. }), Some((signal, _))) => Err(CliError::failure(format!(
            "interrupted by {signal} while storing the batch: its transaction was rolled back; \
             nothing was queued"
        ))),
        (Err(err), _) if err.is_disk_full() => Err(CliError::failure(format!(
            "the disk is full: cannot store the batch ({err}); nothing was queued"
        ))),
        (Err(err), _) => Err(CliError::failure(format!(
            "cannot store the batch: {err}; nothing was queued"
        ))),
    }
}

fn describe_batch(answer: &BatchEnqueued) -> String {
    match answer {
        BatchEnqueued::Created {
            id,
            kind,
            not_before,
        } => format!(
            "Queued job {id} ({}, due {})",
            kind.as_str(),
            due_text(*not_before)
        ),
        BatchEnqueued::Exists { id, key, state } => format!(
            "Job {id} already has key {} ({state}); nothing was added",
            crate::quote::quoted(key)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn at_accepts_utc_times_and_delays_and_moves_the_past_to_now() {
        let now = crate::clock::from_unix_ms(1_800_000_000_000);
        assert_eq!(
            parse_at("10m", now),
            Ok((now + Duration::from_secs(600), false))
        );
        assert_eq!(
            parse_at("+90s", now),
            Ok((now + Duration::from_secs(90), false))
        );
        assert_eq!(parse_at("now", now), Ok((now, false)));
        assert_eq!(parse_at("2020-01-01T00:00:00Z", now), Ok((now, true)));
        let future = crate::clock::from_unix_ms(1_900_000_000_000);
        assert_eq!(
            parse_at(&crate::clock::format_ts(future), now),
            Ok((future, false))
        );
        assert!(parse_at("tomorrow-ish", now).is_err());
    }
}
