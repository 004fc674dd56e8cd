//! The command line: one file per subcommand, all sharing the global settings flags.
//!
//! Exit codes (documented in the README):
//! - 0: success; the daemon stopped by STOP/SIGTERM/SIGINT; a second daemon that found the
//!   profile locked; a daemon that refused to start because STOP is present;
//! - 1: runtime failure (consecutive failed ticks, hard page cap, store unreachable, `stop`
//!   timed out, `chrome` refused because one is already running);
//! - 2: bad input (a setting, a flag, the profile dir).

mod chrome;
mod daemon;
mod demo;
mod enqueue;
mod events;
mod jobs;
mod report;
mod sandbox;
mod service;
mod status;
mod stop;
mod verify;

use crate::settings::{self, Layer, Settings};
use clap::{Args, Parser, Subcommand};
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
Typical use:\n  executor chrome --headed      # start the managed browser once, log in\n  executor daemon               # run (attaches to it on CDP_PORT)\n  executor enqueue post \"Hi\"    # queue a post (reply: --to URL_OR_ID)\n  executor jobs                 # the queue\n  executor stop                 # STOP switch: exits within seconds\n\n\
Every setting can be given as a flag, an environment variable, or a key in <profile>/executor.toml \
(flags beat env beat file beat defaults). A bad value is reported in one line and exits with code 2.",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command (SPEC §1). Each also reads its environment variable.
#[derive(Debug, Args, Default)]
pub struct GlobalArgs {
    /// Profile directory: lock, STOP switch, log, SQLite store, browser profile [env: RUNNER_PROFILE_DIR] [default: ./.runner-profile]
    #[arg(long, global = true, value_name = "DIR")]
    pub profile: Option<PathBuf>,
    /// Store: sqlite://PATH or postgres://USER@HOST:PORT/DB [env: DATABASE_URL] [default: sqlite://<profile>/executor.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// `cdp`: attach to a browser on the CDP port; `launch`: start and own one [env: RUNNER_BROWSER] [default: cdp]
    #[arg(long, global = true, value_name = "MODE")]
    pub browser_mode: Option<String>,
    /// CDP address; only loopback unless --allow-remote-cdp [env: CDP_HOST] [default: 127.0.0.1]
    #[arg(long, global = true, value_name = "IP")]
    pub cdp_host: Option<String>,
    /// CDP port on 127.0.0.1 (0: any free port, launch mode) [env: CDP_PORT] [default: 9222]
    #[arg(long, global = true, value_name = "PORT")]
    pub cdp_port: Option<String>,
    /// Allow a CDP address that is not loopback [env: EXECUTOR_ALLOW_REMOTE_CDP]
    #[arg(long, global = true)]
    pub allow_remote_cdp: bool,
    /// Time between tick starts, e.g. 500ms, 30s, 5m [env: EXECUTOR_TICK_INTERVAL] [default: 60s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub tick_interval: Option<String>,
    /// Runtime cap of one tick [env: EXECUTOR_TICK_TIMEOUT] [default: 300s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub tick_timeout: Option<String>,
    /// Consecutive failed ticks before the daemon exits non-zero [env: EXECUTOR_MAX_FAILURES] [default: 5]
    #[arg(long, global = true, value_name = "N")]
    pub max_failures: Option<String>,
    /// Backoff schedule after failed ticks [env: EXECUTOR_BACKOFF] [default: 30s,60s,120s,300s,600s]
    #[arg(long, global = true, value_name = "LIST")]
    pub backoff: Option<String>,
    /// Memory cap of the browser process tree, e.g. 2GiB [env: EXECUTOR_MEMORY_CAP] [default: 2GiB]
    #[arg(long, global = true, value_name = "SIZE")]
    pub memory_cap: Option<String>,
    /// Site definition: `x`, `sandbox`, a TOML file, or `none` (count the queue, act on nothing) [env: EXECUTOR_SITE] [default: x]
    #[arg(long, global = true, value_name = "NAME|FILE")]
    pub site: Option<String>,
    /// Base URL of the site [env: EXECUTOR_SITE_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub site_url: Option<String>,
    /// Posts per rolling hour [env: EXECUTOR_POSTS_PER_HOUR] [default: 2]
    #[arg(long, global = true, value_name = "N")]
    pub posts_per_hour: Option<String>,
    /// Replies per rolling hour [env: EXECUTOR_REPLIES_PER_HOUR] [default: 4]
    #[arg(long, global = true, value_name = "N")]
    pub replies_per_hour: Option<String>,
    /// Minimum gap between two actions (jittered) [env: EXECUTOR_MIN_GAP] [default: 60s]
    #[arg(long, global = true, value_name = "DURATION")]
    pub min_gap: Option<String>,
    /// Identity in events and claims [env: EXECUTOR_ID] [default: host name + profile]
    #[arg(long, global = true, value_name = "ID")]
    pub executor_id: Option<String>,
    /// Browser binary [env: CHROME_PATH] [default: searched]
    #[arg(long, global = true, value_name = "PATH")]
    pub chrome_path: Option<String>,
    /// `text` or `json` [env: EXECUTOR_LOG_FORMAT] [default: text]
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Serve Prometheus /metrics and /healthz here [env: EXECUTOR_METRICS_ADDR] [default: off]
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
}

