//! `executor service systemd|launchd [--out DIR]`: the service definitions that run the daemon
//! with the current settings (passed as environment variables, so the service runs exactly as
//! configured here, whatever came from flags, the environment or the config file).
//!
//! What is generated follows the browser mode, so that the service starts what the daemon needs:
//! - attach mode (`cdp`, the default): the daemon attaches to a browser it does not start, so
//!   the browser gets a service of its own, `executor chrome --foreground`. systemd: the daemon's
//!   unit `Requires=` and starts `After=` the browser's unit. launchd has no dependencies: both
//!   jobs start at load, and the daemon's failed ticks back off until the browser answers.
//! - launch mode: the daemon starts and owns its browser; its service is all there is.
//!
//! Printed, one file is printed as it is; two are each preceded by a `# ---- file: NAME` line.
//! `--out DIR` writes them into DIR instead and says how to load them.
//!
//! Both keep a STOP down: systemd restarts only on failure (a STOP exits 0), launchd keeps the
//! job alive only after an unsuccessful exit. Both give the daemon longer to stop than its own
//! 10 s bound before they kill it. systemd also watches progress: the daemon sends WATCHDOG after
//! every completed tick.

use super::CliError;
use crate::settings::{to_env, BrowserMode, Settings};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    pub kind: ServiceKind,
}

#[derive(Debug, Subcommand)]
pub enum ServiceKind {
    /// systemd user units (Type=notify with a watchdog). Attach mode: executor.service and
    /// executor-chrome.service (the browser it requires); launch mode: executor.service alone.
    /// Install: --out ~/.config/systemd/user, then `systemctl --user daemon-reload && systemctl
    /// --user enable --now executor`
    Systemd(OutArgs),
    /// launchd agents (macOS). Attach mode: com.executor.daemon.plist and
    /// com.executor.chrome.plist (the browser); launch mode: com.executor.daemon.plist alone.
    /// Install: --out ~/Library/LaunchAgents, then `launchctl load` each
    Launchd(OutArgs),
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// Write the files into DIR (created if missing) instead of printing them; printed, two
    /// files are each preceded by a `# ---- file: NAME` line
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// One generated file: its name and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFile {
    pub name: String,
    pub text: String,
}

/// What a printed file is preceded by when there are several.
pub const FILE_HEADER: &str = "# ---- file: ";

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The longest a healthy daemon can go between two completed ticks, plus margin: the watchdog.
fn watchdog(settings: &Settings) -> Duration {
    let longest_wait = settings
        .backoff
        .iter()
        .copied()
        .max()
        .unwrap_or_default()
        .max(settings.tick_interval);
    longest_wait + settings.tick_timeout + Duration::from_secs(60)
}

/// Settings as environment, with the profile and a SQLite path made absolute (a service does not
/// start in this directory).
fn environment(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut resolved = settings.clone();
    resolved.profile = PathBuf::from(absolute(&settings.profile));
    if let crate::settings::DatabaseUrl::Sqlite(path) = &settings.database {
        resolved.database = crate::settings::DatabaseUrl::Sqlite(PathBuf::from(absolute(path)));
    }
    to_env(&resolved)
}

/// `executor`, or `executor-ACCOUNT` for an executor of a named account, so that the services of
/// several profiles on one machine do not overwrite each other. Only characters a unit name and
/// a launchd label both take are kept.
fn stem(settings: &Settings) -> String {
    if settings.account.is_empty() {
        return "executor".to_string();
    }
    let account: String = settings
        .account
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("executor-{account}")
}

/// The unit and label names: (daemon, browser).
fn systemd_names(settings: &Settings) -> (String, String) {
    let stem = stem(settings);
    (format!("{stem}.service"), format!("{stem}-chrome.service"))
}

fn launchd_labels(settings: &Settings) -> (String, String) {
    let stem = stem(settings).replacen("executor", "com.executor", 1);
    (format!("{stem}.daemon"), format!("{stem}.chrome"))
}

fn systemd_quote(value: &str) -> String {
    format!(
        "\"{}\"",
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
    )
}

fn systemd_environment(settings: &Settings) -> String {
    environment(settings)
        .iter()
        .map(|(key, value)| format!("Environment={}\n", systemd_quote(&format!("{key}={value}"))))
        .collect()
}

