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
pub(crate) mod enqueue;
mod error;
mod events;
pub(crate) mod fleet;
pub(crate) mod jobs;
mod login;
pub(crate) mod pause;
mod report;
mod sandbox;
mod service;
mod status;
mod stop;
mod ui;
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

/// The settings given on the command line (SPEC §1): one flag per entry of
/// [`settings::SETTINGS`] (and `--profile`), made from the table with clap's builder API, each
/// also read from its environment variable and the config file.
///
/// A command offers only the settings it reads ([`SETTINGS_USED`]), after its own options, under
/// the heading `Settings`; `executor --help` lists them all, and a setting given before the
/// command name (`executor --database URL jobs`) is accepted only if that command reads it.
#[derive(Debug, Clone, Default)]
pub struct GlobalArgs {
    pub profile: Option<PathBuf>,
    /// Only the settings given on the command line.
    flags: Layer,
}

/// The `Settings` help heading, so that a command's own options stand apart from the settings.
const SETTINGS_HEADING: &str = "Settings";

/// The settings a store command reads.
const STORE: &[&str] = &["database"];
/// The settings that say which browser to use and how to reach it.
const BROWSER: &[&str] = &[
    "browser_mode",
    "cdp_host",
    "cdp_port",
    "allow_remote_cdp",
    "chrome_path",
];
/// The settings that say which site to act on.
const SITE: &[&str] = &["site", "site_url"];
/// Every setting: the commands that run the daemon or hand its settings on.
const ALL: &[&str] = &["*"];

/// The settings each command reads, by command name; `--profile` is every command's (the
/// sandbox records its address there, for `--site sandbox` to find). The single place that says which flags a command offers (the test
/// `every_command_offers_only_the_settings_it_reads` holds it to the code).
const SETTINGS_USED: &[(&str, &[&[&str]])] = &[
    ("chrome", &[&["cdp_port", "chrome_path"]]),
    ("login", &[BROWSER, SITE, &["account"]]),
    ("daemon", &[ALL]),
    ("stop", &[]),
    ("status", &[STORE, &["account"]]),
    ("enqueue", &[STORE, &["account", "site"]]),
    ("jobs", &[STORE]),
    ("sandbox", &[]),
    ("demo", &[&["chrome_path", "log_format"]]),
    ("events", &[STORE]),
    ("fleet", &[STORE, &["tick_interval", "tick_timeout"]]),
    // `report --html` leads with the verdict, judged as `verify` judges.
    ("report", &[STORE, &["executor_id", "max_failure_rate"]]),
    ("verify", &[ALL]),
    ("service", &[ALL]),
    ("pause", &[STORE, &["executor_id"]]),
    ("resume", &[STORE, &["executor_id"]]),
    (
        "ui",
        &[
            STORE,
            &[
                "ui_addr",
                "allow_remote_ui",
                "account",
                "site",
                "executor_id",
            ],
            &["tick_interval", "tick_timeout"],
        ],
    ),
];

/// Whether `command` reads the setting `key` (`profile` included).
fn command_uses(command: &str, key: &str) -> bool {
    if key == settings::PROFILE.key {
        return true;
    }
    SETTINGS_USED
        .iter()
        .filter(|(name, _)| *name == command)
        .flat_map(|(_, groups)| groups.iter().copied().flatten())
        .any(|used| *used == "*" || *used == key)
}

fn setting_arg(setting: &Info) -> Option<Arg> {
    let arg = Arg::new(setting.key)
        .long(setting.flag_name())
        .help(setting.help_line());
    let arg = match setting.flag {
        Flag::Value(value_name) => arg
            .value_name(value_name)
            .action(ArgAction::Set)
            .value_parser(clap::value_parser!(String)),
        Flag::Switch => arg.action(ArgAction::SetTrue),
        Flag::None => return None,
    };
    Some(if setting.key == settings::PROFILE.key {
        arg.value_parser(clap::value_parser!(PathBuf))
    } else {
        arg
    })
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

/// Every setting with a flag, `--profile` first.
fn all_settings() -> impl Iterator<Item = &'static Info> {
    std::iter::once(&settings::PROFILE).chain(settings::SETTINGS)
}

