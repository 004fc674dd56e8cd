//! Process information from `ps(1)`, for macOS and other Unix systems without `/proc`.

use super::ProcessInfo;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn run_ps(args: &[&str]) -> Vec<ProcessInfo> {
    let Ok(output) = std::process::Command::new("ps")
        .args(args)
        .env("LC_ALL", "C")
        .output()
    else {
        return Vec::new();
    };
    let now = SystemTime::now();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let pid: u32 = parts.next()?.parse().ok()?;
            let parent: u32 = parts.next()?.parse().ok()?;
            let rss_kib: u64 = parts.next()?.parse().ok()?;
            let elapsed = parse_etime(parts.next()?)?;
            let cmdline: Vec<String> = parts.map(str::to_string).collect();
            let start = now.checked_sub(elapsed)?.duration_since(UNIX_EPOCH).ok()?;
            Some(ProcessInfo {
                pid,
                parent,
                // ps reports elapsed time in seconds: round so repeated reads agree.
                start_unix_ms: start.as_secs() * 1000,
                rss_bytes: rss_kib * 1024,
                cmdline,
            })
        })
        .collect()
}

/// `[[dd-]hh:]mm:ss`
fn parse_etime(text: &str) -> Option<Duration> {
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let seconds = match parts.as_slice() {
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86400 + seconds))
}

/// A process followed by pid and start time, asked of `ps` at each read.
pub struct Followed {
    pid: u32,
    start_unix_ms: u64,
}

/// Nothing is held open here, so nothing is checked either: each read asks `ps` and compares
/// the start time (a `ps` per member on top of the listing that just gave it would be waste).
pub fn follow(pid: u32, start_unix_ms: u64) -> Option<Followed> {
    Some(Followed { pid, start_unix_ms })
}

impl Followed {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The resident size now; `None` once the process ended or its pid names another.
    pub fn resident_bytes(&self) -> Option<u64> {
        process(self.pid)
            .filter(|p| p.start_unix_ms.abs_diff(self.start_unix_ms) <= 20)
            .map(|p| p.rss_bytes)
    }
}

pub fn process(pid: u32) -> Option<ProcessInfo> {
    run_ps(&[
        "-o",
        "pid=,ppid=,rss=,etime=,command=",
        "-p",
        &pid.to_string(),
    ])
    .into_iter()
    .next()
}

/// No child links from `ps`: the tree is found from the whole list.
pub fn children(_pid: u32) -> Option<Vec<u32>> {
    None
}

pub fn all_processes() -> Vec<ProcessInfo> {
    run_ps(&["-A", "-o", "pid=,ppid=,rss=,etime=,command="])
}

pub fn proportional_memory(pid: u32) -> Option<u64> {
    process(pid).map(|p| p.rss_bytes)
}

/// Watches `dir` for an entry named `name` appearing and sends on `wake` (a file-system
/// notification of any change in `dir` wakes it; the caller looks for the entry itself).
pub fn watch_entry(
    dir: &std::path::Path,
    _name: &std::ffi::OsStr,
    wake: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::io::Result<EntryWatch> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |_event| {
        let _ = wake.send(());
    })
    .map_err(std::io::Error::other)?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(std::io::Error::other)?;
    Ok(EntryWatch { _watcher: watcher })
}

/// Whether every change to `dir` is reported: not assumed here (the caller polls as well).
pub fn reports_every_change(_dir: &std::path::Path) -> bool {
    false
}

/// Ends the watch when dropped.
pub struct EntryWatch {
    _watcher: notify::RecommendedWatcher,
}
