//! Settings: one fully resolved, validated struct made from four layers.
//!
//! Precedence (SPEC §1): command-line flags beat environment variables, which beat the optional
//! `<profile>/executor.toml`, which beats the defaults. Each source is read into a [`Layer`] of
//! raw, all-`Option` strings that remembers *where* every value came from, so that a bad value is
//! reported once, in one line, naming the exact setting the operator typed (`CDP_PORT="abc"`,
//! `--tick-interval "soon"`, `executor.toml: max_failures = "x"`), before anything is started.
//!
//! Every setting is declared once, in the `settings!` table below: its `executor.toml` key (the
//! flag is the key with dashes), its environment variable, its help text, its default, how its
//! value is parsed and how it is passed on to a child `executor`. The command-line flags
//! (`cli::GlobalArgs`), the variables read, the keys the config file accepts, `--help` and
//! [`to_env`] are all made from that table, so they cannot disagree. Adding a setting is one
//! entry there plus its field in [`Settings`]; the compiler refuses either without the other.
//!
//! The profile directory is the one setting outside the table: it is resolved first
//! (flag > env > default) because the config file lives inside it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name of the optional config file inside the profile directory.
pub const CONFIG_FILE: &str = "executor.toml";
/// The most of `executor.toml` that is read: a settings file is a few hundred bytes.
pub const CONFIG_MAX_BYTES: u64 = 1024 * 1024;

/// How a setting is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--key VALUE`; the text names the value in `--help`.
    Value(&'static str),
    /// `--key` alone means `true`.
    Switch,
    /// No flag: only the environment and the config file (variables of the original deployment).
    None,
}

/// What a setting is when no source gives it.
enum Fallback<T> {
    /// A value parsed exactly like one the operator typed, so `--help` shows what is used.
    Text(&'static str),
    /// Made while resolving (from the profile directory, or nothing); `shown` describes it in
    /// `--help` ("" shows no default).
    Made {
        shown: &'static str,
        make: fn(&Path) -> T,
    },
}

/// One setting, declared once. `T` is the type of its field in [`Settings`].
struct Def<T> {
    /// The `executor.toml` key; the flag is `--` and the key with dashes.
    key: &'static str,
    env: &'static str,
    flag: Flag,
    help: &'static str,
    default: Fallback<T>,
    /// A valid value other than the default, for the test that every source reads every setting.
    example: &'static str,
    parse: fn(&str) -> Result<T, String>,
    /// The value as its environment variable for a child `executor`; `None` leaves it out.
    show: fn(&T) -> Option<String>,
}

/// What flags, variables, file keys and `--help` need to know of a setting (its `Def` without
/// the types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub key: &'static str,
    pub env: &'static str,
    pub flag: Flag,
    pub help: &'static str,
    /// The default as `--help` shows it; "" when there is none to show.
    pub default: &'static str,
    pub example: &'static str,
}

impl Info {
    /// The flag's name without the leading dashes, e.g. `tick-interval`.
    pub fn flag_name(&self) -> String {
        self.key.replace('_', "-")
    }

    /// The help text with the variable and the default, e.g.
    /// `Posts per rolling hour [env: EXECUTOR_POSTS_PER_HOUR] [default: 2]`.
    pub fn help_line(&self) -> String {
        let mut line = format!("{} [env: {}]", self.help, self.env);
        if !self.default.is_empty() {
            line.push_str(&format!(" [default: {}]", self.default));
        }
        line
    }
}

impl<T> Def<T> {
    const fn info(&self) -> Info {
        Info {
            key: self.key,
            env: self.env,
            flag: self.flag,
            help: self.help,
            default: match self.default {
                Fallback::Text(text) if text.is_empty() => "\"\"",
                Fallback::Text(text) => text,
                Fallback::Made { shown, .. } => shown,
            },
            example: self.example,
        }
    }

    /// The value from the highest layer that has one, else the default.
    fn resolve(&self, layer: &Layer, profile: &Path) -> Result<T, SettingsError> {
        match layer.get(self.key) {
            Some(raw) => (self.parse)(raw.0.trim()).map_err(|reason| invalid(raw, reason)),
            None => match self.default {
                Fallback::Text(text) => (self.parse)(text).map_err(|reason| {
                    // Only a mistake in the table gets here; the tests resolve every default.
                    SettingsError::Invalid {
                        source_name: format!("the default of {}", self.key),
                        value: text.to_string(),
                        reason,
                    }
                }),
                Fallback::Made { make, .. } => Ok(make(profile)),
            },
        }
    }
}

/// The profile directory: lock, STOP switch, log, SQLite store, browser profile. Not a key of
/// the config file, which lives inside it.
pub const PROFILE: Info = Info {
    key: "profile",
    env: "RUNNER_PROFILE_DIR",
    flag: Flag::Value("DIR"),
    help: "Profile directory: lock, STOP switch, log, SQLite store, browser profile",
    default: "./.runner-profile",
    example: "./other-profile",
};

