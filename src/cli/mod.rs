//! The command line: one file per subcommand, all sharing the global settings flags.
//!
//! Exit codes (documented in the README):
//! - 0: success; the daemon stopped by STOP/SIGTERM/SIGINT; a second daemon that found the
//!   profile locked; a daemon that refused to start because STOP is present;
//! - 1: runtime failure (consecutive failed ticks, hard page cap, store unreachable, `stop`
//!   timed out, `chrome` refused because one is already running, `login` still logged out);
//! - 2: bad input (a setting, a flag, the profile dir).

mod chrome;
mod daemon;
mod demo;
mod enqueue;
mod error;
mod events;
mod fleet;
mod jobs;
mod login;
mod pause;
mod report;
mod sandbox;
mod service;
mod status;
mod stop;
mod verify;

pub use error::CliError;

use crate::settings::{self, Flag, Info, Layer, Settings};
use clap::{Arg, ArgAction, Parser, Subcommand};
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "executor",
    version,
    about = "Runs queued browser actions through ONE logged-in Chromium page over CDP, 24/7, and proves it is stable.",
    long_about = "Runs queued browser actions (publish a post, reply to a post) through ONE logged-in Chromium page over \
the Chrome DevTools Protocol, around the clock, and records every tick so one SQL query shows it behaved.\n\n\
Typical use:\n  executor chrome --headed      # start the managed browser once, log in\n                                # (no display: executor login --cookies FILE)\n  executor daemon               # run (attaches to it on CDP_PORT)\n  executor enqueue post \"Hi\"    # queue a post (reply: --to URL_OR_ID)\n  executor jobs                 # the queue\n  executor stop                 # STOP switch: exits within seconds\n\n\
Every setting can be given as a flag, an environment variable, or a key in <profile>/executor.toml \
(the flag's name with underscores, e.g. tick_interval = \"30s\"; flags beat env beat file beat defaults). \
A bad value is reported in one line and exits with code 2.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command (SPEC §1): one flag per entry of [`settings::SETTINGS`]
/// (and `--profile`), made from the table with clap's builder API, each also read from its
/// environment variable and the config file.
#[derive(Debug, Clone, Default)]
pub struct GlobalArgs {
    pub profile: Option<PathBuf>,
    /// Only the settings given on the command line.
    flags: Layer,
}

/// The `Settings` help heading, so that a subcommand's own options stand apart from the settings.
const SETTINGS_HEADING: &str = "Settings";

fn setting_arg(setting: &Info) -> Option<Arg> {
    let arg = Arg::new(setting.key)
        .long(setting.flag_name())
        .global(true)
        .help(setting.help_line());
    match setting.flag {
        Flag::Value(value_name) => Some(
            arg.value_name(value_name)
                .action(ArgAction::Set)
                .value_parser(clap::value_parser!(String)),
        ),
        Flag::Switch => Some(arg.action(ArgAction::SetTrue)),
        Flag::None => None,
    }
}

/// The settings without a flag, listed after the options in `--help`.
fn settings_without_flag_help() -> String {
    let rows: Vec<&Info> = settings::SETTINGS
        .iter()
        .filter(|setting| setting.flag == Flag::None)
        .collect();
    let width = rows.iter().map(|s| s.key.len()).max().unwrap_or(0);
    let mut text = format!(
        "Settings only in the environment or {}:",
        settings::CONFIG_FILE
    );
    for setting in rows {
        text.push_str(&format!(
            "\n  {:width$}  {}",
            setting.key,
            setting.help_line()
        ));
    }
    text
}

impl clap::Args for GlobalArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let profile = setting_arg(&settings::PROFILE)
            .map(|arg| arg.value_parser(clap::value_parser!(PathBuf)));
        command
            .next_help_heading(SETTINGS_HEADING)
            .args(profile)
            .args(settings::SETTINGS.iter().filter_map(setting_arg))
            .next_help_heading(None)
            .after_help(settings_without_flag_help())
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for GlobalArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = GlobalArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        // The arguments are made from the same table above, so a mismatch is a bug, not input.
        let internal = |err: clap::parser::MatchesError| {
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, err.to_string())
        };
        if let Some(profile) = matches
            .try_get_one::<PathBuf>(settings::PROFILE.key)
            .map_err(internal)?
        {
            self.profile = Some(profile.clone());
        }
        for setting in settings::SETTINGS {
            let value = match setting.flag {
                Flag::Value(_) => matches
                    .try_get_one::<String>(setting.key)
                    .map_err(internal)?
                    .cloned(),
                Flag::Switch => matches
                    .try_get_one::<bool>(setting.key)
                    .map_err(internal)?
                    .filter(|given| **given)
                    .map(|_| "true".to_string()),
                Flag::None => None,
            };
            self.flags.flag(setting.key, value);
        }
        Ok(())
    }
}