/// The whole command line: [`Cli`] with, on each command, the settings it reads (global within
/// it, so `executor jobs show 7 --database URL` works too) after its own options.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    for name in names {
        command = command.mut_subcommand(&name, |sub| {
            // A command's own option of the same name (`verify --account`, the filter) stays
            // its own; its value is also the setting's (see `update_from_arg_matches`).
            let own: Vec<String> = sub
                .get_arguments()
                .map(|arg| arg.get_id().to_string())
                .collect();
            let used: Vec<Arg> = all_settings()
                .filter(|setting| command_uses(&name, setting.key))
                .filter(|setting| !own.iter().any(|id| id == setting.key))
                .filter_map(setting_arg)
                .map(|arg| arg.global(true))
                .collect();
            let reads_all = all_settings().all(|s| command_uses(&name, s.key));
            let sub = sub
                .next_help_heading(SETTINGS_HEADING)
                .args(used)
                .next_help_heading(None);
            if reads_all {
                sub.after_help(settings_without_flag_help())
            } else {
                sub
            }
        });
    }
    command
}

/// Parses `args` (the program name first) with [`command`].
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::FromArgMatches;
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

impl clap::Args for GlobalArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        // Before the command name, every setting (`executor --help` is the whole list); each
        // command adds its own in [`command`].
        command
            .next_help_heading(SETTINGS_HEADING)
            .args(all_settings().filter_map(setting_arg))
            .next_help_heading(None)
            .after_help(settings_without_flag_help())
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// A setting's value as given on the command line: the profile is a path, the rest text.
enum Given {
    Path(PathBuf),
    Text(String),
}

/// The value of setting `setting` in one level's matches, if given there.
fn given_at(matches: &clap::ArgMatches, setting: &Info) -> Result<Option<Given>, clap::Error> {
    use clap::parser::MatchesError;
    fn read<T: Clone + Send + Sync + 'static>(
        matches: &clap::ArgMatches,
        key: &str,
    ) -> Result<Option<T>, clap::Error> {
        match matches.try_get_one::<T>(key) {
            Ok(value) => Ok(value.cloned()),
            // A level without the argument (a command that does not read it) has nothing.
            Err(MatchesError::UnknownArgument { .. }) => Ok(None),
            // The arguments are made from the same table, so another mismatch is a bug.
            Err(err) => Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                err.to_string(),
            )),
        }
    }
    if setting.key == settings::PROFILE.key {
        return Ok(read::<PathBuf>(matches, setting.key)?.map(Given::Path));
    }
    Ok(match setting.flag {
        Flag::Value(_) => read::<String>(matches, setting.key)?.map(Given::Text),
        Flag::Switch => read::<bool>(matches, setting.key)?
            .filter(|given| *given)
            .map(|_| Given::Text("true".to_string())),
        Flag::None => None,
    })
}

