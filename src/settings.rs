//! Settings: one fully resolved, validated struct made from four layers.
//!
//! Precedence (SPEC §1): command-line flags beat environment variables, which beat the optional
//! `<profile>/executor.toml`, which beats the defaults. Each source is read into a [`Layer`] of
//! raw, all-`Option` strings that remembers *where* every value came from, so that a bad value is
//! reported once, in one line, naming the exact setting the operator typed (`CDP_PORT="abc"`,
//! `--tick-interval "soon"`, `executor.toml: max_failures = "x"`), before anything is started.
//!
//! The profile directory is resolved first (flag > env > default) because the config file lives
//! inside it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name of the optional config file inside the profile directory.
pub const CONFIG_FILE: &str = "executor.toml";

/// Every setting of SPEC §1, by its config-file key; the flag is `--key-with-dashes`, the
/// environment variable is given here.
const SETTINGS: &[(&str, &str)] = &[
    ("browser_mode", "RUNNER_BROWSER"),
    ("cdp_host", "CDP_HOST"),
    ("cdp_port", "CDP_PORT"),
    ("allow_remote_cdp", "EXECUTOR_ALLOW_REMOTE_CDP"),
    ("database", "DATABASE_URL"),
    ("tick_interval", "EXECUTOR_TICK_INTERVAL"),
    ("tick_timeout", "EXECUTOR_TICK_TIMEOUT"),
    ("max_failures", "EXECUTOR_MAX_FAILURES"),
    ("backoff", "EXECUTOR_BACKOFF"),
    ("memory_cap", "EXECUTOR_MEMORY_CAP"),
    ("site", "EXECUTOR_SITE"),
    ("site_url", "EXECUTOR_SITE_URL"),
    ("posts_per_hour", "EXECUTOR_POSTS_PER_HOUR"),
    ("replies_per_hour", "EXECUTOR_REPLIES_PER_HOUR"),
    ("min_gap", "EXECUTOR_MIN_GAP"),
    ("executor_id", "EXECUTOR_ID"),
    ("chrome_path", "CHROME_PATH"),
    ("log_format", "EXECUTOR_LOG_FORMAT"),
    ("metrics_addr", "EXECUTOR_METRICS_ADDR"),
    ("execution_mode", "EXECUTION_MODE"),
    ("runner_mode", "RUNNER_MODE"),
    ("stop_executor", "STOP_EXECUTOR"),
];

/// A bad setting: always one line naming the source of the value.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{source_name}={value:?}: {reason}")]
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
        for (key, var) in SETTINGS {
            if let Some(value) = env(var) {
                // An empty variable is treated as unset, as shells commonly export `X=`.
                if !value.is_empty() {
                    layer
                        .values
                        .insert(key, (value, Origin::Env(var.to_string())));
                }
            }
        }
        layer
    }

    /// Parses `<profile>/executor.toml`; a missing file is an empty layer.
    pub fn from_file(path: &Path) -> Result<Layer, SettingsError> {
        let text = match std::fs::read_to_string(path) {
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
                    reason: err.message().to_string(),
                })?;
        let mut layer = Layer::default();
        for (key, value) in table {
            let Some((known, _)) = SETTINGS.iter().find(|(k, _)| *k == key) else {
                return Err(SettingsError::ConfigFile {
                    path: path.to_path_buf(),
                    reason: format!("unknown setting `{key}`"),
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
                        reason: format!("`{key}` has an unsupported value {other:?}"),
                    })
                }
            };
            layer.values.insert(known, (raw, Origin::File(key)));
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

    fn get(&self, key: &str) -> Option<&(String, Origin)> {
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

/// The fully resolved settings every command runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: PathBuf,
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
    pub chrome_path: Option<PathBuf>,
    pub log_format: LogFormat,
    pub metrics_addr: Option<SocketAddr>,
    /// `STOP_EXECUTOR=true` in the environment (SPEC §2).
    pub stop_env: bool,
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
        None => match env("RUNNER_PROFILE_DIR").filter(|v| !v.is_empty()) {
            Some(value) => PathBuf::from(value),
            None => PathBuf::from("./.runner-profile"),
        },
    };
    if profile.exists() && !profile.is_dir() {
        return Err(SettingsError::Invalid {
            source_name: "--profile / RUNNER_PROFILE_DIR".into(),
            value: profile.display().to_string(),
            reason: "exists and is not a directory".into(),
        });
    }
    let file = Layer::from_file(&profile.join(CONFIG_FILE))?;
    let env_layer = Layer::from_env(env);
    let merged = flags.clone().over(&env_layer).over(&file);
    build(profile, &merged)
}

