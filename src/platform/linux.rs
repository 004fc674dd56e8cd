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

/// Start time and resident size of a live process, from its `stat` alone.
pub fn resident(pid: u32) -> Option<(u64, u64)> {
    stat(pid).map(|(_, start_unix_ms, rss_bytes)| (start_unix_ms, rss_bytes))
}

/// Parent, start time and resident size from `/proc/PID/stat`; `None` for a gone or zombie
/// process.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
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