/// Makes, from one entry per setting (`field: Type = Def { … };`), the table [`SETTINGS`], the
/// resolution into [`Settings`] and the environment of a child ([`to_env`]).
macro_rules! settings {
    ($($field:ident: $type:ty = $def:expr;)*) => {
        /// The definitions, one function per field of [`Settings`]. Functions, not constants:
        /// a constant named like a field would turn a closure's `|field|` into a pattern.
        mod defs {
            use super::*;
            $(pub(super) const fn $field() -> Def<$type> { $def })*
        }

        /// Every setting except the profile directory, in `--help` order.
        pub const SETTINGS: &[Info] = &[$(defs::$field().info()),*];

        /// Every field from `layer` or its default, in table order (the first bad value is the
        /// one reported).
        fn resolve_fields(profile: PathBuf, layer: &Layer) -> Result<Settings, SettingsError> {
            Ok(Settings {
                $($field: defs::$field().resolve(layer, &profile)?,)*
                profile,
            })
        }

        /// The environment variables that reproduce `settings`, except the profile directory.
        fn fields_to_env(settings: &Settings, env: &mut Vec<(&'static str, String)>) {
            $(
                let def = defs::$field();
                if let Some(value) = (def.show)(&settings.$field) {
                    env.push((def.env, value));
                }
            )*
        }
    };
}

settings! {
    // First, so that a binary started for another mode says so before anything else.
    execution_mode: String = Def {
        key: "execution_mode",
        env: "EXECUTION_MODE",
        flag: Flag::None,
        help: "Only `executor`: this binary runs the browser work (the original deployment sets it)",
        default: Fallback::Text("executor"),
        example: "executor",
        parse: |value| {
            if value == "executor" {
                Ok(value.to_string())
            } else {
                Err("this binary only runs browser work with EXECUTION_MODE=executor (unset it or set it to `executor`)".into())
            }
        },
        show: |_| None,
    };
    runner_mode: bool = Def {
        key: "runner_mode",
        env: "RUNNER_MODE",
        flag: Flag::None,
        help: "Accepted as true or false and otherwise unused (the original deployment sets it)",
        default: Fallback::Text("true"),
        example: "false",
        parse: parse_bool,
        show: |_| None,
    };
    database: DatabaseUrl = Def {
        key: "database",
        env: "DATABASE_URL",
        flag: Flag::Value("URL"),
        help: "Store: sqlite://PATH or postgres://USER@HOST:PORT/DB",
        default: Fallback::Made {
            shown: "sqlite://<profile>/executor.db",
            make: |profile| DatabaseUrl::Sqlite(profile.join("executor.db")),
        },
        example: "postgres://executor@127.0.0.1:5432/executor",
        parse: parse_database_url,
        show: |database| {
            Some(match database {
                DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
                // With its password: the child must be able to connect.
                DatabaseUrl::Postgres(url) => url.clone(),
            })
        },
    };
    browser_mode: BrowserMode = Def {
        key: "browser_mode",
        env: "RUNNER_BROWSER",
        flag: Flag::Value("MODE"),
        help: "`cdp`: attach to a browser on the CDP port; `launch`: start and own one",
        default: Fallback::Text("cdp"),
        example: "launch",
        parse: |value| match value.to_ascii_lowercase().as_str() {
            "cdp" | "attach" => Ok(BrowserMode::Attach),
            "launch" => Ok(BrowserMode::Launch),
            _ => Err(
                "expected `cdp` (attach to a running browser) or `launch` (start and own one)"
                    .into(),
            ),
        },
        show: |mode| {
            Some(match mode {
                BrowserMode::Attach => "cdp".to_string(),
                BrowserMode::Launch => "launch".to_string(),
            })
        },
    };
    cdp_host: IpAddr = Def {
        key: "cdp_host",
        env: "CDP_HOST",
        flag: Flag::Value("IP"),
        help: "CDP address; only loopback unless --allow-remote-cdp",
        default: Fallback::Text("127.0.0.1"),
        example: "127.0.0.2",
        parse: |value| {
            value
                .parse::<IpAddr>()
                .map_err(|_| "expected an IP address such as 127.0.0.1".into())
        },
        show: |host| Some(host.to_string()),
    };
    cdp_port: u16 = Def {
        key: "cdp_port",
        env: "CDP_PORT",
        flag: Flag::Value("PORT"),
        help: "CDP port on 127.0.0.1 (0: any free port, launch mode)",
        default: Fallback::Text("9222"),
        example: "9333",
        parse: |value| {
            value.parse::<u16>().map_err(|_| {
                "expected a port number 0-65535 (0: any free port, launch mode only)".into()
            })
        },
        show: |port| Some(port.to_string()),
    };
    allow_remote_cdp: bool = Def {
        key: "allow_remote_cdp",
        env: "EXECUTOR_ALLOW_REMOTE_CDP",
        flag: Flag::Switch,
        help: "Allow a CDP address that is not loopback",
        default: Fallback::Text("false"),
        example: "true",
        parse: parse_bool,
        show: |allow| Some(allow.to_string()),
    };
    tick_interval: Duration = Def {
        key: "tick_interval",
        env: "EXECUTOR_TICK_INTERVAL",
        flag: Flag::Value("DURATION"),
        help: "Time between tick starts, e.g. 500ms, 30s, 5m",
        default: Fallback::Text("60s"),
        example: "1500ms",
        parse: parse_positive_duration,
        show: |interval| Some(format_duration(*interval)),
    };
    tick_timeout: Duration = Def {
        key: "tick_timeout",
        env: "EXECUTOR_TICK_TIMEOUT",
        flag: Flag::Value("DURATION"),
        help: "Runtime cap of one tick",
        default: Fallback::Text("300s"),
        example: "2m",
        parse: parse_positive_duration,
        show: |timeout| Some(format_duration(*timeout)),
    };
    max_failures: u32 = Def {
        key: "max_failures",
        env: "EXECUTOR_MAX_FAILURES",
        flag: Flag::Value("N"),
        help: "Consecutive failed ticks before the daemon exits non-zero",
        default: Fallback::Text("5"),
        example: "7",
        parse: |value| {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| "expected a whole number of at least 1".into())
        },
        show: |max| Some(max.to_string()),
    };
    backoff: Vec<Duration> = Def {
        key: "backoff",
        env: "EXECUTOR_BACKOFF",
        flag: Flag::Value("LIST"),
        help: "Backoff schedule after failed ticks",
        default: Fallback::Text("30s,60s,120s,300s,600s"),
        example: "1s,2s,5s",
        parse: |value| {
            let list = value
                .split(',')
                .map(|part| parse_duration(part.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            if list.is_empty() {
                Err("expected a comma-separated list of durations".into())
            } else {
                Ok(list)
            }
        },
        show: |backoff| {
            Some(
                backoff
                    .iter()
                    .map(|b| format_duration(*b))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        },
    };
    memory_cap_bytes: u64 = Def {
        key: "memory_cap",
        env: "EXECUTOR_MEMORY_CAP",
        flag: Flag::Value("SIZE"),
        help: "Memory cap of the browser process tree, e.g. 2GiB",
        default: Fallback::Text("2GiB"),
        example: "512MiB",
        parse: parse_bytes,
        show: |bytes| Some(bytes.to_string()),
    };
    site: String = Def {
        key: "site",
        env: "EXECUTOR_SITE",
        flag: Flag::Value("NAME|FILE"),
        help: "Site definition: `x`, `sandbox`, a TOML file, or `none` (count the queue, act on nothing)",
        default: Fallback::Text("x"),
        example: "sandbox",
        parse: |value| {
            if value.is_empty() {
                Err("expected a site name (`x`, `sandbox`) or a site file".into())
            } else {
                Ok(value.to_string())
            }
        },
        show: |site| Some(site.clone()),
    };
    site_url: Option<String> = Def {
        key: "site_url",
        env: "EXECUTOR_SITE_URL",
        flag: Flag::Value("URL"),
        help: "Base URL of the site",
        default: Fallback::Made {
            shown: "",
            make: |_| None,
        },
        example: "http://127.0.0.1:8080",
        parse: |value| {
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(Some(value.trim_end_matches('/').to_string()))
            } else {
                Err("expected an http:// or https:// URL".into())
            }
        },
        show: |url| url.clone(),
    };
    posts_per_hour: u32 = Def {
        key: "posts_per_hour",
        env: "EXECUTOR_POSTS_PER_HOUR",
        flag: Flag::Value("N"),
        help: "Posts per rolling hour",
        default: Fallback::Text("2"),
        example: "10",
        parse: parse_count,
        show: |count| Some(count.to_string()),
    };
    replies_per_hour: u32 = Def {
        key: "replies_per_hour",
        env: "EXECUTOR_REPLIES_PER_HOUR",
        flag: Flag::Value("N"),
        help: "Replies per rolling hour",
        default: Fallback::Text("4"),
        example: "0",
        parse: parse_count,
        show: |count| Some(count.to_string()),
    };
    min_gap: Duration = Def {
        key: "min_gap",
        env: "EXECUTOR_MIN_GAP",
        flag: Flag::Value("DURATION"),
        help: "Minimum gap between two actions (jittered)",
        default: Fallback::Text("60s"),
        example: "0s",
        parse: parse_duration,
        show: |gap| Some(format_duration(*gap)),
    };
    executor_id: String = Def {
        key: "executor_id",
        env: "EXECUTOR_ID",
        flag: Flag::Value("ID"),
        help: "Identity in events and claims",
        default: Fallback::Made {
            shown: "host name + profile",
            make: default_executor_id,
        },
        example: "executor-7",
        parse: |value| {
            if value.is_empty() || value.len() > 200 {
                Err("expected 1 to 200 characters".into())
            } else {
                Ok(value.to_string())
            }
        },
        show: |id| Some(id.clone()),
    };
    account: String = Def {
        key: "account",
        env: "EXECUTOR_ACCOUNT",
        // `enqueue post|reply` have an `--account` of their own, the job's: clap does not add a
        // global flag to a subcommand that has one of the same name, and hands the value given
        // there (or before the subcommand) to both.
        flag: Flag::Value("NAME"),
        help: "Account to act as; empty: the default account",
        default: Fallback::Text(""),
        example: "second-account",
        parse: |value| {
            if value.chars().count() > 100 {
                Err("expected at most 100 characters".into())
            } else if value.chars().any(char::is_control) {
                Err("expected no control characters".into())
            } else {
                Ok(value.to_string())
            }
        },
        // The default needs no variable (an empty one would read as unset anyway).
        show: |account| (!account.is_empty()).then(|| account.clone()),
    };
    chrome_path: Option<PathBuf> = Def {
        key: "chrome_path",
        env: "CHROME_PATH",
        flag: Flag::Value("PATH"),
        help: "Browser binary",
        default: Fallback::Made {
            shown: "searched",
            make: |_| None,
        },
        example: "/usr/bin/chromium",
        parse: |value| Ok(Some(PathBuf::from(value))),
        show: |path| path.as_ref().map(|path| path.display().to_string()),
    };
    log_format: LogFormat = Def {
        key: "log_format",
        env: "EXECUTOR_LOG_FORMAT",
        flag: Flag::Value("FORMAT"),
        help: "`text` or `json`",
        default: Fallback::Text("text"),
        example: "json",
        parse: |value| match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `text` or `json`".into()),
        },
        show: |format| {
            Some(match format {
                LogFormat::Text => "text".to_string(),
                LogFormat::Json => "json".to_string(),
            })
        },
    };
    allow_remote_metrics: bool = Def {
        key: "allow_remote_metrics",
        env: "EXECUTOR_ALLOW_REMOTE_METRICS",
        flag: Flag::Switch,
        help: "Allow a metrics address that is not loopback (it has no authentication)",
        default: Fallback::Text("false"),
        example: "true",
        parse: parse_bool,
        show: |allow| Some(allow.to_string()),
    };
    metrics_addr: Option<SocketAddr> = Def {
        key: "metrics_addr",
        env: "EXECUTOR_METRICS_ADDR",
        flag: Flag::Value("ADDR"),
        help: "Serve Prometheus /metrics and /healthz here",
        default: Fallback::Text("off"),
        example: "127.0.0.1:9464",
        parse: |value| {
            if matches!(value, "" | "off") {
                return Ok(None);
            }
            value
                .parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| "expected an address such as 127.0.0.1:9464, or `off`".into())
        },
        show: |addr| addr.map(|addr| addr.to_string()),
    };
    stop_env: bool = Def {
        key: "stop_executor",
        env: "STOP_EXECUTOR",
        flag: Flag::None,
        help: "`true`: the STOP switch, like the file <profile>/STOP_EXECUTOR",
        default: Fallback::Text("false"),
        example: "true",
        parse: parse_bool,
        // Never handed on: a child started by this one must not be stopped before it begins.
        show: |_| None,
    };
    ui_addr: SocketAddr = Def {
        key: "ui_addr",
        env: "EXECUTOR_UI_ADDR",
        flag: Flag::Value("ADDR"),
        help: "Where `executor ui` serves the dashboard (port 0: any free port)",
        default: Fallback::Text("127.0.0.1:9465"),
        example: "127.0.0.1:9466",
        parse: |value| {
            value
                .parse::<SocketAddr>()
                .map_err(|_| "expected an address such as 127.0.0.1:9465".into())
        },
        show: |addr| Some(addr.to_string()),
    };
    allow_remote_ui: bool = Def {
        key: "allow_remote_ui",
        env: "EXECUTOR_ALLOW_REMOTE_UI",
        flag: Flag::Switch,
        help: "Allow the dashboard on an address that is not loopback (its token then crosses the network: prefer an SSH tunnel)",
        default: Fallback::Text("false"),
        example: "true",
        parse: parse_bool,
        show: |allow| Some(allow.to_string()),
    };
    ui: bool = Def {
        key: "ui",
        env: "EXECUTOR_UI",
        flag: Flag::Switch,
        help: "The daemon also serves the dashboard, behind its token: on --metrics-addr when given, else on --ui-addr",
        default: Fallback::Text("false"),
        example: "true",
        parse: parse_bool,
        show: |ui| Some(ui.to_string()),
    };
    // 5%: a healthy daemon fails no tick at all; a browser restart or a network blip costs one
    // or two ticks in an hour of 60, and still passes. A systematic fault (logged out, the site
    // down, a browser that keeps dying) fails every tick it touches and goes well above it.
    max_failure_pct: f64 = Def {
        key: "max_failure_rate",
        env: "EXECUTOR_MAX_FAILURE_RATE",
        flag: Flag::Value("RATE"),
        help: "`verify`: the highest share of failed ticks that still passes, as 5% or 0.05 (a blip passes, a systematic fault does not)",
        default: Fallback::Text("5%"),
        example: "12.5%",
        parse: parse_rate,
        show: |pct| Some(format!("{pct}%")),
    };
}

