//! The single-instance lock: `<profile>/executor.pid` holding `PID:START_UNIX_MS` (SPEC §2).
//!
//! Lifecycle: the daemon opens the file (close-on-exec, as std always does), takes a
//! non-blocking exclusive `flock`, and only then truncates and writes its own identity. It holds
//! the lock for its whole life; the kernel drops it if the process dies, so a file left by a
//! crash (or `kill -9`) is *stale*: it exists but nobody holds it, and the next daemon takes it
//! over and says so.
//!
//! Invariants:
//! - a process that did not win the lock never writes or removes the file;
//! - after winning, we check that the path still names the inode we locked. Otherwise a daemon
//!   that was exiting removed the file between our `open` and our `flock`, and we would hold a
//!   lock on a deleted file while a third process creates a new one: we retry instead;
//! - on every orderly exit the holder removes the file *while still holding the lock*, then
//!   closes it.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another executor daemon is already running on this profile (pid {pid}, lock {path})")]
    HeldBy { pid: String, path: PathBuf },
    #[error("cannot use lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The most of a lock file that is read: `PID:START_UNIX_MS` is at most 32 bytes; the rest of a
/// longer one is not ours to read (or to log).
const READ_MAX: u64 = 256;

/// What the lock file says: `PID:START_UNIX_MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOwner {
    pub pid: u32,
    pub start_unix_ms: u64,
}

impl LockOwner {
    pub fn parse(text: &str) -> Option<LockOwner> {
        let (pid, start) = text.trim().split_once(':')?;
        Some(LockOwner {
            pid: pid.parse().ok()?,
            start_unix_ms: start.parse().ok()?,
        })
    }

    /// Reads the lock file without touching the lock: `None` when absent, unreadable, not a
    /// regular file (a FIFO cannot hang `status` or `stop`) or not `PID:START`. Only its head is
    /// read: a valid one is a few dozen bytes.
    pub fn read(path: &Path) -> Option<LockOwner> {
        let (head, _) =
            crate::files::read_head(path, READ_MAX, crate::files::Links::Refuse).ok()?;
        LockOwner::parse(std::str::from_utf8(&head).ok()?)
    }

    /// The recorded process is alive and is the same process (not a reused pid).
    pub fn is_alive(&self) -> bool {
        crate::platform::is_same_process(self.pid, self.start_unix_ms)
    }
}

/// What was in the file before we took it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// No file: a clean start.
    None,
    /// A file nobody held: a crashed or killed run. What it said: its first bytes (as text,
    /// trimmed; a valid one is whole) and its size. Not ours: show it with `quote::quoted_part`.
    Stale { content: String, size: u64 },
}

/// The held lock. Dropping it releases the lock without removing the file (as a crash would);
/// call [`PidLock::release`] on orderly exits.
#[derive(Debug)]
pub struct PidLock {
    file: File,
    path: PathBuf,
    pub owner: LockOwner,
    pub previous: Previous,
}

impl PidLock {
    pub fn acquire(path: &Path) -> Result<PidLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        for _ in 0..10 {
            let existed = std::fs::symlink_metadata(path).is_ok();
            // A link or a special file in its place is refused, never written through.
            let mut file =
                crate::files::open_for_writing(path, crate::files::Write::Update).map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut head = Vec::new();
                    let _ = (&mut file).take(READ_MAX).read_to_end(&mut head);
                    let pid = LockOwner::parse(&String::from_utf8_lossy(&head))
                        .map(|o| o.pid.to_string())
                        .unwrap_or_else(|| "unknown".into());
                    return Err(LockError::HeldBy {
                        pid,
                        path: path.to_path_buf(),
                    });
                }
                Err(TryLockError::Error(err)) => return Err(io(err)),
            }
            // Is the locked inode still the one at `path`?
            let locked = file.metadata().map_err(io)?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {}
                _ => continue,
            }
            let mut head = Vec::new();
            let _ = (&mut file).take(READ_MAX).read_to_end(&mut head);
            let previous = if existed {
                Previous::Stale {
                    content: String::from_utf8_lossy(&head).trim().to_string(),
                    size: locked.len(),
                }
            } else {
                Previous::None
            };
            let pid = std::process::id();
            let owner = LockOwner {
                pid,
                start_unix_ms: crate::platform::start_unix_ms(pid)
                    .unwrap_or_else(crate::clock::now_unix_ms),
            };
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(format!("{}:{}\n", owner.pid, owner.start_unix_ms).as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(PidLock {
                file,
                path: path.to_path_buf(),
                owner,
                previous,
            });
        }
        Err(io(std::io::Error::other(
            "the lock file kept being replaced while we locked it",
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Orderly exit: remove the file while we still hold the lock, then unlock.
    pub fn release(self) -> Result<(), LockError> {
        let result = match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            // Only remove the file if it is still ours.
            (Ok(ours), Ok(now)) if ours.ino() == now.ino() && ours.dev() == now.dev() => {
                std::fs::remove_file(&self.path).map_err(|source| LockError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
            _ => Ok(()),
        };
        let _ = self.file.unlock();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("executor-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn second_acquire_is_refused_and_names_the_holder() {
        let dir = temp_dir();
        let path = dir.join("executor.pid");
        let first = PidLock::acquire(&path).expect("first");
        let err = PidLock::acquire(&path).expect_err("second must fail");
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
        // The holder's file is untouched.
        assert_eq!(LockOwner::read(&path), Some(first.owner));
        first.release().expect("release");
        assert!(!path.exists());
    }

    #[test]
    fn stale_and_corrupt_files_are_taken_over() {
        let dir = temp_dir();
        let path = dir.join("executor.pid");
        for garbage in ["", "garbage", "123:abc", "99999999:1"] {
            std::fs::write(&path, garbage).expect("write");
            let lock = PidLock::acquire(&path).expect("take over");
            assert_eq!(
                lock.previous,
                Previous::Stale {
                    content: garbage.to_string(),
                    size: garbage.len() as u64
                }
            );
            assert_eq!(LockOwner::read(&path), Some(lock.owner));
            lock.release().expect("release");
        }
    }

    #[test]
    fn a_directory_in_place_of_the_lock_is_a_clear_error() {
        let dir = temp_dir();
        let path = dir.join("executor.pid");
        std::fs::create_dir(&path).expect("mkdir");
        let err = PidLock::acquire(&path).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("is a directory, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn a_link_in_place_of_the_lock_is_refused_and_its_target_untouched() {
        let dir = temp_dir();
        let target = dir.join("precious");
        std::fs::write(&target, "precious").expect("target");
        let path = dir.join("executor.pid");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let err = PidLock::acquire(&path).expect_err("must fail");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("target"),
            "precious"
        );
    }

    #[test]
    fn dropping_without_release_leaves_a_stale_file() {
        let dir = temp_dir();
        let path = dir.join("executor.pid");
        let lock = PidLock::acquire(&path).expect("first");
        drop(lock);
        assert!(path.exists());
        let again = PidLock::acquire(&path).expect("stale takeover");
        assert!(matches!(again.previous, Previous::Stale { .. }));
        again.release().expect("release");
    }
}