impl GlobalArgs {
    /// Resolves the settings from these flags, the process environment and the config file.
    pub fn resolve(&self) -> Result<Settings, settings::SettingsError> {
        settings::resolve(self.profile.clone(), &self.flags, &|key| {
            std::env::var(key).ok()
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the managed browser (CDP on 127.0.0.1:CDP_PORT, profile <profile>/chrome-profile)
    Chrome(chrome::ChromeArgs),
    /// Log the managed browser in without a window: import session cookies exported from a desktop browser, then check the session on the site
    Login(login::LoginArgs),
    /// Run the daemon in the foreground until STOP, SIGTERM or SIGINT
    Daemon,
    /// Create the STOP switch and wait until the daemon has exited
    Stop(stop::StopArgs),
    /// Is a daemon running? Its last tick line, queue depths, backoff and last error
    Status(status::StatusArgs),
    /// Add a post or a reply to the queue (or many, as JSON lines on stdin)
    Enqueue(enqueue::EnqueueArgs),
    /// List jobs; show, retry or cancel one
    Jobs(jobs::JobsArgs),
    /// Pause a lane (--kind), an account (--account) or everything, fleet-wide: nothing new is claimed there until `resume`
    Pause(pause::PauseArgs),
    /// Lift a pause made by `pause` (the same --kind/--account), or every pause (--all)
    Resume(pause::ResumeArgs),
    /// Serve the bundled local test site (x.com-shaped) on 127.0.0.1
    Sandbox(sandbox::SandboxArgs),
    /// The whole system end to end on this machine: sandbox, headless browser, SQLite, posts and replies, proof
    Demo(demo::DemoArgs),
    /// Recent system_events rows
    Events(events::EventsArgs),
    /// Every executor sharing this store: account, host, health, last tick, pages, last error
    Fleet(fleet::FleetArgs),
    /// Recent ticks, page-count distribution, failure rate, what was published
    Report(report::ReportArgs),
    /// The stability checklist, PASS/FAIL with evidence; exit 0 only when all pass
    Verify(verify::VerifyArgs),
    /// Print a systemd unit or launchd plist that runs the daemon with these settings
    Service(service::ServiceArgs),
}

/// Opens the store for a command (a failure to open it is exit 1).
pub(crate) async fn open_store(
    settings: &Settings,
) -> Result<std::sync::Arc<dyn crate::store::Store>, CliError> {
    crate::store::open(&settings.database).await.map_err(|err| {
        CliError::failure(format!(
            "cannot open the store {}: {err}",
            settings.database
        ))
    })
}

/// Parses the command line and runs the command; returns the process exit code. The one place
/// a command's error is printed (`error: …`) and turned into its code.
/// clap's usage error (an `error:` line, a blank line, a tip, the usage, a pointer to `--help`)
/// as one bounded line: the error, its tip, and where to read more.
fn one_line_usage_error(rendered: &str) -> String {
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines
        .next()
        .unwrap_or("error: bad command line")
        .to_string();
    for rest in lines {
        if let Some(tip) = rest.strip_prefix("tip: ") {
            line.push_str(&format!(" ({tip})"));
        }
    }
    line.push_str("; see --help");
    crate::quote::single_line(&line, crate::quote::MESSAGE_CHARS)
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = err.print();
                    EXIT_OK
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = err.print();
                    EXIT_USAGE
                }
                _ => {
                    crate::errln!("{}", one_line_usage_error(&err.render().to_string()));
                    EXIT_USAGE
                }
            };
        }
    };
    let result = run(cli);
    // A closed stdout (`executor jobs | head -1`) ends the command quietly; another failure
    // to write what it printed (a full disk) is one.
    let result = match (result, crate::output::finish()) {
        (Ok(()), Err(err)) => Err(CliError::failure(format!("cannot write to stdout: {err}"))),
        (result, _) => result,
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(err) => err.report(),
    }
}

