//! `executor verify [--since 60m] [--run DURATION] [--executor ID | --account NAME | --fleet]`:
//! the stability checklist from the stored events, the jobs and the lock, for each executor in
//! scope (judged in `proof::verdict`). Exit 0 only when every criterion of every executor passes;
//! the failure rate fails above `--max-failure-rate`.
//!
//! `--run` first runs the daemon on the current settings for that long, stops it through the
//! STOP switch, then verifies that run: the seed's 60-minute test as one command. While it runs,
//! a progress line on stderr counts what the run stored — ticks, published posts, failed ticks
//! against the threshold, the last tick's pages — read from the store, so it shows what the
//! checklist will judge. On a terminal the line is redrawn in place; otherwise (a log, CI) it is
//! printed at every tenth of the run, so a captured log stays readable.

use super::CliError;
use crate::events::{self, Event};
use crate::proof::text::print_section;
use crate::proof::verdict::{Judge, Section, Verdict};
use crate::proof::Scope;
use crate::settings::Settings;
use crate::store::{EventQuery, Store};
use clap::Args;
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The window: a duration back from now (60m, 24h) or an RFC 3339 UTC time
    #[arg(long, default_value = "60m", value_name = "WINDOW")]
    pub since: String,
    /// Run the daemon this long first (e.g. 60m), then verify that run
    #[arg(long, value_name = "DURATION")]
    pub run: Option<String>,
    /// Only this executor (its id, as `executor fleet` shows it)
    #[arg(long, value_name = "ID", conflicts_with_all = ["account", "fleet"])]
    pub executor: Option<String>,
    /// Only the executors registered for this account
    #[arg(long, value_name = "NAME", conflicts_with = "fleet")]
    pub account: Option<String>,
    /// Every executor in the registry, including those silent through the whole window
    #[arg(long)]
    pub fleet: bool,
    /// Also compare what the store says was published in the window with what the site shows
    /// on each account's timeline (through this profile's browser; the daemon must be stopped):
    /// fails on a post shown twice, under the wrong account, or missing
    #[arg(long)]
    pub on_site: bool,
}

impl VerifyArgs {
    fn scope(&self) -> Scope {
        match (&self.executor, &self.account, self.fleet) {
            (Some(id), _, _) => Scope::Executor(id.clone()),
            (None, Some(account), _) => Scope::Account(account.clone()),
            (None, None, true) => Scope::Fleet,
            (None, None, false) => Scope::Window,
        }
    }
}

pub async fn run(settings: &Settings, args: &VerifyArgs) -> Result<(), CliError> {
    let mut since = super::events::parse_since(&args.since).map_err(CliError::usage)?;
    let run = match &args.run {
        Some(text) => match crate::settings::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            _ => {
                return Err(CliError::usage(format!(
                    "--run {text:?} is not a duration such as 10m or 60m"
                )));
            }
        },
        None => None,
    };
    let store = super::open_store(settings).await?;
    if let Some(duration) = run {
        since = run_for(settings, store.as_ref(), duration).await?;
    }
    let judge = Judge::of_profile(settings);
    let (_, mut verdict) = Verdict::evaluate(store.as_ref(), since, &args.scope(), &judge).await?;
    crate::outln!(
        "Stability checklist, {} → {}",
        crate::clock::format_ts(verdict.since),
        crate::clock::format_ts(verdict.until)
    );
    verdict.sections.iter().for_each(print_section);
    if args.on_site {
        let criteria = crate::proof::on_site::check(settings, store.as_ref(), since, &args.scope())
            .await
            .map_err(|reason| CliError::failure(format!("--on-site: {reason}")))?;
        let section = Section {
            heading: Some("on the site".to_string()),
            criteria,
        };
        print_section(&section);
        verdict.sections.push(section);
    }
    crate::outln!("{}", verdict.summary());
    if verdict.passed() {
        Ok(())
    } else {
        // The FAIL lines above are the report; only the exit code is left.
        Err(CliError::already_reported(super::EXIT_FAILURE))
    }
}