impl GlobalArgs {
    fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        layer.flag("database", self.database.clone());
        layer.flag("browser_mode", self.browser_mode.clone());
        layer.flag("cdp_host", self.cdp_host.clone());
        layer.flag("cdp_port", self.cdp_port.clone());
        layer.flag(
            "allow_remote_cdp",
            self.allow_remote_cdp.then(|| "true".to_string()),
        );
        layer.flag("tick_interval", self.tick_interval.clone());
        layer.flag("tick_timeout", self.tick_timeout.clone());
        layer.flag("max_failures", self.max_failures.clone());
        layer.flag("backoff", self.backoff.clone());
        layer.flag("memory_cap", self.memory_cap.clone());
        layer.flag("site", self.site.clone());
        layer.flag("site_url", self.site_url.clone());
        layer.flag("posts_per_hour", self.posts_per_hour.clone());
        layer.flag("replies_per_hour", self.replies_per_hour.clone());
        layer.flag("min_gap", self.min_gap.clone());
        layer.flag("executor_id", self.executor_id.clone());
        layer.flag("chrome_path", self.chrome_path.clone());
        layer.flag("log_format", self.log_format.clone());
        layer.flag("metrics_addr", self.metrics_addr.clone());
        layer
    }

    /// Resolves the settings from these flags, the process environment and the config file.
    pub fn resolve(&self) -> Result<Settings, settings::SettingsError> {
        settings::resolve(self.profile.clone(), &self.layer(), &|key| {
            std::env::var(key).ok()
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the managed browser (CDP on 127.0.0.1:CDP_PORT, profile <profile>/chrome-profile)
    Chrome(chrome::ChromeArgs),
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
    /// Serve the bundled local test site (x.com-shaped) on 127.0.0.1
    Sandbox(sandbox::SandboxArgs),
    /// The whole system end to end on this machine: sandbox, headless browser, SQLite, posts and replies, proof
    Demo(demo::DemoArgs),
    /// Recent system_events rows
    Events(events::EventsArgs),
    /// Recent ticks, page-count distribution, failure rate, what was published
    Report(report::ReportArgs),
    /// The stability checklist, PASS/FAIL with evidence; exit 0 only when all pass
    Verify(verify::VerifyArgs),
    /// Print a systemd unit or launchd plist that runs the daemon with these settings
    Service(service::ServiceArgs),
}

/// Opens the store for a command, or prints why not and returns the exit code.
pub(crate) async fn open_store(
    settings: &Settings,
) -> Result<std::sync::Arc<dyn crate::store::Store>, i32> {
    crate::store::open(&settings.database).await.map_err(|err| {
        eprintln!("error: cannot open the store {}: {err}", settings.database);
        EXIT_FAILURE
    })
}

/// Parses the command line and runs the command; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            };
        }
    };
    let settings = match cli.global.resolve() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return EXIT_FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Chrome(args) => chrome::run(&settings, &args).await,
            Command::Daemon => daemon::run(settings).await,
            Command::Stop(args) => stop::run(&settings, &args).await,
            Command::Status(args) => status::run(&settings, &args).await,
            Command::Enqueue(args) => enqueue::run(&settings, &args).await,
            Command::Jobs(args) => jobs::run(&settings, &args).await,
            Command::Sandbox(args) => sandbox::run(&args).await,
            Command::Demo(args) => demo::run(&settings, &args).await,
            Command::Events(args) => events::run(&settings, &args).await,
            Command::Report(args) => report::run(&settings, &args).await,
            Command::Verify(args) => verify::run(&settings, &args).await,
            Command::Service(args) => service::run(&settings, &args),
        }
    });
    // Do not wait for blocking tasks still parked on I/O (e.g. a stopped browser's pipe).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}