/// The systemd units for these settings: the daemon's, then in attach mode the browser's.
pub fn systemd_units(settings: &Settings, binary: &str) -> Vec<ServiceFile> {
    let (daemon, browser) = systemd_names(settings);
    let install = match settings.browser_mode {
        BrowserMode::Attach => format!(
            "#   executor service systemd --out ~/.config/systemd/user   (writes {daemon} and {browser})\n\
             #   systemctl --user daemon-reload && systemctl --user enable --now {daemon}\n"
        ),
        BrowserMode::Launch => format!(
            "#   executor service systemd --out ~/.config/systemd/user   (writes {daemon})\n\
             #   systemctl --user daemon-reload && systemctl --user enable --now {daemon}\n"
        ),
    };
    let (mode, dependencies, kill_mode) = match settings.browser_mode {
        BrowserMode::Attach => (
            format!(
                "# Attach mode (RUNNER_BROWSER=cdp): the daemon starts no browser. It attaches to the managed\n\
                 # browser of {browser} on {host}:{port}, which this unit requires and starts first.\n",
                host = settings.cdp_host,
                port = settings.cdp_port,
            ),
            format!(
                "# The browser it attaches to: started before it, and stopping it stops the daemon too.\n\
                 Requires={browser}\n\
                 After={browser} network-online.target\n"
            ),
            "# The daemon's own processes only: the browser is its own unit's, and outlives a STOP.\n",
        ),
        BrowserMode::Launch => (
            "# Launch mode (RUNNER_BROWSER=launch): the daemon starts and owns its managed browser, so this\n\
             # unit is all it needs.\n"
                .to_string(),
            "After=network-online.target\n".to_string(),
            "# Everything the unit started (the daemon's managed browser included) goes with it.\n",
        ),
    };
    let daemon_unit = format!(
        "# Generated by `executor service systemd`: the daemon.\n\
         {mode}\
         # Install (per user):\n\
         {install}\
         # STOP: `executor stop` (or touch the STOP file). A STOP exits 0, so systemd does not restart it.\n\
         [Unit]\n\
         Description=executor: queued browser actions through one Chromium page\n\
         {dependencies}\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={binary} daemon\n\
         WorkingDirectory={profile}\n\
         {environment}\
         # READY after the first tick; WATCHDOG after every completed tick (a hung daemon is restarted).\n\
         WatchdogSec={watchdog}\n\
         Restart=on-failure\n\
         RestartSec=30\n\
         # The daemon exits within 10 s of SIGTERM; give it more before SIGKILL.\n\
         TimeoutStopSec=30\n\
         KillSignal=SIGTERM\n\
         {kill_mode}\
         KillMode=control-group\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        binary = systemd_quote(binary),
        profile = absolute(&settings.profile).replace('%', "%%"),
        environment = systemd_environment(settings),
        watchdog = watchdog(settings).as_secs(),
    );
    let mut units = vec![ServiceFile {
        name: daemon.clone(),
        text: daemon_unit,
    }];
    if settings.browser_mode == BrowserMode::Attach {
        units.push(ServiceFile {
            text: systemd_browser_unit(settings, binary, &daemon),
            name: browser,
        });
    }
    units
}

/// The browser's unit (attach mode): `executor chrome --foreground`, started by the daemon's.
fn systemd_browser_unit(settings: &Settings, binary: &str, daemon: &str) -> String {
    format!(
        "# Generated by `executor service systemd`: the managed browser that {daemon} attaches to\n\
         # (`executor chrome --foreground`: headless, CDP on 127.0.0.1:{port}, profile <profile>/chrome-profile).\n\
         # {daemon} requires it and starts it first: enable that one. Stop the browser with\n\
         # `systemctl --user stop` on this unit (`executor chrome --stop` would look like a crash and be restarted).\n\
         # Log in while it runs: `executor login --cookies FILE`.\n\
         [Unit]\n\
         Description=executor: the managed browser (headless, CDP on 127.0.0.1:{port})\n\
         \n\
         [Service]\n\
         # READY once the browser's DevTools port answers.\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={binary} chrome --foreground\n\
         WorkingDirectory={profile}\n\
         {environment}\
         # A browser that dies by itself exits this unit non-zero: started again.\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         # SIGTERM to `executor chrome` alone, which closes the browser in order (a fresh login is kept);\n\
         # whatever is left after TimeoutStopSec is killed.\n\
         KillMode=mixed\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=30\n",
        port = settings.cdp_port,
        binary = systemd_quote(binary),
        profile = absolute(&settings.profile).replace('%', "%%"),
        environment = systemd_environment(settings),
    )
}

fn xml(value: &str) -> String {
    crate::sandbox::escape_html(value)
}