/// Runs the daemon for `duration` with a progress line, then the STOP switch. Returns when the
/// run started (the window to verify).
async fn run_for(
    settings: &Settings,
    store: &dyn Store,
    duration: Duration,
) -> Result<SystemTime, CliError> {
    if crate::stop::stop_file_present(&settings.stop_path()).is_some() {
        return Err(CliError::usage(format!(
            "the STOP switch {} is present; remove it to run",
            settings.stop_path().display()
        )));
    }
    let started_at = SystemTime::now();
    let mut child = match std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("daemon")
            // Exactly the settings this command runs with, whatever their source.
            .envs(crate::settings::to_env(settings))
            .env_remove("STOP_EXECUTOR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
    }) {
        Ok(child) => child,
        Err(err) => {
            return Err(CliError::failure(format!("cannot start the daemon: {err}")));
        }
    };
    crate::errln!(
        "running the daemon for {} (log: {})",
        clock(duration),
        settings.log_path().display()
    );
    let started = Instant::now();
    let mut watch = RunWatch::new(&settings.executor_id, started_at);
    let mut line = ProgressLine::new(std::io::stderr().is_terminal());
    let mut last_read: Option<Instant> = None;
    while started.elapsed() < duration {
        if let Ok(Some(status)) = child.try_wait() {
            line.finish();
            crate::errln!("the daemon exited early ({status}); verifying what it did");
            break;
        }
        // The store once a second; the line four times, so the clock moves smoothly.
        if last_read.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            watch.read(store).await;
            last_read = Some(Instant::now());
        }
        let elapsed = started.elapsed();
        let tenth = (10 * elapsed.as_millis() / duration.as_millis().max(1)) as u64;
        line.draw(
            &watch
                .progress
                .line(elapsed, duration, settings.max_failure_pct),
            tenth,
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    line.finish();
    crate::errln!("run over: touching {}", settings.stop_path().display());
    let _ = crate::stop::create_switch(&settings.stop_path());
    let deadline = Instant::now() + Duration::from_secs(15);
    let waited = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = std::fs::remove_file(settings.stop_path());
    if !waited {
        let _ = child.kill();
        crate::errln!("the daemon did not stop within 15 s (the checklist will say so)");
    }
    watch.read(store).await;
    crate::errln!(
        "the run stored: {}",
        watch.progress.counts(settings.max_failure_pct)
    );
    Ok(started_at)
}

/// What a run has stored so far, counted from its events.
#[derive(Debug, Clone, Default, PartialEq)]
struct Progress {
    ticks: usize,
    failed: usize,
    published: usize,
    /// The latest tick's pages.
    pages: Option<i64>,
    /// Ticks with pages other than 1.
    pages_not_one: usize,
}

impl Progress {
    fn add(&mut self, event: &Event) {
        match event.event_type.as_str() {
            events::TICK => {
                let data = &event.event_data;
                self.ticks += 1;
                if !data["last_error"].is_null() {
                    self.failed += 1;
                }
                let pages = data["pages"].as_i64().unwrap_or(0);
                if pages != 1 {
                    self.pages_not_one += 1;
                }
                self.pages = Some(pages);
            }
            events::POST_SUCCESS | events::REPLY_SUCCESS => self.published += 1,
            _ => {}
        }
    }

    /// `ticks 24  published 3  failures 1 (4.2%, max 5%)  pages 1`
    fn counts(&self, max_failure_pct: f64) -> String {
        let pct = if self.ticks == 0 {
            0.0
        } else {
            100.0 * self.failed as f64 / self.ticks as f64
        };
        let pages = match self.pages {
            None => "-".to_string(),
            Some(pages) if self.pages_not_one == 0 => pages.to_string(),
            Some(pages) => format!("{pages} (≠1 in {} ticks)", self.pages_not_one),
        };
        format!(
            "ticks {}  published {}  failures {} ({pct:.1}%, max {max_failure_pct}%)  pages {pages}",
            self.ticks, self.published, self.failed
        )
    }