fn invalid(raw: &(String, Origin), reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        source_name: raw.1.to_string(),
        value: raw.0.clone(),
        reason: reason.into(),
    }
}

fn build(profile: PathBuf, layer: &Layer) -> Result<Settings, SettingsError> {
    // A helper that parses one key with `parse`, or returns `default`.
    fn field<T>(
        layer: &Layer,
        key: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, SettingsError> {
        match layer.get(key) {
            None => Ok(default),
            Some(raw) => parse(raw.0.trim()).map_err(|reason| invalid(raw, reason)),
        }
    }

    if let Some(raw) = layer.get("execution_mode") {
        if raw.0 != "executor" {
            return Err(invalid(
                raw,
                "this binary only runs browser work with EXECUTION_MODE=executor (unset it or set it to `executor`)",
            ));
        }
    }
    field(layer, "runner_mode", true, parse_bool)?;

    let browser_mode = field(layer, "browser_mode", BrowserMode::Attach, |v| {
        match v.to_ascii_lowercase().as_str() {
            "cdp" | "attach" => Ok(BrowserMode::Attach),
            "launch" => Ok(BrowserMode::Launch),
            _ => Err(
                "expected `cdp` (attach to a running browser) or `launch` (start and own one)"
                    .into(),
            ),
        }
    })?;
    let allow_remote_cdp = field(layer, "allow_remote_cdp", false, parse_bool)?;
    let cdp_host = field(layer, "cdp_host", IpAddr::from([127, 0, 0, 1]), |v| {
        v.parse::<IpAddr>()
            .map_err(|_| "expected an IP address such as 127.0.0.1".into())
    })?;
    if !cdp_host.is_loopback() && !allow_remote_cdp {
        if let Some(raw) = layer.get("cdp_host") {
            return Err(invalid(
                raw,
                "CDP is only used on loopback; pass --allow-remote-cdp to connect elsewhere",
            ));
        }
    }
    let cdp_port = field(layer, "cdp_port", 9222u16, |v| {
        v.parse::<u16>().map_err(|_| {
            "expected a port number 0-65535 (0: any free port, launch mode only)".into()
        })
    })?;
    if cdp_port == 0 && browser_mode == BrowserMode::Attach {
        if let Some(raw) = layer.get("cdp_port") {
            return Err(invalid(
                raw,
                "port 0 only makes sense with RUNNER_BROWSER=launch",
            ));
        }
    }
    let default_db = DatabaseUrl::Sqlite(profile.join("executor.db"));
    let database = field(layer, "database", default_db, parse_database_url)?;
    let tick_interval = field(
        layer,
        "tick_interval",
        Duration::from_secs(60),
        parse_positive_duration,
    )?;
    let tick_timeout = field(
        layer,
        "tick_timeout",
        Duration::from_secs(300),
        parse_positive_duration,
    )?;
    let max_failures = field(layer, "max_failures", 5u32, |v| {
        v.parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| "expected a whole number of at least 1".into())
    })?;
    let default_backoff = [30, 60, 120, 300, 600].map(Duration::from_secs).to_vec();
    let backoff = field(layer, "backoff", default_backoff, |v| {
        v.split(',')
            .map(|part| parse_duration(part.trim()))
            .collect::<Result<Vec<_>, _>>()
            .and_then(|list| {
                if list.is_empty() {
                    Err("expected a comma-separated list of durations".into())
                } else {
                    Ok(list)
                }
            })
    })?;
    let memory_cap_bytes = field(layer, "memory_cap", 2 * 1024 * 1024 * 1024, parse_bytes)?;
    let site = field(layer, "site", "x".to_string(), |v| {
        if v.is_empty() {
            Err("expected a site name (`x`, `sandbox`) or a site file".into())
        } else {
            Ok(v.to_string())
        }
    })?;
    let site_url = field(layer, "site_url", None, |v| {
        if v.starts_with("http://") || v.starts_with("https://") {
            Ok(Some(v.trim_end_matches('/').to_string()))
        } else {
            Err("expected an http:// or https:// URL".into())
        }
    })?;
    let posts_per_hour = field(layer, "posts_per_hour", 2u32, parse_count)?;
    let replies_per_hour = field(layer, "replies_per_hour", 4u32, parse_count)?;
    let min_gap = field(layer, "min_gap", Duration::from_secs(60), parse_duration)?;
    let executor_id = field(layer, "executor_id", default_executor_id(&profile), |v| {
        if v.is_empty() || v.len() > 200 {
            Err("expected 1 to 200 characters".into())
        } else {
            Ok(v.to_string())
        }
    })?;
    let chrome_path = field(layer, "chrome_path", None, |v| Ok(Some(PathBuf::from(v))))?;
    let log_format = field(layer, "log_format", LogFormat::Text, |v| match v {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".into()),
    })?;
    let metrics_addr = field(layer, "metrics_addr", None, |v| {
        if matches!(v, "" | "off") {
            return Ok(None);
        }
        v.parse::<SocketAddr>()
            .map(Some)
            .map_err(|_| "expected an address such as 127.0.0.1:9464, or `off`".into())
    })?;
    let stop_env = field(layer, "stop_executor", false, parse_bool)?;

    Ok(Settings {
        profile,
        browser_mode,
        cdp_host,
        cdp_port,
        allow_remote_cdp,
        database,
        tick_interval,
        tick_timeout,
        max_failures,
        backoff,
        memory_cap_bytes,
        site,
        site_url,
        posts_per_hour,
        replies_per_hour,
        min_gap,
        executor_id,
        chrome_path,
        log_format,
        metrics_addr,
        stop_env,
    })
}

