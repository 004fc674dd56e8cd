//! Everything that differs between operating systems, in one small place: reading a process's
//! start time, command line, parent and memory, signalling one process or process group, and
//! whether a window can be opened.
//!
//! Linux reads `/proc` (what CI tests). macOS (the original deployment) asks `ps`. Nothing outside
//! this module makes an OS-specific call, so porting means filling in one file.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(not(target_os = "linux"))]
mod ps;
#[cfg(not(target_os = "linux"))]
use ps as imp;

/// What we know of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub parent: u32,
    /// Process start time, Unix milliseconds; stable for the life of the process, so
    /// `(pid, start)` identifies a process even after its pid is reused.
    pub start_unix_ms: u64,
    pub rss_bytes: u64,
    pub cmdline: Vec<String>,
}

/// One process, or `None` when it does not exist (or is a zombie).
pub fn process(pid: u32) -> Option<ProcessInfo> {
    imp::process(pid)
}

/// Memory a process really accounts for: its proportional set size (each shared page split
/// between the processes sharing it), where the OS reports one; else its resident size. Summing
/// RSS over Chromium's processes counts their shared pages once per process — more than double.
pub fn proportional_memory(pid: u32) -> Option<u64> {
    imp::proportional_memory(pid)
}

/// Every process we can see.
pub fn all_processes() -> Vec<ProcessInfo> {
    imp::all_processes()
}

/// Starts following `pid` for its resident size, when it is alive and started at
/// `start_unix_ms`. Each later read is one small read (Linux: the process's own `statm`, held
/// open) and fails once that process has ended — never counting another that took its pid.
pub fn follow(pid: u32, start_unix_ms: u64) -> Option<Followed> {
    imp::follow(pid, start_unix_ms)
}

pub use imp::Followed;

/// The start time of `pid`, when it is alive.
pub fn start_unix_ms(pid: u32) -> Option<u64> {
    process(pid).map(|p| p.start_unix_ms)
}

/// True when `pid` is alive and started at `start_unix_ms`: the same process, not a reused pid.
pub fn is_same_process(pid: u32, recorded_start_ms: u64) -> bool {
    // Allow a little slack: start times are derived from clock ticks on Linux.
    matches!(start_unix_ms(pid), Some(start) if start.abs_diff(recorded_start_ms) <= 20)
}

/// Sends on `wake` when an entry named `name` appears in `dir` (created or moved in), until the
/// returned watch is dropped. Where the OS cannot tell which entry changed, any change in `dir`
/// wakes: the caller looks for the entry itself either way.
pub fn watch_entry(
    dir: &std::path::Path,
    name: &std::ffi::OsStr,
    wake: tokio::sync::mpsc::UnboundedSender<()>,
) -> std::io::Result<EntryWatch> {
    imp::watch_entry(dir, name, wake)
}

pub use imp::EntryWatch;

/// True when [`watch_entry`] on `dir` reports every change (a local file system on Linux);
/// otherwise a change made elsewhere (another machine on a network file system) may go unseen.
pub fn reports_every_change(dir: &std::path::Path) -> bool {
    imp::reports_every_change(dir)
}

/// `root` and all of its descendants. Where the kernel lists each process's children (Linux's
/// `/proc/PID/task/TID/children`), only the tree's own processes are read; elsewhere every
/// process is listed and the tree found by parent pid.
pub fn process_tree(root: u32) -> Vec<ProcessInfo> {
    tree_by_children(root).unwrap_or_else(|| tree_by_walk(root))
}

/// The tree under `root` found by parent pid among every process.
fn tree_by_walk(root: u32) -> Vec<ProcessInfo> {
    let all = all_processes();
    let mut tree: Vec<ProcessInfo> = all.iter().filter(|p| p.pid == root).cloned().collect();
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index].pid;
        for p in &all {
            if p.parent == parent && !tree.iter().any(|t| t.pid == p.pid) {
                tree.push(p.clone());
            }
        }
        index += 1;
    }
    tree
}

/// The tree under `root` by the kernel's child links; `None` where the OS has none.
fn tree_by_children(root: u32) -> Option<Vec<ProcessInfo>> {
    let mut tree = vec![process(root)?];
    let mut index = 0;
    while index < tree.len() {
        for child in imp::children(tree[index].pid)? {
            if tree.iter().all(|t| t.pid != child) {
                if let Some(info) = process(child) {
                    tree.push(info);
                }
            }
        }
        index += 1;
    }
    Some(tree)
}

/// Sends `signal` to one process. Never to a group or by name.
pub fn signal(pid: u32, signal: Signal) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a positive pid only sends a signal; it has no memory effects.
    unsafe { libc::kill(pid, signal.raw()) == 0 }
}

/// Can a browser open a window here? macOS always has its window server; elsewhere (Linux, the
/// BSDs) windows go through X11 or Wayland, so only when `DISPLAY` or `WAYLAND_DISPLAY` names a
/// display. `env` reads a variable (the process environment, or a test's).
pub fn has_display(env: &dyn Fn(&str) -> Option<String>) -> bool {
    cfg!(target_os = "macos")
        || ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|name| env(name).is_some_and(|value| !value.trim().is_empty()))
}

#[derive(Debug, Clone, Copy)]
pub enum Signal {
    Term,
    Kill,
    Stop,
    Cont,
}

impl Signal {
    fn raw(self) -> i32 {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_tree_by_child_links_is_the_tree_by_parent_pid() {
        // A shell with two children, one of which has a child of its own.
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & (sleep 30 & wait) & wait"])
            .spawn()
            .expect("spawn sh");
        let root = shell.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let pids = |tree: Vec<ProcessInfo>| {
            let mut pids: Vec<u32> = tree.into_iter().map(|p| p.pid).collect();
            pids.sort_unstable();
            pids
        };
        let by_walk = loop {
            let tree = pids(tree_by_walk(root));
            if tree.len() >= 4 || std::time::Instant::now() > deadline {
                break tree;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let by_children = pids(tree_by_children(root).expect("this kernel has child links"));
        for pid in by_walk.iter().rev() {
            let _ = signal(*pid, Signal::Kill);
        }
        let _ = shell.wait();
        assert!(by_walk.len() >= 4, "{by_walk:?}");
        assert_eq!(by_children, by_walk);
    }

    #[test]
    fn a_display_is_named_by_display_or_wayland_display_and_not_by_an_empty_one() {
        let with = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            }
        };
        assert!(has_display(&with(&[("DISPLAY", ":0")])));
        assert!(has_display(&with(&[("WAYLAND_DISPLAY", "wayland-0")])));
        if !cfg!(target_os = "macos") {
            assert!(!has_display(&with(&[])));
            assert!(!has_display(&with(&[
                ("DISPLAY", ""),
                ("WAYLAND_DISPLAY", " ")
            ])));
        }
    }
}
