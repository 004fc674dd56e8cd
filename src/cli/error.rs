//! The error every command returns: the exit code it maps to (README, "Exit codes") and the one
//! line `cli::main` prints for it, so that no command prints `error: …` or picks a code itself.
//!
//! In the spirit of cargo-nextest's `ExpectedError`: a command that cannot go on says why once,
//! with a constructor named for the code (`usage` = 2, `failure` = 1); `main` prints
//! `error: {message}` and exits with the code.

use crate::store::StoreError;
use std::fmt;

/// The longest `error:` line (a longer message is cut, saying its size).
const ERROR_MAX_CHARS: usize = 4 * 1024;

/// Why a command exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// The process exit code (never 0).
    pub code: i32,
    /// The line printed after `error: `, or `None` when the command already told its story
    /// (the checklist's FAIL lines, the daemon's log) and only the code is left to give.
    pub message: Option<String>,
}

impl CliError {
    /// Bad input: a flag, a setting, a job id that does not exist (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::with_code(super::EXIT_USAGE, message)
    }

    /// A runtime failure: the store, the browser, the file system (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self::with_code(super::EXIT_FAILURE, message)
    }

    /// An error whose code comes from the library (e.g. `DaemonError::code`).
    pub fn with_code(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
        }
    }

    /// A failure the command has already reported on its own terms (exit 1, nothing more printed):
    /// `verify`'s failing criteria, the demo's verdict, a daemon that stopped after failed ticks.
    pub fn already_reported(code: i32) -> Self {
        Self {
            code,
            message: None,
        }
    }

    /// Prints the message, if any, and gives the exit code: the one place a command's error
    /// reaches the terminal.
    pub fn report(&self) -> i32 {
        if let Some(message) = &self.message {
            // One line, whatever the message carries (a value, a library's multi-line text).
            crate::errln!(
                "error: {}",
                crate::quote::single_line(message, ERROR_MAX_CHARS)
            );
        }
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{message}"),
            None => write!(f, "exit code {}", self.code),
        }
    }
}

impl std::error::Error for CliError {}

/// A store call that failed mid-command is a runtime failure; commands that treat some store
/// errors as bad input (`jobs show` of an unknown id) map those themselves.
impl From<StoreError> for CliError {
    fn from(err: StoreError) -> Self {
        Self::failure(err.to_string())
    }
}
