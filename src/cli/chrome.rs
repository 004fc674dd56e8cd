//! `executor chrome`: start (or `--stop`) the managed browser for this profile.
//!
//! By default the browser outlives the command (it is recorded in `chrome.json` and the daemon
//! attaches to it). `--foreground` is for a service manager (`executor service`): the command
//! stays as long as the browser, tells systemd READY once its DevTools port answers, closes it in
//! order on SIGTERM or SIGINT (exit 0), and exits 1 when the browser dies by itself, so that the
//! manager restarts it. launchd has no other way: it supervises only what stays in the foreground.
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
    /// Stay in the foreground as long as the browser, for a service manager: SIGTERM or SIGINT
    /// closes it in order (exit 0); a browser that dies by itself exits 1
    #[arg(long, conflicts_with = "stop")]
    pub foreground: bool,
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
    if args.foreground {
        return foreground(settings, !args.headed).await;
    }
    let identity = start(settings, !args.headed).await?;
    crate::outln!("{}", started_line(&identity));
    Ok(())
}

fn started_line(identity: &Identity) -> String {
    format!(
        "Managed browser started: pid={} cdp=http://127.0.0.1:{} profile={} ({})",
        identity.pid,
        identity.port,
        identity.profile_dir.display(),
        if identity.headless {
            "headless"
        } else {
            "headed"
        }
    )
}

/// `--foreground`: runs the browser for as long as it lives or until SIGTERM/SIGINT.
async fn foreground(settings: &Settings, headless: bool) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    // Listening before the launch: a signal while the browser starts is not lost, and closes it
    // as soon as it is up.
    let listen = |kind| {
        signal(kind).map_err(|err| CliError::failure(format!("cannot watch signals: {err}")))
    };
    let (mut sigterm, mut sigint) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::interrupt())?,
    );
    let mut managed = launch(settings, headless).await?;
    let pid = managed.identity.pid;
    crate::outln!(
        "{}; in the foreground until SIGTERM or SIGINT",
        started_line(&managed.identity)
    );
    let notifier = crate::notify::Notifier::from_env();
    notifier.send("READY=1");
    let signalled = loop {
        tokio::select! {
            _ = sigterm.recv() => break Some("SIGTERM"),
            _ = sigint.recv() => break Some("SIGINT"),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if !managed.is_running() {
                    break None;
                }
            }
        }
    };
    let Some(signal_name) = signalled else {
        // Gone by itself: sweep what it left on the profile, reap it, and say so by the exit
        // code (the service manager restarts on failure).
        tokio::task::spawn_blocking(move || managed.terminate(Duration::from_secs(3)))
            .await
            .map_err(|err| CliError::failure(err.to_string()))?;
        let _ = std::fs::remove_file(settings.chrome_identity_path());
        return Err(CliError::failure(format!(
            "the managed browser (pid {pid}) exited by itself"
        )));
    };
    notifier.send("STOPPING=1");
    let closed = managed
        .close(managed::CLOSE_WAIT, std::future::pending())
        .await;
    let _ = std::fs::remove_file(settings.chrome_identity_path());
    crate::outln!(
        "{signal_name}: managed browser (pid {pid}) {}",
        if closed {
            "closed"
        } else {
            "stopped with signals (it did not close by itself)"
        }
    );
    Ok(())
}

/// The managed browser recorded in `chrome.json`, if it is still running.
pub(super) fn running(settings: &Settings) -> Option<Identity> {
    Identity::read(&settings.chrome_identity_path()).filter(Identity::is_alive)
}

/// Starts the managed browser on this profile and lets it outlive this process (see
/// [`launch`]).
pub(super) async fn start(settings: &Settings, headless: bool) -> Result<Identity, CliError> {
    launch(settings, headless).await.map(Managed::detach)
}

/// Starts the managed browser on this profile (CDP on `--cdp-port`), after ending leftovers of
/// an earlier run, and records it in `chrome.json`. Refused (exit 1) while one is running.
async fn launch(settings: &Settings, headless: bool) -> Result<Managed, CliError> {
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
        Managed::launch(&options, Duration::from_secs(30)).map(|m| (m, ended))
    })
    .await;
    let (managed, ended) = launched
        .map_err(|err| CliError::failure(err.to_string()))?
        .map_err(|err| CliError::failure(err.to_string()))?;
    if ended > 0 {
        crate::outln!(
            "Ended {ended} leftover browser process(es) on this profile from an earlier run."
        );
    }
    if let Err(err) = managed.identity.write(&identity_path) {
        managed.terminate(Duration::from_secs(3));
        return Err(CliError::failure(format!(
            "cannot write {}: {err}",
            identity_path.display()
        )));
    }
    Ok(managed)
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