/// A bad setting: always one line naming the source of the value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{source_name}={}: {reason}", crate::quote::quoted(.value))]
    Invalid {
        source_name: String,
        value: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
}

/// Where a raw value came from; shown in error messages exactly as the operator would type it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(String),
    Env(String),
    File(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "--{}", name.replace('_', "-")),
            Origin::Env(name) => write!(f, "{name}"),
            Origin::File(key) => write!(f, "{CONFIG_FILE}: {key}"),
        }
    }
}

/// One source's raw values by setting key. All-`Option` by construction: a key that is absent
/// simply falls through to the next layer.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layer {
    /// Sets `key` (a key of [`SETTINGS`]) from a command-line flag.
    pub fn flag(&mut self, key: &'static str, value: Option<String>) {
        if let Some(value) = value {
            self.values
                .insert(key, (value, Origin::Flag(key.to_string())));
        }
    }

    /// Reads every known environment variable through `env` (injected so tests need not touch
    /// the process environment).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
        let mut layer = Layer::default();
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                // An empty variable is treated as unset, as shells commonly export `X=`.
                if !value.is_empty() {
                    layer
                        .values
                        .insert(setting.key, (value, Origin::Env(setting.env.to_string())));
                }
            }
        }
        layer
    }

    /// Parses `<profile>/executor.toml`; a missing file is an empty layer. Read as a file of the
    /// profile (see `files`): a regular file of at most [`CONFIG_MAX_BYTES`], not a link.
    pub fn from_file(path: &Path) -> Result<Layer, SettingsError> {
        let text = match crate::files::read_text_limited(
            path,
            CONFIG_MAX_BYTES,
            crate::files::Links::Refuse,
        ) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Layer::default()),
            Err(err) => {
                return Err(SettingsError::ConfigFile {
                    path: path.to_path_buf(),
                    reason: err.to_string(),
                })
            }
        };
        let table: toml::Table =
            text.parse()
                .map_err(|err: toml::de::Error| SettingsError::ConfigFile {
                    path: path.to_path_buf(),
                    reason: toml_error(&text, &err),
                })?;
        let mut layer = Layer::default();
        for (key, value) in table {
            let Some(known) = SETTINGS.iter().find(|setting| setting.key == key) else {
                return Err(SettingsError::ConfigFile {
                    path: path.to_path_buf(),
                    reason: format!("unknown setting {}", crate::quote::quoted(&key)),
                });
            };
            let raw = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| match item {
                        toml::Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(SettingsError::ConfigFile {
                        path: path.to_path_buf(),
                        reason: format!(
                            "`{key}` has an unsupported value {}",
                            crate::quote::quoted(&format!("{other:?}"))
                        ),
                    })
                }
            };
            layer.values.insert(known.key, (raw, Origin::File(key)));
        }
        Ok(layer)
    }

    /// `self` over `lower`: keys present here win.
    fn over(mut self, lower: &Layer) -> Layer {
        for (key, value) in &lower.values {
            self.values.entry(key).or_insert_with(|| value.clone());
        }
        self
    }

    pub(crate) fn get(&self, key: &str) -> Option<&(String, Origin)> {
        self.values.get(key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserMode {
    /// Attach to a browser already listening on the CDP port.
    Attach,
    /// Start and own the managed browser.
    Launch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // Never print a password that may be in the URL.
            DatabaseUrl::Postgres(url) => write!(f, "{}", redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}://{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// The fully resolved settings every command runs with. Each field but `profile` is declared,
/// with its sources and default, in the `settings!` table above.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: PathBuf,
    /// Always `executor`: the one mode this binary runs.
    pub execution_mode: String,
    /// `RUNNER_MODE` of the original deployment; read and validated, used by nothing.
    pub runner_mode: bool,
    pub browser_mode: BrowserMode,
    pub cdp_host: IpAddr,
    /// 0 means "any free port" (launch mode only; the real port is read from the browser).
    pub cdp_port: u16,
    pub allow_remote_cdp: bool,
    pub database: DatabaseUrl,
    pub tick_interval: Duration,
    pub tick_timeout: Duration,
    pub max_failures: u32,
    pub backoff: Vec<Duration>,
    pub memory_cap_bytes: u64,
    pub site: String,
    pub site_url: Option<String>,
    pub posts_per_hour: u32,
    pub replies_per_hour: u32,
    pub min_gap: Duration,
    pub executor_id: String,
    /// The account to act as; empty means the default account.
    pub account: String,
    pub chrome_path: Option<PathBuf>,
    pub log_format: LogFormat,
    pub metrics_addr: Option<SocketAddr>,
    pub allow_remote_metrics: bool,
    /// `STOP_EXECUTOR=true` in the environment (SPEC §2).
    pub stop_env: bool,
    /// Where `executor ui` listens.
    pub ui_addr: SocketAddr,
    pub allow_remote_ui: bool,
    /// The daemon serves the dashboard beside `/metrics`.
    pub ui: bool,
    /// `verify`: the failure rate (percent of ticks, 0–100) above which it fails.
    pub max_failure_pct: f64,
}

impl Settings {
    pub fn lock_path(&self) -> PathBuf {
        self.profile.join("executor.pid")
    }
    pub fn stop_path(&self) -> PathBuf {
        self.profile.join("STOP_EXECUTOR")
    }
    pub fn log_path(&self) -> PathBuf {
        self.profile.join("executor.log")
    }
    pub fn spool_path(&self) -> PathBuf {
        self.profile.join("spool").join("events.jsonl")
    }
    pub fn chrome_profile_dir(&self) -> PathBuf {
        self.profile.join("chrome-profile")
    }
    pub fn chrome_identity_path(&self) -> PathBuf {
        self.profile.join("chrome.json")
    }
    pub fn backoff_for(&self, consecutive_failures: u32) -> Duration {
        if consecutive_failures == 0 || self.backoff.is_empty() {
            return Duration::ZERO;
        }
        let index = (consecutive_failures as usize - 1).min(self.backoff.len() - 1);
        self.backoff[index]
    }
}

/// Resolves settings from flags, the environment and the profile's config file.
///
/// `flags` holds only what was given on the command line; `profile_flag` is `--profile`.
pub fn resolve(
    profile_flag: Option<PathBuf>,
    flags: &Layer,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, SettingsError> {
    let profile = match profile_flag {
        Some(path) => path,
        None => match env(PROFILE.env).filter(|v| !v.is_empty()) {
            Some(value) => PathBuf::from(value),
            None => PathBuf::from(PROFILE.default),
        },
    };
    if profile.exists() && !profile.is_dir() {
        return Err(SettingsError::Invalid {
            source_name: format!("--{} / {}", PROFILE.flag_name(), PROFILE.env),
            value: profile.display().to_string(),
            reason: "exists and is not a directory".into(),
        });
    }
    let file = Layer::from_file(&profile.join(CONFIG_FILE))?;
    let env_layer = Layer::from_env(env);
    let merged = flags.clone().over(&env_layer).over(&file);
    let settings = resolve_fields(profile, &merged)?;
    check_combinations(&settings, &merged)?;
    Ok(settings)
}

fn invalid(raw: &(String, Origin), reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        source_name: raw.1.to_string(),
        value: raw.0.clone(),
        reason: reason.into(),
    }
}

/// The rules that involve two settings; the error names the one the operator gave.
fn check_combinations(settings: &Settings, layer: &Layer) -> Result<(), SettingsError> {
    if !settings.cdp_host.is_loopback() && !settings.allow_remote_cdp {
        if let Some(raw) = layer.get(defs::cdp_host().key) {
            return Err(invalid(
                raw,
                "CDP is only used on loopback; pass --allow-remote-cdp to connect elsewhere",
            ));
        }
    }
    if let Some(addr) = settings.metrics_addr {
        if !addr.ip().is_loopback() && !settings.allow_remote_metrics {
            if let Some(raw) = layer.get(defs::metrics_addr().key) {
                return Err(invalid(
                    raw,
                    "metrics are served on loopback only (they have no authentication); pass --allow-remote-metrics to listen elsewhere",
                ));
            }
        }
    }
    if !settings.ui_addr.ip().is_loopback() && !settings.allow_remote_ui {
        if let Some(raw) = layer.get(defs::ui_addr().key) {
            return Err(invalid(
                raw,
                "the dashboard listens on loopback only; pass --allow-remote-ui to listen elsewhere (or reach it through an SSH tunnel)",
            ));
        }
    }
    if let (true, Some(addr)) = (settings.ui, settings.metrics_addr) {
        if !addr.ip().is_loopback() && !settings.allow_remote_ui {
            if let Some(raw) = layer.get(defs::ui().key) {
                return Err(invalid(
                    raw,
                    "the metrics address is not loopback: pass --allow-remote-ui to serve the dashboard there too",
                ));
            }
        }
    }
    if settings.cdp_port == 0 && settings.browser_mode == BrowserMode::Attach {
        if let Some(raw) = layer.get(defs::cdp_port().key) {
            return Err(invalid(
                raw,
                "port 0 only makes sense with RUNNER_BROWSER=launch",
            ));
        }
    }
    Ok(())
}

/// A TOML parse error as one bounded line that says where: `line L, column C: message` (the
/// parser's message may quote the file, so it is cut and kept on one line).
pub fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = crate::quote::single_line(err.message(), crate::quote::MESSAGE_CHARS);
    let Some(span) = err.span() else {
        return message;
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    format!("line {line}, column {column}: {message}")
}

fn default_executor_id(profile: &Path) -> String {
    let host = crate::fleet::host_name();
    let profile = std::path::absolute(profile).unwrap_or_else(|_| profile.to_path_buf());
    format!("{host}:{}", profile.display())
}

pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn parse_count(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .map_err(|_| "expected a whole number (0 pauses the lane)".into())
}

/// A share as a percentage (`5%`, `0.5%`) or a fraction (`0.05`), from 0 to 100 %; returns the
/// percentage. A bare number above 1 is refused rather than guessed at: `5` could mean 5 % or
/// 500 %.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    let expected = "expected a percentage such as 5% or a fraction such as 0.05";
    let (number, scale) = match value.strip_suffix('%') {
        Some(number) => (number.trim(), 1.0),
        None => (value, 100.0),
    };
    let parsed: f64 = number.parse().map_err(|_| expected.to_string())?;
    if !parsed.is_finite() || parsed < 0.0 {
        return Err(expected.into());
    }
    let pct = parsed * scale;
    if pct > 100.0 {
        return Err(if scale == 1.0 {
            "expected at most 100%".into()
        } else {
            format!("a bare number is a fraction from 0 to 1; {expected}")
        });
    }
    Ok(pct)
}

/// The longest duration any setting or argument takes: a year. Longer ones are mistakes (and
/// past this, adding them to the clock could overflow it).
pub const LONGEST_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Durations as `500ms`, `30s`, `5m`, `1h`, `1m30s`; a bare number is seconds. At most
/// [`LONGEST_DURATION`].
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if value.is_empty() {
        return Err("expected a duration such as 500ms, 30s or 5m".into());
    }
    let too_long = || "longer than a year (366d); expected a duration such as 500ms, 30s or 5m";
    let duration = match value.parse::<u64>() {
        Ok(seconds) if seconds > LONGEST_DURATION.as_secs() => return Err(too_long().into()),
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(value).map_err(|err| match err {
            humantime::DurationError::NumberOverflow => too_long().to_string(),
            _ => "expected a duration such as 500ms, 30s or 5m".to_string(),
        })?,
    };
    if duration > LONGEST_DURATION {
        return Err(too_long().into());
    }
    Ok(duration)
}

fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(duration)
    }
}

/// Sizes as `2GiB`, `512MiB`, `1.5GB`, `1048576` (bytes).
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let err = || "expected a size such as 2GiB or 512MiB".to_string();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| err())?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(err()),
    };
    let bytes = number * multiplier;
    if !(bytes.is_finite() && (1.0..1e15).contains(&bytes)) {
        return Err(err());
    }
    Ok(bytes as u64)
}

/// Takes `pgbouncer=true` (the flag users of other PostgreSQL clients know for a transaction-mode
/// pooler) out of the URL's query: the driver does not know it.
pub fn without_pooler_flag(url: &str) -> (String, bool) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), false);
    };
    let mut pooler = false;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some(("pgbouncer", value)) => {
                pooler = matches!(value, "true" | "1" | "yes");
                false
            }
            _ => !pair.is_empty(),
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, pooler)
}

fn parse_database_url(value: &str) -> Result<DatabaseUrl, String> {
    if let Some(path) = value.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("expected sqlite://PATH".into());
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if let Some(path) = value.strip_prefix("sqlite:") {
        if path.is_empty() {
            return Err("expected sqlite://PATH".into());
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        without_pooler_flag(value)
            .0
            .parse::<tokio_postgres::Config>()
            .map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
        return Ok(DatabaseUrl::Postgres(value.to_string()));
    }
    Err("expected sqlite://PATH or postgres://USER@HOST:PORT/DB".into())
}

/// The settings as environment variables, for a child `executor` that must run with exactly
/// these (e.g. `verify --run` starting the daemon).
pub fn to_env(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut env = vec![(PROFILE.env, settings.profile.display().to_string())];
    fields_to_env(settings, &mut env);
    env
}

pub fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn temp_profile() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("executor-settings-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn defaults_match_the_spec() {
        let profile = temp_profile();
        let s = resolve(Some(profile.clone()), &Layer::default(), &env_of(&[])).expect("defaults");
        assert_eq!(s.browser_mode, BrowserMode::Attach);
        assert_eq!(s.cdp_port, 9222);
        assert_eq!(s.tick_interval, Duration::from_secs(60));
        assert_eq!(s.tick_timeout, Duration::from_secs(300));
        assert_eq!(s.max_failures, 5);
        assert_eq!(s.backoff_for(1), Duration::from_secs(30));
        assert_eq!(s.backoff_for(5), Duration::from_secs(600));
        assert_eq!(s.backoff_for(9), Duration::from_secs(600));
        assert_eq!(s.memory_cap_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!(s.database, DatabaseUrl::Sqlite(profile.join("executor.db")));
        assert_eq!((s.posts_per_hour, s.replies_per_hour), (2, 4));
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let profile = temp_profile();
        std::fs::write(
            profile.join(CONFIG_FILE),
            "cdp_port = 9000\ntick_interval = \"5s\"\nmax_failures = 7\n",
        )
        .expect("write config");
        let env = env_of(&[("CDP_PORT", "9100"), ("EXECUTOR_TICK_INTERVAL", "6s")]);
        let mut flags = Layer::default();
        flags.flag("cdp_port", Some("9200".into()));
        let s = resolve(Some(profile), &flags, &env).expect("resolve");
        assert_eq!(s.cdp_port, 9200);
        assert_eq!(s.tick_interval, Duration::from_secs(6));
        assert_eq!(s.max_failures, 7);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let profile = temp_profile();
        let err = resolve(
            Some(profile),
            &Layer::default(),
            &env_of(&[("CDP_PORT", "abc")]),
        )
        .expect_err("must fail");
        let line = err.to_string();
        assert!(line.starts_with("CDP_PORT=\"abc\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn unknown_browser_mode_and_bad_duration_are_rejected() {
        let profile = temp_profile();
        let err = resolve(
            Some(profile.clone()),
            &Layer::default(),
            &env_of(&[("RUNNER_BROWSER", "firefox")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("RUNNER_BROWSER"));
        let mut flags = Layer::default();
        flags.flag("tick_interval", Some("soon".into()));
        let err = resolve(Some(profile), &flags, &env_of(&[])).expect_err("must fail");
        assert!(
            err.to_string().starts_with("--tick-interval=\"soon\""),
            "{err}"
        );
    }

    #[test]
    fn original_deployment_environment_works_as_written() {
        let profile = temp_profile();
        let env = env_of(&[
            ("EXECUTION_MODE", "executor"),
            ("RUNNER_MODE", "true"),
            ("RUNNER_BROWSER", "cdp"),
            ("RUNNER_PROFILE_DIR", profile.to_str().expect("utf8")),
        ]);
        let s = resolve(None, &Layer::default(), &env).expect("resolve");
        assert_eq!(s.profile, profile);
        assert_eq!(s.browser_mode, BrowserMode::Attach);
    }

    #[test]
    fn other_execution_mode_is_refused() {
        let profile = temp_profile();
        let err = resolve(
            Some(profile),
            &Layer::default(),
            &env_of(&[("EXECUTION_MODE", "planner")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("EXECUTION_MODE"));
    }

    #[test]
    fn remote_cdp_needs_explicit_permission() {
        let profile = temp_profile();
        let err = resolve(
            Some(profile.clone()),
            &Layer::default(),
            &env_of(&[("CDP_HOST", "10.1.2.3")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().contains("--allow-remote-cdp"));
        let env = env_of(&[
            ("CDP_HOST", "10.1.2.3"),
            ("EXECUTOR_ALLOW_REMOTE_CDP", "true"),
        ]);
        assert!(resolve(Some(profile), &Layer::default(), &env).is_ok());
    }

    #[test]
    fn remote_metrics_need_explicit_permission() {
        let profile = temp_profile();
        for addr in ["0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464"] {
            let err = resolve(
                Some(profile.clone()),
                &Layer::default(),
                &env_of(&[("EXECUTOR_METRICS_ADDR", addr)]),
            )
            .expect_err(addr);
            assert!(err.to_string().contains("--allow-remote-metrics"), "{err}");
            assert!(err.to_string().contains("EXECUTOR_METRICS_ADDR"), "{err}");
            let env = env_of(&[
                ("EXECUTOR_METRICS_ADDR", addr),
                ("EXECUTOR_ALLOW_REMOTE_METRICS", "true"),
            ]);
            assert!(resolve(Some(profile.clone()), &Layer::default(), &env).is_ok());
        }
        for addr in ["127.0.0.1:9464", "[::1]:9464"] {
            let env = env_of(&[("EXECUTOR_METRICS_ADDR", addr)]);
            assert!(resolve(Some(profile.clone()), &Layer::default(), &env).is_ok());
        }
    }

    #[test]
    fn bad_database_url_and_unknown_file_key_are_one_line() {
        let profile = temp_profile();
        let err = resolve(
            Some(profile.clone()),
            &Layer::default(),
            &env_of(&[("DATABASE_URL", "mysql://x")]),
        )
        .expect_err("must fail");
        assert!(err.to_string().starts_with("DATABASE_URL="));
        std::fs::write(profile.join(CONFIG_FILE), "tick_intervall = \"5s\"\n").expect("write");
        let err =
            resolve(Some(profile.clone()), &Layer::default(), &env_of(&[])).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("unknown setting \"tick_intervall\""),
            "{err}"
        );
        // A syntax error says where it is.
        std::fs::write(
            profile.join(CONFIG_FILE),
            "tick_interval = \"5s\"\nmax_failures = 3 3\n",
        )
        .expect("write");
        let err = resolve(Some(profile), &Layer::default(), &env_of(&[])).expect_err("must fail");
        assert!(err.to_string().contains("line 2, column 16"), "{err}");
        assert_eq!(err.to_string().lines().count(), 1, "{err}");
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        for huge in [
            "18446744073709551615",
            "99999999h",
            "367d",
            "1000000000000000000000s",
        ] {
            let err = parse_duration(huge).expect_err(huge);
            assert!(err.contains("longer than a year"), "{huge}: {err}");
        }
        assert_eq!(parse_duration("366d"), Ok(LONGEST_DURATION));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn settings_survive_the_trip_through_the_environment() {
        let profile = temp_profile();
        let mut flags = Layer::default();
        flags.flag("browser_mode", Some("launch".into()));
        flags.flag("tick_interval", Some("1500ms".into()));
        flags.flag("backoff", Some("1s,2s".into()));
        flags.flag("site_url", Some("http://127.0.0.1:9".into()));
        flags.flag("account", Some("second".into()));
        let original = resolve(Some(profile.clone()), &flags, &env_of(&[])).expect("resolve");
        let env: BTreeMap<String, String> = to_env(&original)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let again =
            resolve(None, &Layer::default(), &|k| env.get(k).cloned()).expect("resolve again");
        assert_eq!(format!("{original:?}"), format!("{again:?}"));
    }

    #[test]
    fn account_is_empty_by_default_and_validated() {
        let profile = temp_profile();
        let account = |value: &str| {
            resolve(
                Some(profile.clone()),
                &Layer::default(),
                &env_of(&[("EXECUTOR_ACCOUNT", value)]),
            )
            .map(|s| s.account)
        };
        let default = resolve(Some(profile.clone()), &Layer::default(), &env_of(&[]));
        assert_eq!(default.expect("defaults").account, "");
        assert_eq!(account("alice").expect("a name"), "alice");
        let hundred = "é".repeat(100);
        assert_eq!(account(&hundred).expect("100 characters"), hundred);
        let err = account(&"a".repeat(101)).expect_err("101 characters");
        assert!(err.to_string().starts_with("EXECUTOR_ACCOUNT="), "{err}");
        assert!(err.to_string().contains("at most 100 characters"), "{err}");
        let err = account("a\tb").expect_err("a tab");
        assert!(err.to_string().contains("no control characters"), "{err}");
        let err = account("a\u{7f}b").expect_err("DEL");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn failure_rates_parse_as_percentages_or_fractions() {
        assert_eq!(parse_rate("5%"), Ok(5.0));
        assert_eq!(parse_rate("0.5 %"), Ok(0.5));
        assert_eq!(parse_rate("0.05"), Ok(5.0));
        assert_eq!(parse_rate("1"), Ok(100.0));
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("100%"), Ok(100.0));
        for bad in ["5", "101%", "-1%", "lots", "NaN", "inf%", "%", ""] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_rate("5").expect_err("5").contains("fraction"));
        let profile = temp_profile();
        let s = resolve(Some(profile.clone()), &Layer::default(), &env_of(&[])).expect("defaults");
        assert_eq!(s.max_failure_pct, 5.0);
        let err = resolve(
            Some(profile),
            &Layer::default(),
            &env_of(&[("EXECUTOR_MAX_FAILURE_RATE", "20")]),
        )
        .expect_err("20 is ambiguous");
        assert!(
            err.to_string()
                .starts_with("EXECUTOR_MAX_FAILURE_RATE=\"20\""),
            "{err}"
        );
    }

    #[test]
    fn the_pooler_flag_is_taken_out_of_the_url() {
        assert_eq!(
            without_pooler_flag("postgres://u@h/db?pgbouncer=true&sslmode=disable"),
            ("postgres://u@h/db?sslmode=disable".into(), true)
        );
        assert_eq!(
            without_pooler_flag("postgres://u@h/db?pgbouncer=true"),
            ("postgres://u@h/db".into(), true)
        );
        assert_eq!(
            without_pooler_flag("postgres://u@h/db"),
            ("postgres://u@h/db".into(), false)
        );
        assert!(parse_database_url("postgres://u@h/db?pgbouncer=true").is_ok());
    }

    #[test]
    fn postgres_password_is_never_displayed() {
        let url = DatabaseUrl::Postgres("postgres://me:secret@db:5432/x".into());
        assert_eq!(url.to_string(), "postgres://me:***@db:5432/x");
    }
}
