//! Operational log: the tick line and every other `[EXECUTOR_DAEMON] ` line, to stdout and to
//! `<profile>/executor.log` (rotated by size: `executor.log.1` … `.N`).
//!
//! The text format is a contract (SPEC §4, the seed's grep); `--log-format json` writes one JSON
//! object per line instead. Info lines are written when something changed; debug lines only with
//! `RUST_LOG=debug` (or `trace`). A failing log file never stops the daemon: the line still goes
//! to stdout and the failure is reported once on stderr.

use crate::settings::LogFormat;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const PREFIX: &str = "[EXECUTOR_DAEMON] ";

/// The longest message a line carries (a longer one is cut, saying its size): a line is for
/// reading, and whatever a message quotes (an error, a file) must not turn it into megabytes.
pub const LINE_MAX_CHARS: usize = 16 * 1024;

/// Rotation: keep the current file under this size and this many old ones.
pub const ROTATE_BYTES: u64 = 10 * 1024 * 1024;
pub const ROTATE_KEEP: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

struct FileSink {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
    keep: u32,
    failed_once: bool,
}

impl FileSink {
    /// A link or a special file in place of the log is refused (see `files`): the lines then
    /// go to stdout only, and the refusal is reported once.
    fn open(path: &Path) -> std::io::Result<File> {
        crate::files::open_for_writing(path, crate::files::Write::Append)
    }

    fn write_line(&mut self, line: &str) {
        if self.file.is_none() {
            match Self::open(&self.path) {
                Ok(file) => {
                    self.written = file.metadata().map(|m| m.len()).unwrap_or(0);
                    self.file = Some(file);
                }
                Err(err) => return self.fail(err),
            }
        }
        if self.written + line.len() as u64 + 1 > self.max_bytes && self.written > 0 {
            self.rotate();
        }
        if let Some(file) = self.file.as_mut() {
            // One `write` with its newline: `writeln!` on a file is two, and another process
            // appending between them would split the line.
            match file.write_all(format!("{line}\n").as_bytes()) {
                Ok(()) => self.written += line.len() as u64 + 1,
                Err(err) => self.fail(err),
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
        match Self::open(&self.path) {
            Ok(file) => {
                self.file = Some(file);
                self.written = 0;
            }
            Err(err) => self.fail(err),
        }
    }

    fn fail(&mut self, err: std::io::Error) {
        self.file = None;
        if !self.failed_once {
            self.failed_once = true;
            crate::errln!(
                "{PREFIX}cannot write log file {}: {err} (lines still go to stdout)",
                self.path.display()
            );
        }
    }
}

struct Inner {
    format: LogFormat,
    min_level: Level,
    file: Option<Mutex<FileSink>>,
    echo_stdout: bool,
}

/// Cheap to clone; all clones write to the same places.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<Inner>,
}

impl Logger {
    /// A logger writing to stdout and, when given, the rotated file.
    pub fn new(format: LogFormat, file: Option<&Path>) -> Logger {
        Self::build(format, file, ROTATE_BYTES, ROTATE_KEEP, true)
    }

    /// Same destinations, without stdout (tests that run many daemons in one process).
    pub fn quiet(format: LogFormat, file: Option<&Path>) -> Logger {
        Self::build(format, file, ROTATE_BYTES, ROTATE_KEEP, false)
    }

    fn build(
        format: LogFormat,
        file: Option<&Path>,
        max_bytes: u64,
        keep: u32,
        echo_stdout: bool,
    ) -> Logger {
        Logger {
            inner: Arc::new(Inner {
                format,
                min_level: level_from_env(),
                file: file.map(|path| {
                    Mutex::new(FileSink {
                        path: path.to_path_buf(),
                        file: None,
                        written: 0,
                        max_bytes,
                        keep: keep.max(1),
                        failed_once: false,
                    })
                }),
                echo_stdout,
            }),
        }
    }

    pub fn debug_enabled(&self) -> bool {
        self.inner.min_level <= Level::Debug
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message, None);
    }
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message, None);
    }
    pub fn error(&self, message: &str) {
        self.log(Level::Error, message, None);
    }
    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message, None);
    }

    /// A line with structured fields: in text the message is printed as is (it already carries
    /// the fields in `key=value` form); in JSON the fields are merged into the object.
    ///
    /// Every message is made one bounded line first (`quote::single_line`): a newline inside it,
    /// whatever put it there, can never start a line that looks like one of ours.
    pub fn log(&self, level: Level, message: &str, fields: Option<&serde_json::Value>) {
        if level < self.inner.min_level {
            return;
        }
        let message = crate::quote::single_line(message, LINE_MAX_CHARS);
        let line = match self.inner.format {
            LogFormat::Text => format!("{PREFIX}{message}"),
            LogFormat::Json => {
                let mut object = serde_json::Map::new();
                object.insert(
                    "ts".into(),
                    crate::clock::format_ts(std::time::SystemTime::now()).into(),
                );
                object.insert("level".into(), level.as_str().into());
                object.insert("target".into(), "EXECUTOR_DAEMON".into());
                object.insert("msg".into(), message.into());
                if let Some(serde_json::Value::Object(extra)) = fields {
                    for (key, value) in extra {
                        object.insert(key.clone(), value.clone());
                    }
                }
                serde_json::Value::Object(object).to_string()
            }
        };
        self.write(&line);
    }

    fn write(&self, line: &str) {
        if self.inner.echo_stdout {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if let Some(file) = &self.inner.file {
            if let Ok(mut sink) = file.lock() {
                sink.write_line(line);
            }
        }
    }
}

fn level_from_env() -> Level {
    match std::env::var("RUST_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "debug" | "trace" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => Level::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_rotates_by_size_and_keeps_n() {
        let dir = std::env::temp_dir().join(format!("executor-log-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("executor.log");
        let logger = Logger::build(LogFormat::Text, Some(&path), 200, 2, false);
        for i in 0..40 {
            logger.info(&format!("line {i:03} with some padding to fill the file"));
        }
        let current = std::fs::read_to_string(&path).expect("current");
        assert!(current.len() <= 200, "{}", current.len());
        assert!(current.lines().all(|l| l.starts_with(PREFIX)));
        assert!(current.contains("line 039"));
        assert!(dir.join("executor.log.1").exists());
        assert!(dir.join("executor.log.2").exists());
        assert!(!dir.join("executor.log.3").exists());
    }
}
