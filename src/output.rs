//! What the commands print: standard output and error that never panic.
//!
//! `println!` panics when stdout is a closed pipe (`executor jobs | head -1`): Rust ignores
//! SIGPIPE, so the write fails with EPIPE and the macro panics, with exit 101 and a backtrace.
//! Everything a command prints goes through [`outln!`](crate::outln) / [`out!`](crate::out)
//! instead: the first failure is remembered and later output is dropped, and `cli::main` asks
//! [`finish`] at the end: a closed pipe ends the command quietly with its usual code (the reader
//! had what it wanted, as with `cat`), any other failure (a full disk) is an error naming it.
//! Diagnostics go to stderr through [`errln!`](crate::errln), which drops a failure: there is
//! nowhere left to report it. The daemon's log lines never stop on a closed stdout either:
//! they still go to the log file.
//!
//! The library denies `println!`/`eprintln!` (clippy's `print_stdout`/`print_stderr`), so a new
//! command cannot bring the panic back.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

/// The first error writing to stdout, if any.
static STDOUT_FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

fn failed() -> bool {
    STDOUT_FAILED.lock().map(|f| f.is_some()).unwrap_or(true)
}

fn remember(err: std::io::Error) {
    if let Ok(mut slot) = STDOUT_FAILED.lock() {
        slot.get_or_insert(err);
    }
}

/// Writes to stdout; after a failure, nothing more is written.
pub fn write_stdout(args: fmt::Arguments, newline: bool) {
    if failed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")?;
        }
        Ok(())
    });
    if let Err(err) = result {
        remember(err);
    }
}

/// Writes a line to stderr, dropping a failure.
pub fn write_stderr(args: fmt::Arguments) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Do stdout and stderr go to the same file, pipe or terminal? (Then a line written to both
/// would be read twice.)
pub fn stderr_is_stdout() -> bool {
    let id = |fd: libc::c_int| {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a `stat` into the buffer it is given, and we read it only
        // when it says it did.
        if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: fstat succeeded, so the buffer is initialised.
        let stat = unsafe { stat.assume_init() };
        Some((stat.st_dev, stat.st_ino))
    };
    match (id(libc::STDOUT_FILENO), id(libc::STDERR_FILENO)) {
        (Some(out), Some(err)) => out == err,
        _ => false,
    }
}

/// Flushes stdout; `Err` for a failure other than a closed pipe.
pub fn finish() -> Result<(), std::io::Error> {
    if let Err(err) = std::io::stdout().lock().flush() {
        remember(err);
    }
    match STDOUT_FAILED.lock().ok().and_then(|mut slot| slot.take()) {
        Some(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err),
        _ => Ok(()),
    }
}

/// `println!` for the commands: see the module docs.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), true)
    };
}

/// `print!` for the commands: see the module docs.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*), false)
    };
}

/// `eprintln!` that never panics: see the module docs.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!($($arg)*))
    };
}
