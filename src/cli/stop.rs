//! `executor stop`: create the STOP switch and wait until the daemon is gone.

use super::CliError;
use crate::lock::LockOwner;
use crate::settings::{parse_duration, Settings};
use crate::stop::Switch;
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct StopArgs {
    /// How long to wait for the daemon to exit (its lock file gone and its process ended)
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub timeout: String,
}

pub async fn run(settings: &Settings, args: &StopArgs) -> Result<(), CliError> {
    let timeout = parse_duration(&args.timeout)
        .map_err(|reason| CliError::usage(format!("--timeout={:?}: {reason}", args.timeout)))?;
    let stop_path = settings.stop_path();
    let switch = crate::files::create_private_dir(&settings.profile)
        .and_then(|()| crate::stop::create_switch(&stop_path))
        .map_err(|err| {
            CliError::failure(format!(
                "cannot create the STOP switch {}: {err}",
                stop_path.display()
            ))
        })?;
    let pulled = match switch {
        Switch::Created => "STOP switch created".to_string(),
        Switch::AlreadyPresent(kind) => format!("STOP switch already in place ({kind})"),
    };
    let lock_path = settings.lock_path();
    let owner = LockOwner::read(&lock_path).filter(LockOwner::is_alive);
    let Some(owner) = owner else {
        crate::outln!(
            "No daemon is running on {}; {pulled}: {} (remove it to allow a start).",
            settings.profile.display(),
            stop_path.display()
        );
        return Ok(());
    };
    crate::outln!(
        "{pulled}; waiting up to {} for pid {} to exit...",
        args.timeout,
        owner.pid
    );
    let started = Instant::now();
    while started.elapsed() < timeout {
        if !lock_path.exists() && !owner.is_alive() {
            crate::outln!(
                "Daemon (pid {}) exited after {} ms; lock released. Remove {} to allow a restart.",
                owner.pid,
                started.elapsed().as_millis(),
                stop_path.display()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(CliError::failure(format!(
        "daemon (pid {}) still running after {}; the STOP switch stays in place",
        owner.pid, args.timeout
    )))
}