    /// The progress line: a bar, the share of the run done, its clock, then the counts.
    fn line(&self, elapsed: Duration, duration: Duration, max_failure_pct: f64) -> String {
        const WIDTH: usize = 20;
        let done = (elapsed.as_secs_f64() / duration.as_secs_f64()).clamp(0.0, 1.0);
        let filled = ((done * WIDTH as f64) as usize).min(WIDTH);
        format!(
            "[{}{}] {:>3.0}%  {} of {}  {}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            done * 100.0,
            clock(elapsed),
            clock(duration),
            self.counts(max_failure_pct)
        )
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// Reads a run's events as they are stored, each once: this executor's ticks and publications
/// from `cursor` on. The cursor is inclusive (events can share a millisecond), so the ids seen
/// at it are remembered.
struct RunWatch {
    executor_id: String,
    cursor: SystemTime,
    seen_at_cursor: HashSet<String>,
    progress: Progress,
}

impl RunWatch {
    fn new(executor_id: &str, since: SystemTime) -> RunWatch {
        RunWatch {
            executor_id: executor_id.to_string(),
            cursor: since,
            seen_at_cursor: HashSet::new(),
            progress: Progress::default(),
        }
    }

    /// Counts what was stored since the last read. A store that does not answer leaves the
    /// counts as they were: the line is a view, the checklist after the run is the judgement.
    async fn read(&mut self, store: &dyn Store) {
        let query = EventQuery {
            types: [events::TICK, events::POST_SUCCESS, events::REPLY_SUCCESS]
                .map(str::to_string)
                .to_vec(),
            since: Some(self.cursor),
            ..Default::default()
        };
        let Ok(new) = store.event_list(&query).await else {
            return;
        };
        for event in new {
            if event.created_at < self.cursor || self.seen_at_cursor.contains(&event.id) {
                continue;
            }
            if event.created_at > self.cursor {
                self.cursor = event.created_at;
                self.seen_at_cursor.clear();
            }
            self.seen_at_cursor.insert(event.id.clone());
            if crate::proof::executor_of(&event) == self.executor_id {
                self.progress.add(&event);
            }
        }
    }
}

/// The progress line on stderr: redrawn in place on a terminal; elsewhere printed whole at each
/// tenth of the run (a log of carriage returns is unreadable).
struct ProgressLine {
    terminal: bool,
    drawn: bool,
    last_tenth: Option<u64>,
}

impl ProgressLine {
    fn new(terminal: bool) -> ProgressLine {
        ProgressLine {
            terminal,
            drawn: false,
            last_tenth: None,
        }
    }

    /// Shows `line`; `tenth` is how many tenths of the run are done.
    fn draw(&mut self, line: &str, tenth: u64) {
        let mut stderr = std::io::stderr();
        if self.terminal {
            // Back to the start of the line, the new text, and clear what a longer one left.
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
            self.drawn = true;
            return;
        }
        if self.last_tenth != Some(tenth) {
            self.last_tenth = Some(tenth);
            crate::errln!("{line}");
        }
    }

    /// Ends a redrawn line, so what follows starts on its own.
    fn finish(&mut self) {
        if self.drawn {
            crate::errln!("");
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, data: serde_json::Value) -> Event {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_string(),
            severity: events::Severity::Info,
            message: String::new(),
            event_data: data,
            created_at: SystemTime::now(),
        }
    }

    #[test]
    fn the_progress_line_counts_ticks_publications_failures_and_pages() {
        let mut progress = Progress::default();
        let line = |p: &Progress| p.line(Duration::from_secs(90), Duration::from_secs(600), 5.0);
        assert_eq!(
            line(&progress),
            "[###-----------------]  15%  1:30 of 10:00  ticks 0  published 0  failures 0 (0.0%, max 5%)  pages -"
        );
        for _ in 0..3 {
            progress.add(&event(
                events::TICK,
                json!({ "pages": 1, "last_error": null }),
            ));
        }
        progress.add(&event(
            events::TICK,
            json!({ "pages": 2, "last_error": "browser lost" }),
        ));
        progress.add(&event(events::POST_SUCCESS, json!({ "job_id": 1 })));
        progress.add(&event(events::REPLY_SUCCESS, json!({ "job_id": 2 })));
        progress.add(&event(events::STOP, json!({})));
        assert_eq!(
            progress.counts(5.0),
            "ticks 4  published 2  failures 1 (25.0%, max 5%)  pages 2 (≠1 in 1 ticks)"
        );
        assert!(!line(&progress).contains('\n'), "one line");
    }

    #[test]
    fn the_clock_reads_minutes_then_hours() {
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        assert_eq!(clock(Duration::from_secs(3599)), "59:59");
        assert_eq!(clock(Duration::from_secs(3600 + 61)), "1:01:01");
    }
}