fn default_executor_id(profile: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
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

/// Durations as `500ms`, `30s`, `5m`, `1h`, `1m30s`; a bare number is seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if value.is_empty() {
        return Err("expected a duration such as 500ms, 30s or 5m".into());
    }
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value)
        .map_err(|_| "expected a duration such as 500ms, 30s or 5m".into())
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
        value
            .parse::<tokio_postgres::Config>()
            .map_err(|err| format!("not a valid PostgreSQL URL: {err}"))?;
        return Ok(DatabaseUrl::Postgres(value.to_string()));
    }
    Err("expected sqlite://PATH or postgres://USER@HOST:PORT/DB".into())
}

/// The settings as environment variables, for a child `executor` that must run with exactly
/// these (e.g. `verify --run` starting the daemon).
pub fn to_env(settings: &Settings) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("RUNNER_PROFILE_DIR", settings.profile.display().to_string()),
        (
            "RUNNER_BROWSER",
            match settings.browser_mode {
                BrowserMode::Attach => "cdp".to_string(),
                BrowserMode::Launch => "launch".to_string(),
            },
        ),
        ("CDP_HOST", settings.cdp_host.to_string()),
        ("CDP_PORT", settings.cdp_port.to_string()),
        (
            "EXECUTOR_ALLOW_REMOTE_CDP",
            settings.allow_remote_cdp.to_string(),
        ),
        (
            "DATABASE_URL",
            match &settings.database {
                DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
                DatabaseUrl::Postgres(url) => url.clone(),
            },
        ),
        (
            "EXECUTOR_TICK_INTERVAL",
            format_duration(settings.tick_interval),
        ),
        (
            "EXECUTOR_TICK_TIMEOUT",
            format_duration(settings.tick_timeout),
        ),
        ("EXECUTOR_MAX_FAILURES", settings.max_failures.to_string()),
        (
            "EXECUTOR_BACKOFF",
            settings
                .backoff
                .iter()
                .map(|b| format_duration(*b))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("EXECUTOR_MEMORY_CAP", settings.memory_cap_bytes.to_string()),
        ("EXECUTOR_SITE", settings.site.clone()),
        (
            "EXECUTOR_POSTS_PER_HOUR",
            settings.posts_per_hour.to_string(),
        ),
        (
            "EXECUTOR_REPLIES_PER_HOUR",
            settings.replies_per_hour.to_string(),
        ),
        ("EXECUTOR_MIN_GAP", format_duration(settings.min_gap)),
        ("EXECUTOR_ID", settings.executor_id.clone()),
        (
            "EXECUTOR_LOG_FORMAT",
            match settings.log_format {
                LogFormat::Text => "text".to_string(),
                LogFormat::Json => "json".to_string(),
            },
        ),
    ];
    if let Some(url) = &settings.site_url {
        env.push(("EXECUTOR_SITE_URL", url.clone()));
    }
    if let Some(path) = &settings.chrome_path {
        env.push(("CHROME_PATH", path.display().to_string()));
    }
    if let Some(addr) = settings.metrics_addr {
        env.push(("EXECUTOR_METRICS_ADDR", addr.to_string()));
    }
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
        let err = resolve(Some(profile), &Layer::default(), &env_of(&[])).expect_err("must fail");
        assert!(err.to_string().contains("unknown setting `tick_intervall`"));
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
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
    fn postgres_password_is_never_displayed() {
        let url = DatabaseUrl::Postgres("postgres://me:secret@db:5432/x".into());
        assert_eq!(url.to_string(), "postgres://me:***@db:5432/x");
    }
}
