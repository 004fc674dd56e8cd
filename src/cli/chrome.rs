//! `executor chrome`: start (or `--stop`) the managed browser for this profile.
//!
//! `--stop` closes the browser in order (`Browser.close`, then a bounded wait) before any signal,
//! so that a login made a moment ago is written to the profile and not lost (see
//! [`Managed::close`]). `login` starts and stops the browser through the same functions.

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

    if args.stop {
        match stop(settings).await? {
            Stopped::Nothing => crate::outln!(
                "No managed browser is running on {}.",
                settings.profile.display()
            ),
            Stopped::Browser { pid, closed: true } => {
                crate::outln!("Managed browser (pid {pid}) closed.")
            }
            Stopped::Browser { pid, closed: false } => crate::outln!(
                "Managed browser (pid {pid}) stopped (it did not close by itself within {}s: ended with signals).",
                managed::CLOSE_WAIT.as_secs()
            ),
            Stopped::Leftovers => {
                crate::outln!("Leftover browser processes on this profile were ended.")
            }
        }
        return Ok(());
    }

    // A window needs a display: say so before starting a browser that would exit at once.
    if args.headed && !crate::platform::has_display(&|name| std::env::var(name).ok()) {
        return Err(CliError::usage(format!(
            "--headed needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set; {}",
            managed::NO_DISPLAY_WAYS_IN
        )));
    }
    let identity = start(settings, !args.headed).await?;
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

/// The managed browser recorded in `chrome.json`, if it is still running.
pub(super) fn running(settings: &Settings) -> Option<Identity> {
    Identity::read(&settings.chrome_identity_path()).filter(Identity::is_alive)
}

/// Starts the managed browser on this profile (CDP on `--cdp-port`), after ending leftovers of
/// an earlier run, and records it in `chrome.json`. Refused (exit 1) while one is running.
pub(super) async fn start(settings: &Settings, headless: bool) -> Result<Identity, CliError> {
    let identity_path = settings.chrome_identity_path();
    if let Some(identity) = running(settings) {
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
        profile_dir: settings.chrome_profile_dir(),
        port: settings.cdp_port,
        headless,
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
    Ok(identity)
}

/// What [`stop`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    Nothing,
    /// The recorded browser; `closed`: it closed by itself after `Browser.close`.
    Browser {
        pid: u32,
        closed: bool,
    },
    /// No recorded browser, but processes on our profile, which were ended.
    Leftovers,
}

/// Stops the managed browser of this profile: closed in order, then whatever still uses the
/// profile is signalled. Removes `chrome.json`.
pub(super) async fn stop(settings: &Settings) -> Result<Stopped, CliError> {
    let identity_path = settings.chrome_identity_path();
    let profile_dir = settings.chrome_profile_dir();
    let recorded = running(settings);
    if recorded.is_none() && managed::leftovers(&profile_dir, &[]).is_empty() {
        let _ = std::fs::remove_file(&identity_path);
        return Ok(Stopped::Nothing);
    }
    let stopped = match recorded {
        Some(identity) => {
            let pid = identity.pid;
            let closed = Managed::adopt(identity)
                .close(managed::CLOSE_WAIT, std::future::pending())
                .await;
            Stopped::Browser { pid, closed }
        }
        None => Stopped::Leftovers,
    };
    let swept = tokio::task::spawn_blocking(move || {
        let rest = managed::leftovers(&profile_dir, &[]);
        managed::end_processes(&rest, &profile_dir, Duration::from_secs(3));
    })
    .await;
    let _ = std::fs::remove_file(&identity_path);
    swept.map_err(|err| CliError::failure(err.to_string()))?;
    Ok(stopped)
}
