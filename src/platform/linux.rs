//! `/proc` readers for Linux.

use super::ProcessInfo;
use std::sync::OnceLock;

fn boot_time_ms() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                stat.lines()
                    .find_map(|line| line.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map(|secs| secs * 1000)
            .unwrap_or(0)
    })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

pub fn process(pid: u32) -> Option<ProcessInfo> {
    let (parent, start_unix_ms, rss_bytes) = stat(pid)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcessInfo {
        pid,
        parent,
        start_unix_ms,
        rss_bytes,
        cmdline,
    })
}

/// A process followed by its `statm`, held open: a read names the process the file was opened
/// for, or fails once it ended, whatever the pid names since. `statm` is memory counters alone,
/// where `stat` sums the times of every thread (Chromium's processes have dozens).
pub struct Followed {
    pid: u32,
    statm: std::fs::File,
}

pub fn follow(pid: u32, start_unix_ms: u64) -> Option<Followed> {
    let statm = std::fs::File::open(format!("/proc/{pid}/statm")).ok()?;
    // Opened first, checked second: the file opened is the process that started then.
    let (_, started, _) = stat(pid)?;
    if started.abs_diff(start_unix_ms) > 20 {
        return None;
    }
    Some(Followed { pid, statm })
}

impl Followed {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The resident size now; `None` once the process ended (a zombie has no memory left).
    pub fn resident_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 256];
        let n = self.statm.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(buf.get(..n)?).ok()?;
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
        let (size, resident) = (fields.next()??, fields.next()??);
        (size > 0).then(|| resident * page_size())
    }
}

/// A small `/proc` file in one `read` (the kernel renders it whole for a read from the start);
/// `std::fs::read_to_string` would grow its buffer from 32 bytes, one system call each time,
/// on every tick for every browser process. `None` when the file is gone or larger than `N`.
fn read_small<const N: usize>(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = [0u8; N];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    if n == N {
        return None;
    }
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// Parent, start time and resident size from `/proc/PID/stat`; `None` for a gone or zombie
/// process.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    // One line: 52 numbers and a name of at most 64 bytes.
    let stat = read_small::<2048>(&format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state) of proc(5).
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let parent: u32 = fields.get(1)?.parse().ok()?;
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    let start_unix_ms = boot_time_ms() + start_ticks * 1000 / clock_ticks_per_second();
    Some((parent, start_unix_ms, rss_pages * page_size()))
}

/// The children of `pid` by the kernel's own links (every thread's `children` file: a child
/// belongs to the thread that forked it). `None` when the kernel does not offer them.
pub fn children(pid: u32) -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut children = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        any = true;
        children.extend(
            text.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    // A process that ended between the listing and the reads has no children left to find.
    if !any && std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    Some(children)
}

pub fn all_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process)
        .collect()
}

pub fn proportional_memory(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok();
    let pss_kib = rollup.as_deref().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    });
    match pss_kib {
        Some(kib) => Some(kib * 1024),
        None => process(pid).map(|p| p.rss_bytes),
    }
}

/// Watches `dir` for an entry named `name` appearing (created, or moved in) and sends on `wake`
/// each time. inotify with only those two events: the writes to the directory's other files —
/// the log, the database, its WAL — wake nothing. Ends (dropping `wake`) when the directory is
/// removed or moved, since its path then names another or none, or when the returned watch is
/// dropped.
pub fn watch_entry(
    dir: &std::path::Path,
    name: &std::ffi::OsStr,
    wake: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::io::Result<EntryWatch> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    // SAFETY: inotify_init1 takes flags only; it returns a new descriptor or -1.
    let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` was just opened, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mask = libc::IN_CREATE
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;
    // SAFETY: `fd` is open and `path` is a NUL-terminated string alive for the call.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), mask) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the `AsyncFd` owns `fd` from here on, so the descriptor stays open, and the
    // same, for the whole life of the registration.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }
    .map_err(std::io::Error::from)?;
    let name = name.as_bytes().to_vec();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            let read = ready.try_io(|fd| {
                // SAFETY: `buf` is writable for its whole length, which is what we pass.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let n = match read {
                Ok(Ok(n)) if n > 0 => n,
                Ok(_) => return,
                Err(_would_block) => continue,
            };
            let (named, gone) = inotify_events(&buf[..n], &name);
            if named && wake.send(()).is_err() {
                return;
            }
            if gone {
                return;
            }
        }
    });
    Ok(EntryWatch { task })
}

/// Reads a buffer of `inotify_event`s: whether one names `name` (or the queue overflowed, so
/// one may have been lost), and whether the watch is done (its directory removed or moved).
fn inotify_events(mut buf: &[u8], name: &[u8]) -> (bool, bool) {
    const HEADER: usize = 16; // wd, mask, cookie, len: four 32-bit fields
    let (mut named, mut gone) = (false, false);
    while buf.len() >= HEADER {
        let field =
            |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let mask = field(4);
        let len = field(12) as usize;
        let Some(entry) = buf.get(HEADER..HEADER + len) else {
            break;
        };
        let entry_name = entry.split(|b| *b == 0).next().unwrap_or_default();
        named |= entry_name == name || mask & libc::IN_Q_OVERFLOW != 0;
        gone |= mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0;
        buf = &buf[HEADER + len..];
    }
    (named, gone)
}

/// True when `dir` is on a local file system, where inotify reports every change to it. On a
/// network file system (NFS, SMB) or FUSE, a change made by another machine or by the FUSE
/// server is not reported.
pub fn reports_every_change(dir: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const LOCAL: [i64; 8] = [
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
        0x2FC1_2FC1, // zfs
        0xF2F5_2010, // f2fs
        0xCA45_1A4E, // bcachefs
    ];
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `info` is writable, both alive for the call.
    if unsafe { libc::statfs(path.as_ptr(), &mut info) } != 0 {
        return false;
    }
    LOCAL.contains(&(info.f_type as i64))
}

/// Ends the watch when dropped.
pub struct EntryWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EntryWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::inotify_events;

    fn event(mask: u32, name: &[u8], padded: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1i32.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut field = name.to_vec();
        field.resize(padded, 0);
        out.extend_from_slice(&field);
        out
    }

    #[test]
    fn only_the_watched_name_or_an_overflow_wakes() {
        let other = event(libc::IN_CREATE, b"executor.db-journal", 32);
        let ours = event(libc::IN_MOVED_TO, b"STOP_EXECUTOR", 16);
        let longer = event(libc::IN_CREATE, b"STOP_EXECUTOR.tmp", 32);
        assert_eq!(inotify_events(&other, b"STOP_EXECUTOR"), (false, false));
        assert_eq!(inotify_events(&longer, b"STOP_EXECUTOR"), (false, false));
        assert_eq!(
            inotify_events(&[other.clone(), ours].concat(), b"STOP_EXECUTOR"),
            (true, false)
        );
        let overflow = event(libc::IN_Q_OVERFLOW, b"", 0);
        assert_eq!(inotify_events(&overflow, b"STOP_EXECUTOR"), (true, false));
        for done in [libc::IN_IGNORED, libc::IN_DELETE_SELF, libc::IN_MOVE_SELF] {
            assert_eq!(
                inotify_events(&event(done, b"", 0), b"STOP_EXECUTOR"),
                (false, true)
            );
        }
        // A torn buffer is read up to the torn event, never past it.
        let torn = &other[..20];
        assert_eq!(inotify_events(torn, b"STOP_EXECUTOR"), (false, false));
    }
}
