//! `executor chrome`: start (or `--stop`) the managed browser for this profile.

use super::CliError;
use crate::browser::managed::{self, Identity, LaunchOptions, Managed};
use crate::settings::Settings;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ChromeArgs {
    /// Show a window (e.g. to log in once); headless otherwise
    #[arg(long)]
    pub headed: bool,
    /// Stop the managed browser of this profile instead of starting one
    #[arg(long)]
    pub stop: bool,
}

pub async fn run(settings: &Settings, args: &ChromeArgs) -> Result<(), CliError> {
    crate::daemon::prepare_profile(settings).map_err(|err| CliError::usage(err.to_string()))?;
    let identity_path = settings.chrome_identity_path();
    let profile_dir = settings.chrome_profile_dir();
    let recorded = Identity::read(&identity_path).filter(Identity::is_alive);

    if args.stop {
        let leftovers = managed::leftovers(&profile_dir, &[]);
        if recorded.is_none() && leftovers.is_empty() {
            crate::outln!(
                "No managed browser is running on {}.",
                settings.profile.display()
            );
            let _ = std::fs::remove_file(&identity_path);
            return Ok(());
        }
        let pid = recorded.as_ref().map(|r| r.pid);
        let done = tokio::task::spawn_blocking(move || {
            if let Some(identity) = recorded {
                Managed::adopt(identity).terminate(Duration::from_secs(5));
            }
            let rest = managed::leftovers(&profile_dir, &[]);
            managed::end_processes(&rest, &profile_dir, Duration::from_secs(3));
        })
        .await;
        let _ = std::fs::remove_file(&identity_path);
        done.map_err(|err| CliError::failure(err.to_string()))?;
        match pid {
            Some(pid) => crate::outln!("Managed browser (pid {pid}) stopped."),
            None => crate::outln!("Leftover browser processes on this profile were ended."),
        }
        return Ok(());
    }

    if let Some(identity) = recorded {
        return Err(CliError::failure(
            managed::LaunchError::AlreadyRunning {
                pid: identity.pid,
                port: identity.port,
            }
            .to_string(),
        ));
    }
    // Before the launch: a chrome.json we could not write must not leave a browser running.
    Identity::check_writable(&identity_path)
        .map_err(|err| CliError::usage(format!("cannot record the browser: {err}")))?;
    let binary = managed::find_binary(settings.chrome_path.as_deref())
        .map_err(|err| CliError::usage(err.to_string()))?;
    let options = LaunchOptions {
        binary,
        profile_dir: profile_dir.clone(),
        port: settings.cdp_port,
        headless: !args.headed,
        stderr_log: settings.profile.join("chrome-stderr.log"),
    };
    let launched = tokio::task::spawn_blocking(move || {
        let left = managed::leftovers(&options.profile_dir, &[]);
        let ended = managed::end_processes(&left, &options.profile_dir, Duration::from_secs(3));
        Managed::launch(&options, Duration::from_secs(30)).map(|m| (m.detach(), ended))
    })
    .await;
    let (identity, ended) = launched
        .map_err(|err| CliError::failure(err.to_string()))?
        .map_err(|err| CliError::failure(err.to_string()))?;
    if ended > 0 {
        crate::outln!(
            "Ended {ended} leftover browser process(es) on this profile from an earlier run."
        );
    }
    if let Err(err) = identity.write(&identity_path) {
        Managed::adopt(identity).terminate(Duration::from_secs(3));
        return Err(CliError::failure(format!(
            "cannot write {}: {err}",
            identity_path.display()
        )));
    }
    crate::outln!(
        "Managed browser started: pid={} cdp=http://127.0.0.1:{} profile={} ({})",
        identity.pid,
        identity.port,
        identity.profile_dir.display(),
        if identity.headless {
            "headless"
        } else {
            "headed"
        }
    );
    Ok(())
}