impl clap::FromArgMatches for GlobalArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut args = GlobalArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        let command = matches.subcommand_name().unwrap_or_default().to_string();
        // The levels of the command line, outermost first: a value given later wins.
        let mut levels = vec![matches];
        while let Some((_, sub)) = levels.last().and_then(|level| level.subcommand()) {
            levels.push(sub);
        }
        for setting in all_settings() {
            let mut value = None;
            for (depth, level) in levels.iter().enumerate() {
                let Some(given) = given_at(level, setting)? else {
                    continue;
                };
                if depth == 0 && !command_uses(&command, setting.key) {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "--{} is not an option of `executor {command}`, which does not read it\n",
                            setting.flag_name()
                        ),
                    ));
                }
                value = Some(given);
            }
            match value {
                Some(Given::Path(path)) => self.profile = Some(path),
                Some(Given::Text(text)) => self.flags.flag(setting.key, Some(text)),
                None => self.flags.flag(setting.key, None),
            }
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
    /// Print (or write, --out DIR) the systemd units or launchd plists that run the daemon with these settings, and in attach mode its browser
    Service(service::ServiceArgs),
    /// The web dashboard over the store: fleet, queue, timeline, jobs (retry, cancel), POST /api/jobs
    ///
    /// Every executor of the fleet, the queue by account and lane, the timeline of the last
    /// hours; the jobs with filters, their history, retry and cancel; POST /api/jobs for
    /// producers. It listens on --ui-addr (127.0.0.1:9465; loopback only unless
    /// --allow-remote-ui) and prints the URL to open, with the token kept in <profile>/ui-token.
    /// From another machine, tunnel it: `ssh -N -L 9465:127.0.0.1:9465 HOST`, then open the
    /// printed URL there. Details: docs/ui.md.
    Ui(ui::UiArgs),
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
    let cli = match parse_from(std::env::args_os()) {
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
    // The daemon waits nearly all of its life: one thread (plus the blocking pool, where SQLite
    // and the browser's launch and end run) wakes it, with no hand-over between workers. The
    // other commands keep two workers.
    let runtime = match cli.command {
        Command::Daemon => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
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
            Command::Sandbox(args) => sandbox::run(&settings, &args).await,
            Command::Demo(args) => demo::run(&settings, &args).await,
            Command::Events(args) => events::run(&settings, &args).await,
            Command::Fleet(args) => fleet::run(&settings, &args).await,
            Command::Report(args) => report::run(&settings, &args).await,
            Command::Verify(args) => verify::run(&settings, &args).await,
            Command::Service(args) => service::run(&settings, &args),
            Command::Ui(args) => ui::run(&settings, &args).await,
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
        let cli = parse_from(&argv).expect("parse the command line");
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

    /// The settings a command's source reads: `settings.FIELD` (`base.FIELD` in the demo, whose
    /// own `settings` are made, not the operator's), and the calls that read a known set.
    fn read_by_source(source: &str) -> std::collections::BTreeSet<&'static str> {
        // The fields named unlike their key.
        let field_of = |key: &str| match key {
            "memory_cap" => "memory_cap_bytes".to_string(),
            "stop_executor" => "stop_env".to_string(),
            "max_failure_rate" => "max_failure_pct".to_string(),
            key => key.to_string(),
        };
        let mut read = std::collections::BTreeSet::new();
        for setting in settings::SETTINGS {
            let field = field_of(setting.key);
            if [format!("settings.{field}"), format!("base.{field}")]
                .iter()
                .any(|access| {
                    source.match_indices(access.as_str()).any(|(at, _)| {
                        // Not a longer name (`settings.site` in `settings.site_url`).
                        !source[at + access.len()..]
                            .starts_with(|c: char| c == '_' || c.is_alphanumeric())
                    })
                })
            {
                read.insert(setting.key);
            }
        }
        let everything: Vec<&'static str> = settings::SETTINGS.iter().map(|s| s.key).collect();
        let calls: &[(&str, &[&'static str])] = &[
            ("open_store(settings", &["database"]),
            (
                "from_settings(settings",
                &["browser_mode", "cdp_host", "cdp_port", "chrome_path"],
            ),
            ("chrome::start(settings", &["cdp_port", "chrome_path"]),
            // The verdict's judge: this profile's executor and the operator's thresholds.
            (
                "Judge::of_profile(settings",
                &["executor_id", "max_failure_rate"],
            ),
            ("daemon::run(settings", &everything),
            ("to_env(", &everything),
            // The site's URL, or where the sandbox says it listens.
            ("address::site_url(settings", &["site_url"]),
            // The dashboard: enqueue's checks, the fleet's silence rule, and the executor id its
            // events (pauses, retries) are recorded under.
            (
                "Dashboard::new(store, token, settings",
                &[
                    "account",
                    "site",
                    "tick_interval",
                    "tick_timeout",
                    "executor_id",
                ],
            ),
        ];
        for (call, keys) in calls {
            if source.contains(call) {
                read.extend(keys.iter().copied());
            }
        }
        // A flag that only permits another setting's value goes with it.
        for (setting, permit) in [
            ("cdp_host", "allow_remote_cdp"),
            ("metrics_addr", "allow_remote_metrics"),
            ("ui_addr", "allow_remote_ui"),
        ] {
            if read.contains(setting) {
                read.insert(permit);
            }
        }
        // Settings without a flag are offered by no command.
        read.retain(|key| {
            settings::SETTINGS
                .iter()
                .any(|s| s.key == *key && s.flag != Flag::None)
        });
        read
    }

    fn source_of(command: &str) -> &'static str {
        match command {
            "chrome" => include_str!("chrome.rs"),
            "login" => include_str!("login.rs"),
            "daemon" => include_str!("daemon.rs"),
            "stop" => include_str!("stop.rs"),
            "status" => include_str!("status.rs"),
            "enqueue" => include_str!("enqueue.rs"),
            "jobs" => include_str!("jobs.rs"),
            "sandbox" => include_str!("sandbox.rs"),
            "demo" => include_str!("demo.rs"),
            "events" => include_str!("events.rs"),
            "fleet" => include_str!("fleet.rs"),
            "report" => include_str!("report.rs"),
            "verify" => include_str!("verify.rs"),
            "service" => include_str!("service.rs"),
            "ui" => include_str!("ui.rs"),
            "pause" | "resume" => include_str!("pause.rs"),
            other => panic!("no source listed for `executor {other}`: add it here"),
        }
    }

    /// The long options a help text lists under `heading` (up to the next heading).
    fn options_under(help: &str, heading: &str) -> Vec<String> {
        let mut options = Vec::new();
        let mut inside = false;
        for line in help.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                inside = line == format!("{heading}:");
                continue;
            }
            if inside {
                if let Some(at) = line.find("--") {
                    if line[..at].trim().is_empty() || line[..at].trim().ends_with(',') {
                        let name: String = line[at + 2..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '-')
                            .collect();
                        options.push(name);
                    }
                }
            }
        }
        options
    }

    /// What `executor ARGS --help` prints.
    fn help_of(args: &[&str]) -> String {
        let argv = std::iter::once("executor")
            .chain(args.iter().copied())
            .chain(["--help"]);
        match super::command().try_get_matches_from(argv) {
            Err(err) if err.kind() == clap::error::ErrorKind::DisplayHelp => {
                err.render().to_string()
            }
            other => panic!("executor {args:?} --help printed no help: {other:?}"),
        }
    }

    #[test]
    fn every_command_offers_only_the_settings_it_reads() {
        let mut command = super::command();
        command.build();
        // Each command and each of its own commands (`jobs show`), with its path.
        let mut paths: Vec<(Vec<String>, &clap::Command)> = Vec::new();
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            paths.push((vec![sub.get_name().to_string()], sub));
            for nested in sub.get_subcommands().filter(|s| s.get_name() != "help") {
                paths.push((
                    vec![sub.get_name().to_string(), nested.get_name().to_string()],
                    nested,
                ));
            }
        }
        assert!(paths.len() > SETTINGS_USED.len(), "the commands were found");
        for (path, sub) in paths {
            let name = path[0].as_str();
            let args: Vec<&str> = path.iter().map(String::as_str).collect();
            let help = help_of(&args);
            let offered: std::collections::BTreeSet<String> =
                options_under(&help, SETTINGS_HEADING).into_iter().collect();
            // A command's own option named like a setting (`verify --account`) is its own.
            let own: std::collections::BTreeSet<String> = sub
                .get_arguments()
                .filter(|arg| arg.get_help_heading() != Some(SETTINGS_HEADING))
                .filter_map(|arg| arg.get_long().map(str::to_string))
                .collect();
            let mut expected: std::collections::BTreeSet<String> = read_by_source(source_of(name))
                .into_iter()
                .map(|key| key.replace('_', "-"))
                .filter(|flag| !own.contains(flag))
                .collect();
            if command_uses(name, settings::PROFILE.key) {
                expected.insert("profile".into());
            }
            assert_eq!(
                offered, expected,
                "`executor {args:?} --help` offers settings other than those its code reads\n{help}"
            );
            // Its own options first, the settings after them.
            if let (Some(options_at), Some(settings_at)) =
                (help.find("Options:"), help.find("Settings:"))
            {
                assert!(
                    options_at < settings_at,
                    "{args:?}: settings before its options\n{help}"
                );
            }
            for line in help.lines() {
                assert_eq!(
                    line,
                    line.trim_end(),
                    "{args:?} --help: a trailing space in {line:?}\n{help}"
                );
            }
        }
    }

    #[test]
    fn a_setting_before_the_command_is_refused_when_the_command_does_not_read_it() {
        let err = parse_from(["executor", "--memory-cap", "1GiB", "sandbox"])
            .expect_err("sandbox has no memory cap");
        assert!(
            err.to_string()
                .contains("--memory-cap is not an option of `executor sandbox`"),
            "{err}"
        );
        // The same setting after the command name is not one of its options at all.
        assert!(parse_from(["executor", "jobs", "--memory-cap", "1GiB"]).is_err());
        // One the command reads is taken from either place; the later one wins.
        let cli = parse_from([
            "executor",
            "--database",
            "sqlite:///a.db",
            "jobs",
            "show",
            "1",
            "--database",
            "sqlite:///b.db",
        ])
        .expect("jobs reads the database");
        assert_eq!(
            cli.global.flags.get("database").map(|v| v.0.clone()),
            Some("sqlite:///b.db".to_string())
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks: unique names, no flag of a command clashing with a setting's.
        super::command().debug_assert();
    }
}
