//! `executor verify [--since 60m] [--run DURATION] [--executor ID | --account NAME | --fleet]`:
//! the stability checklist from the stored events, the jobs and the lock, for each executor in
//! scope. Exit 0 only when every criterion of every executor passes.
//!
//! Each executor is judged on its own events, so one executor's ticks never hide another's
//! death; the lock criterion applies only to the executor of this profile (another machine's
//! lock is not ours to read); "no job published twice" counts every executor's publications.
//! `--run` first runs the daemon on the current settings for that long (a progress bar on
//! stderr), stops it through the STOP switch, then verifies that run: the seed's 60-minute test
//! as one command.

use super::CliError;
use crate::proof::checklist::LockState;
use crate::proof::text::print_checklist;
use crate::proof::{Report, Scope};
use crate::settings::Settings;
use clap::Args;
use std::io::Write;
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
    if let Some(duration) = &args.run {
        let duration = match crate::settings::parse_duration(duration) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                return Err(CliError::usage(format!(
                    "--run {duration:?} is not a duration such as 10m or 60m"
                )));
            }
        };
        since = run_for(settings, duration).await?;
    }
    let store = super::open_store(settings).await?;
    let whole = Report::collect(store.as_ref(), since).await?;
    let executors = Report::collect_by_executor(store.as_ref(), since, &args.scope()).await?;
    crate::outln!(
        "Stability checklist, {} → {}",
        crate::clock::format_ts(whole.since),
        crate::clock::format_ts(whole.until)
    );
    let lock = LockState::read(&settings.lock_path());
    // An empty window is judged as one executor with no ticks: it fails, never passes vacuously.
    let judged: Vec<(Option<&str>, &Report)> = if executors.is_empty() {
        vec![(None, &whole)]
    } else {
        executors
            .iter()
            .map(|(id, r)| (Some(id.as_str()), r))
            .collect()
    };
    let (mut criteria, mut failed) = (0, 0);
    for (id, report) in &judged {
        let local = id.is_none_or(|id| id == settings.executor_id) || judged.len() == 1;
        if judged.len() > 1 {
            crate::outln!("\n== executor {}", id.unwrap_or("-"));
        }
        let checklist = report.checklist_in(local.then_some(&lock), &whole.published);
        print_checklist(&checklist);
        criteria += checklist.len();
        failed += checklist.iter().filter(|c| !c.pass).count();
    }
    if args.on_site {
        crate::outln!("\n== on the site");
        let checklist =
            crate::proof::on_site::check(settings, store.as_ref(), since, &args.scope())
                .await
                .map_err(|reason| CliError::failure(format!("--on-site: {reason}")))?;
        print_checklist(&checklist);
        criteria += checklist.len();
        failed += checklist.iter().filter(|c| !c.pass).count();
    }
    if failed == 0 {
        crate::outln!("All {criteria} criteria pass.");
        Ok(())
    } else {
        // The FAIL lines above are the report; only the exit code is left.
        crate::outln!("{failed} of {criteria} criteria fail.");
        Err(CliError::already_reported(super::EXIT_FAILURE))
    }
}

/// Runs the daemon for `duration` with a progress bar, then the STOP switch. Returns when the run
/// started (the window to verify).
async fn run_for(settings: &Settings, duration: Duration) -> Result<SystemTime, CliError> {
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
    let started = Instant::now();
    let mut stderr = std::io::stderr();
    while started.elapsed() < duration {
        if let Ok(Some(status)) = child.try_wait() {
            crate::errln!("\nthe daemon exited early ({status}); verifying what it did");
            break;
        }
        let done = started.elapsed().as_secs_f64() / duration.as_secs_f64();
        let filled = (done * 40.0) as usize;
        let _ = write!(
            stderr,
            "\r[{}{}] {:>3.0}%  {}s of {}s  (log: {})",
            "#".repeat(filled),
            "-".repeat(40 - filled.min(40)),
            done * 100.0,
            started.elapsed().as_secs(),
            duration.as_secs(),
            settings.log_path().display()
        );
        let _ = stderr.flush();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    crate::errln!("\nrun over: touching {}", settings.stop_path().display());
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
    Ok(started_at)
}