/// A launchd agent: `label` runs `binary arguments…`, kept alive after an unsuccessful exit.
fn plist(
    settings: &Settings,
    comment: &str,
    label: &str,
    binary: &str,
    arguments: &[&str],
    logs: &str,
) -> String {
    let profile = absolute(&settings.profile);
    let environment: String = environment(settings)
        .iter()
        .map(|(key, value)| {
            format!(
                "    <key>{}</key><string>{}</string>\n",
                xml(key),
                xml(value)
            )
        })
        .collect();
    let arguments: String = std::iter::once(binary)
        .chain(arguments.iter().copied())
        .map(|argument| format!("<string>{}</string>", xml(argument)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- {comment} -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key><string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n\
         \x20 <array>{arguments}</array>\n\
         \x20 <key>WorkingDirectory</key><string>{profile}</string>\n\
         \x20 <key>EnvironmentVariables</key>\n\
         \x20 <dict>\n{environment}  </dict>\n\
         \x20 <key>RunAtLoad</key><true/>\n\
         \x20 <key>KeepAlive</key>\n\
         \x20 <dict><key>SuccessfulExit</key><false/></dict>\n\
         \x20 <key>ThrottleInterval</key><integer>30</integer>\n\
         \x20 <key>ExitTimeOut</key><integer>30</integer>\n\
         \x20 <key>StandardOutPath</key><string>{out}</string>\n\
         \x20 <key>StandardErrorPath</key><string>{err}</string>\n\
         </dict>\n\
         </plist>\n",
        label = xml(label),
        profile = xml(&profile),
        out = xml(&format!("{profile}/{logs}.out.log")),
        err = xml(&format!("{profile}/{logs}.err.log")),
    )
}

/// The launchd agents for these settings: the daemon's, then in attach mode the browser's.
pub fn launchd_plists(settings: &Settings, binary: &str) -> Vec<ServiceFile> {
    let (daemon, browser) = launchd_labels(settings);
    let mode = match settings.browser_mode {
        BrowserMode::Attach => format!(
            "Attach mode (RUNNER_BROWSER=cdp): the daemon starts no browser; {browser} runs it\n\
             \x20    (`executor chrome` in the foreground). launchd has no dependencies: both start at load,\n\
             \x20    and the daemon's failed ticks back off until the browser answers on port {}.",
            settings.cdp_port
        ),
        BrowserMode::Launch => "Launch mode (RUNNER_BROWSER=launch): the daemon starts and owns its managed browser;\n\
             \x20    this agent is all it needs."
            .to_string(),
    };
    let load = |label: &str| format!("launchctl load ~/Library/LaunchAgents/{label}.plist");
    let install = match settings.browser_mode {
        BrowserMode::Attach => format!("{}\n\x20    {}", load(&browser), load(&daemon)),
        BrowserMode::Launch => load(&daemon),
    };
    let daemon_plist = plist(
        settings,
        &format!(
            "Generated by `executor service launchd`: the daemon.\n\
             \x20    {mode}\n\
             \x20    Install: let `executor service launchd` write it into ~/Library/LaunchAgents (its out option), then\n\
             \x20    {install}\n\
             \x20    A STOP exits 0: KeepAlive/SuccessfulExit=false keeps it down."
        ),
        &daemon,
        binary,
        &["daemon"],
        "launchd",
    );
    let mut plists = vec![ServiceFile {
        name: format!("{daemon}.plist"),
        text: daemon_plist,
    }];
    if settings.browser_mode == BrowserMode::Attach {
        let comment = format!(
            "Generated by `executor service launchd`: the managed browser that {daemon} attaches to\n\
             \x20    (headless, CDP on 127.0.0.1:{}). SIGTERM closes it in order; one that dies by itself\n\
             \x20    exits non-zero and is started again. Log in while it runs: `executor login` with a cookie file.",
            settings.cdp_port
        );
        plists.push(ServiceFile {
            name: format!("{browser}.plist"),
            text: plist(
                settings,
                &comment,
                &browser,
                binary,
                &["chrome", "--foreground"],
                "launchd.chrome",
            ),
        });
    }
    plists
}

/// The files as printed: one as it is; several each after its `# ---- file: NAME` line.
pub fn printed(files: &[ServiceFile]) -> String {
    match files {
        [only] => only.text.clone(),
        _ => files
            .iter()
            .map(|file| format!("{FILE_HEADER}{}\n{}", file.name, file.text))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Writes the files into `dir` (created `0700` if missing), replacing earlier versions.
fn write_files(dir: &Path, files: &[ServiceFile]) -> Result<(), CliError> {
    let failed = |path: &Path, err: std::io::Error| {
        CliError::failure(format!("cannot write {}: {err}", path.display()))
    };
    crate::files::create_private_dir(dir).map_err(|err| failed(dir, err))?;
    for file in files {
        let path = dir.join(&file.name);
        crate::files::replace_atomically(&path, file.text.as_bytes())
            .map_err(|err| failed(&path, err))?;
        crate::outln!("wrote {}", path.display());
    }
    Ok(())
}

pub fn run(settings: &Settings, args: &ServiceArgs) -> Result<(), CliError> {
    let binary = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/usr/local/bin/executor".to_string());
    let (files, out, next) = match &args.kind {
        ServiceKind::Systemd(out) => {
            let files = systemd_units(settings, &binary);
            let next = format!(
                "then: systemctl --user daemon-reload && systemctl --user enable --now {}",
                files[0].name
            );
            (files, out, next)
        }
        ServiceKind::Launchd(out) => {
            let files = launchd_plists(settings, &binary);
            let next = files
                .iter()
                .rev()
                .map(|file| format!("launchctl load {}", file.name))
                .collect::<Vec<_>>()
                .join(" && ");
            (files, out, format!("then, in that directory: {next}"))
        }
    };
    match &out.out {
        Some(dir) => {
            write_files(dir, &files)?;
            crate::outln!("{next}");
        }
        None => crate::out!("{}", printed(&files)),
    }
    Ok(())
}