/// Resolves the settings and runs the command on a fresh runtime.
fn run(cli: Cli) -> Result<(), CliError> {
    let settings = cli
        .global
        .resolve()
        .map_err(|err| CliError::usage(err.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| CliError::failure(format!("cannot start the async runtime: {err}")))?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Chrome(args) => chrome::run(&settings, &args).await,
            Command::Login(args) => login::run(&settings, &args).await,
            Command::Daemon => daemon::run(settings).await,
            Command::Stop(args) => stop::run(&settings, &args).await,
            Command::Status(args) => status::run(&settings, &args).await,
            Command::Enqueue(args) => enqueue::run(&settings, &args).await,
            Command::Jobs(args) => jobs::run(&settings, &args).await,
            Command::Pause(args) => pause::pause(&settings, &args).await,
            Command::Resume(args) => pause::resume(&settings, &args).await,
            Command::Sandbox(args) => sandbox::run(&args).await,
            Command::Demo(args) => demo::run(&settings, &args).await,
            Command::Events(args) => events::run(&settings, &args).await,
            Command::Fleet(args) => fleet::run(&settings, &args).await,
            Command::Report(args) => report::run(&settings, &args).await,
            Command::Verify(args) => verify::run(&settings, &args).await,
            Command::Service(args) => service::run(&settings, &args),
        }
    });
    // Do not wait for blocking tasks still parked on I/O (e.g. a stopped browser's pipe).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::collections::BTreeMap;

    fn temp_profile() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("executor-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// Settings from a command line, an environment and a config file (all three may be empty).
    fn resolve_from(
        args: &[&str],
        env: &[(&str, &str)],
        file: &str,
    ) -> Result<Settings, settings::SettingsError> {
        let profile = temp_profile();
        std::fs::write(profile.join(settings::CONFIG_FILE), file).expect("write config");
        let mut argv = vec!["executor", "--profile", profile.to_str().expect("utf8")];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(&argv).expect("parse the command line");
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let resolved = settings::resolve(cli.global.profile.clone(), &cli.global.flags, &|key| {
            env.get(key).cloned()
        });
        let _ = std::fs::remove_dir_all(&profile);
        // The profile directories differ; everything else must not.
        resolved.map(|mut settings| {
            settings.profile = PathBuf::new();
            if settings.database == settings::DatabaseUrl::Sqlite(profile.join("executor.db")) {
                settings.database = settings::DatabaseUrl::Sqlite("<profile>/executor.db".into());
            }
            if let Some(id) = settings
                .executor_id
                .strip_suffix(&*profile.to_string_lossy())
            {
                settings.executor_id = format!("{id}<profile>");
            }
            settings
        })
    }

    #[test]
    fn every_setting_reads_the_same_from_its_flag_its_variable_and_the_config_file() {
        let defaults = format!(
            "{:?}",
            resolve_from(&["daemon"], &[], "").expect("defaults")
        );
        for setting in settings::SETTINGS {
            let from_env = resolve_from(&["daemon"], &[(setting.env, setting.example)], "")
                .unwrap_or_else(|err| panic!("{} from {}: {err}", setting.key, setting.env));
            let file = format!("{} = {:?}\n", setting.key, setting.example);
            let from_file = resolve_from(&["daemon"], &[], &file)
                .unwrap_or_else(|err| panic!("{} from the file: {err}", setting.key));
            assert_eq!(
                format!("{from_env:?}"),
                format!("{from_file:?}"),
                "{}: environment and file disagree",
                setting.key
            );
            let flag = format!("--{}", setting.flag_name());
            let args: Vec<&str> = match setting.flag {
                // After the subcommand: the flags are global.
                Flag::Value(_) => vec!["daemon", &flag, setting.example],
                Flag::Switch => {
                    assert_eq!(setting.example, "true", "a switch can only say true");
                    vec!["daemon", &flag]
                }
                Flag::None => vec!["daemon"],
            };
            if setting.flag != Flag::None {
                let from_flag = resolve_from(&args, &[], "")
                    .unwrap_or_else(|err| panic!("{} from {flag}: {err}", setting.key));
                assert_eq!(
                    format!("{from_flag:?}"),
                    format!("{from_env:?}"),
                    "{}: flag and environment disagree",
                    setting.key
                );
            }
            // The example is not the default, so each source was really read (only
            // EXECUTION_MODE has a single valid value).
            if setting.key != "execution_mode" {
                assert_ne!(
                    format!("{from_env:?}"),
                    defaults,
                    "{}: the example {:?} changed nothing",
                    setting.key,
                    setting.example
                );
            }
        }
    }

    #[test]
    fn help_shows_every_setting_with_its_variable_and_default() {
        let help = Cli::command().render_long_help().to_string();
        for setting in std::iter::once(&settings::PROFILE).chain(settings::SETTINGS) {
            assert!(
                help.contains(&setting.help_line()),
                "{} is not in --help:\n{help}",
                setting.key
            );
            assert!(help.contains(&format!("[env: {}]", setting.env)));
            if !setting.default.is_empty() {
                assert!(help.contains(&format!("[default: {}]", setting.default)));
            }
            match setting.flag {
                Flag::Value(value_name) => assert!(
                    help.contains(&format!("--{} <{value_name}>", setting.flag_name())),
                    "--{}",
                    setting.flag_name()
                ),
                Flag::Switch => assert!(help.contains(&format!("--{}\n", setting.flag_name()))),
                Flag::None => assert!(help.contains(&format!("  {} ", setting.key))),
            }
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks: unique names, no flag of a subcommand clashing with a setting's.
        Cli::command().debug_assert();
    }
}
