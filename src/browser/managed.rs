//! The managed browser: the one Chromium/Chrome this program launches and may therefore end.
//!
//! Identity: pid + process start time + our profile dir (`<profile>/chrome-profile`) + port,
//! written atomically to `<profile>/chrome.json`. Before anything is signalled we check all of
//! these again, so a reused pid or a user's own browser is never touched. Nothing is ever killed
//! by name.
//!
//! The browser runs in its own session (`setsid`), so the terminal's Ctrl-C reaches only the
//! daemon, which then shuts the browser down in order. Leftovers of a crashed run (including
//! helpers re-parented to pid 1) are found by our profile path in their command line.
//!
//! Ending it: first asked, then signalled. Chromium keeps a new cookie in memory and writes it to
//! the profile's cookie store only about 30 s later (or when it closes in order); a SIGTERM sent
//! to the browser and its helpers at once loses what is still in memory, such as a login made a
//! moment ago. So [`Managed::close`] sends CDP `Browser.close` and waits, bounded, for the process
//! to exit; only what is still running after that is signalled ([`Managed::terminate`]).

use super::cdp::{self, Connection};
use crate::platform::{self, Signal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a browser may take, after `Browser.close`, to write its state and exit before it is
/// signalled instead.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// How a server without a display gets a logged-in profile (docs/login.md).
pub const NO_DISPLAY_WAYS_IN: &str = "on a machine without one, import the session cookies from a desktop browser with `executor login --cookies FILE`, or log in through an SSH tunnel (docs/login.md)";

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no Chromium or Chrome found (looked for {looked}). Install one — Debian/Ubuntu: `sudo apt-get install chromium`; macOS: install Google Chrome or `brew install --cask chromium` — or pass --chrome-path PATH / set CHROME_PATH")]
    NotFound { looked: String },
    #[error("--chrome-path / CHROME_PATH {path} does not exist or is not a file")]
    BadPath { path: PathBuf },
    #[error("a managed browser is already running on this profile (pid {pid}, CDP port {port}); stop it with `executor chrome --stop`")]
    AlreadyRunning { pid: u32, port: u16 },
    #[error("cannot start {binary}: {reason}")]
    Spawn { binary: PathBuf, reason: String },
    #[error("the browser did not open its DevTools port within {seconds}s (see {log})")]
    NoDevtools { seconds: u64, log: PathBuf },
    #[error("the browser cannot open a window: there is no display (its stderr, {log}, says \"Missing X server or $DISPLAY\"); {NO_DISPLAY_WAYS_IN}")]
    NoDisplay { log: PathBuf },
    #[error("profile {path}: {reason}")]
    Profile { path: PathBuf, reason: String },
    #[error("the launch was given up: the daemon is stopping")]
    Stopped,
}

/// What `chrome.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub pid: u32,
    pub start_unix_ms: u64,
    pub profile_dir: PathBuf,
    pub port: u16,
    pub binary: PathBuf,
    pub headless: bool,
}

impl Identity {
    /// `None` when absent, unreadable, not a regular file (refused as in `files`) or not ours.
    pub fn read(path: &Path) -> Option<Identity> {
        let bytes =
            crate::files::read_limited(path, 64 * 1024, crate::files::Links::Refuse).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Written atomically through `chrome.json.tmp`; a link or a special file at either path is
    /// refused (see `files`).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::files::replace_atomically(
            path,
            &serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )
    }

    /// `Err` (saying which and why) when `path` or its temp file could not be written: checked
    /// before a browser is launched, so a refusal never leaves one running.
    pub fn check_writable(path: &Path) -> std::io::Result<()> {
        for path in [path.to_path_buf(), crate::files::temp_path(path)] {
            crate::files::require_absent_or_regular(&path).map_err(|err| {
                std::io::Error::new(err.kind(), format!("{}: {err}", path.display()))
            })?;
        }
        Ok(())
    }

    /// The recorded process is alive, is the same process, and uses our profile.
    pub fn is_alive(&self) -> bool {
        platform::process(self.pid).is_some_and(|p| {
            p.start_unix_ms.abs_diff(self.start_unix_ms) <= 20
                && uses_profile(&p.cmdline, &self.profile_dir)
        })
    }
}

/// Launch options.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub binary: PathBuf,
    pub profile_dir: PathBuf,
    /// 0: any free port.
    pub port: u16,
    pub headless: bool,
    /// Where the browser's own stderr goes.
    pub stderr_log: PathBuf,
}

/// The usual places for a browser binary, after `--chrome-path` / `CHROME_PATH`.
pub fn find_binary(explicit: Option<&Path>) -> Result<PathBuf, LaunchError> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(LaunchError::BadPath {
                path: path.to_path_buf(),
            })
        };
    }
    let names = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
        "chrome",
    ];
    let fixed = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/snap/bin/chromium",
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        "/Applications/Chromium.app/Contents/MacOS/Chromium",
    ];
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path_var) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    for candidate in fixed {
        if Path::new(candidate).is_file() {
            return Ok(PathBuf::from(candidate));
        }
    }
    Err(LaunchError::NotFound {
        looked: format!("{} in PATH, {}", names.join(", "), fixed.join(", ")),
    })
}

/// True when a command line belongs to a browser using `profile_dir`.
pub fn uses_profile(cmdline: &[String], profile_dir: &Path) -> bool {
    let dir = profile_dir.display().to_string();
    let flag = format!("--user-data-dir={dir}");
    let nested = format!("{dir}/");
    cmdline
        .iter()
        .any(|arg| arg == &flag || (arg.starts_with("--") && arg.contains(&nested)))
}

/// Every process (other than `except`) whose command line uses our profile: leftovers.
pub fn leftovers(profile_dir: &Path, except: &[u32]) -> Vec<platform::ProcessInfo> {
    platform::all_processes()
        .into_iter()
        .filter(|p| !except.contains(&p.pid) && p.pid != std::process::id())
        .filter(|p| uses_profile(&p.cmdline, profile_dir))
        .collect()
}

/// Ends processes that use our profile: SIGTERM, then SIGKILL after `grace`. Each is checked
/// again (same pid *and* start time *and* profile) right before every signal.
pub fn end_processes(
    processes: &[platform::ProcessInfo],
    profile_dir: &Path,
    grace: Duration,
) -> usize {
    let still_ours = |p: &platform::ProcessInfo| {
        platform::process(p.pid).is_some_and(|now| {
            now.start_unix_ms == p.start_unix_ms && uses_profile(&now.cmdline, profile_dir)
        })
    };
    let mut ended = 0;
    for p in processes.iter().filter(|p| still_ours(p)) {
        if platform::signal(p.pid, Signal::Term) {
            ended += 1;
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && processes.iter().any(still_ours) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in processes.iter().filter(|p| still_ours(p)) {
        // A stopped (SIGSTOP) process cannot act on SIGTERM; SIGKILL works regardless.
        platform::signal(p.pid, Signal::Kill);
    }
    // SIGKILL is delivered asynchronously: return only once they are really gone (bounded).
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && processes.iter().any(still_ours) {
        std::thread::sleep(Duration::from_millis(10));
    }
    ended
}

/// A browser we launched and still own.
///
/// One we launched is never left running by accident: dropped without being closed, ended or
/// detached (a launch, a close or a tick cut short by STOP or by the tick's cap), it is sent
/// SIGTERM — once it is checked to be still ours (pid, start time, profile) — on which Chromium
/// exits with its helpers.
pub struct Managed {
    pub identity: Identity,
    /// Present when this process is the browser's parent (so we must reap it).
    child: Option<Child>,
    /// Launched by us, and not yet closed, ended or detached.
    end_on_drop: bool,
}

impl Managed {
    /// Starts the browser and waits until its DevTools port is open.
    pub fn launch(options: &LaunchOptions, wait: Duration) -> Result<Managed, LaunchError> {
        Self::launch_unless(options, wait, &std::sync::atomic::AtomicBool::new(false))
    }

    /// [`Managed::launch`], given up as soon as `stop` is set: the browser started so far is
    /// ended, and the answer is [`LaunchError::Stopped`].
    pub fn launch_unless(
        options: &LaunchOptions,
        wait: Duration,
        stop: &std::sync::atomic::AtomicBool,
    ) -> Result<Managed, LaunchError> {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LaunchError::Stopped);
        }
        let profile_err = |reason: String| LaunchError::Profile {
            path: options.profile_dir.clone(),
            reason,
        };
        // The browser writes everything of its own (cookies included) in this directory: a link
        // in its place would send it elsewhere.
        if let Some(parent) = options.profile_dir.parent() {
            crate::files::create_private_dir(parent).map_err(|e| profile_err(e.to_string()))?;
        }
        crate::files::create_private_subdir(&options.profile_dir)
            .map_err(|e| profile_err(e.to_string()))?;
        set_private(&options.profile_dir);
        let port_file = options.profile_dir.join("DevToolsActivePort");
        let _ = std::fs::remove_file(&port_file);
        let stderr =
            crate::files::open_for_writing(&options.stderr_log, crate::files::Write::Replace)
                .map(Stdio::from)
                .map_err(|e| LaunchError::Profile {
                    path: options.stderr_log.clone(),
                    reason: e.to_string(),
                })?;
        let mut command = Command::new(&options.binary);
        command
            .args(launch_args(options))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = command.spawn().map_err(|err| LaunchError::Spawn {
            binary: options.binary.clone(),
            reason: err.to_string(),
        })?;
        let pid = child.id();
        // Ours from here on: a way out other than success ends it (`terminate` on a stop, `Drop`
        // for the rest).
        let mut launched = Managed {
            identity: Identity {
                pid,
                start_unix_ms: platform::start_unix_ms(pid)
                    .unwrap_or_else(crate::clock::now_unix_ms),
                profile_dir: options.profile_dir.clone(),
                port: 0,
                binary: options.binary.clone(),
                headless: options.headless,
            },
            child: Some(child),
            end_on_drop: true,
        };
        let deadline = Instant::now() + wait;
        loop {
            // Chromium announces its port on stderr (always) and in DevToolsActivePort (only
            // for port 0). Reading our own stderr file also proves the port is this browser's,
            // not another process's that already held it.
            if let Some(port) =
                read_announced_port(&options.stderr_log).or_else(|| read_active_port(&port_file))
            {
                launched.identity.port = port;
                return Ok(launched);
            }
            if let Some(Ok(Some(status))) = launched.child.as_mut().map(Child::try_wait) {
                if read_log_head(&options.stderr_log).contains(NO_X_SERVER) {
                    return Err(LaunchError::NoDisplay {
                        log: options.stderr_log.clone(),
                    });
                }
                return Err(LaunchError::Spawn {
                    binary: options.binary.clone(),
                    reason: format!(
                        "it exited at once ({status}); see {}",
                        options.stderr_log.display()
                    ),
                });
            }
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Ended as a browser of ours is: with whatever it has started on our profile.
                launched.terminate(Duration::from_secs(1));
                return Err(LaunchError::Stopped);
            }
            if Instant::now() >= deadline {
                if let Some(child) = launched.child.as_mut() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(LaunchError::NoDevtools {
                    seconds: wait.as_secs(),
                    log: options.stderr_log.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Lets the browser outlive this process (`executor chrome`): we stop being its owner here.
    pub fn detach(mut self) -> Identity {
        self.child = None;
        self.end_on_drop = false;
        self.identity.clone()
    }

    /// Adopts a recorded browser (not our child), to close it; dropped, it is left running.
    pub fn adopt(identity: Identity) -> Managed {
        Managed {
            identity,
            child: None,
            end_on_drop: false,
        }
    }

    /// Is the process still running (and not a zombie)?
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = self.child.as_mut() {
            if !matches!(child.try_wait(), Ok(None)) {
                return false;
            }
        }
        self.identity.is_alive()
    }

    /// Ends the browser the way that keeps its state: CDP `Browser.close`, then a wait for the
    /// process to exit, at most `wait` and not past `give_up` (a shutdown's abort, for one).
    /// Whatever is still running after that — the browser if it did not answer or did not exit,
    /// a helper that outlived it — is signalled ([`Managed::terminate`]). Returns whether the
    /// browser exited on its own.
    pub async fn close(
        mut self,
        wait: Duration,
        give_up: impl std::future::Future<Output = ()>,
    ) -> bool {
        let closed = tokio::select! {
            closed = tokio::time::timeout(wait, self.ask_to_close()) => closed.unwrap_or(false),
            _ = give_up => false,
        };
        let _ = tokio::task::spawn_blocking(move || self.terminate(Duration::from_secs(3))).await;
        closed
    }

    /// `Browser.close` to our browser, and the wait until it has exited. Never sent to a
    /// process that is not ours: the browser answering on the recorded port must name, as its
    /// own process, one that uses our profile.
    async fn ask_to_close(&mut self) -> bool {
        if !self.is_running() {
            return true;
        }
        let call = Duration::from_secs(2);
        let host = [127, 0, 0, 1].into();
        let Ok(url) = cdp::browser_ws_url(host, self.identity.port, call).await else {
            return false;
        };
        let Ok(conn) = Connection::connect(&url, call).await else {
            return false;
        };
        let ours = browser_pid(&conn)
            .await
            .and_then(platform::process)
            .is_some_and(|p| uses_profile(&p.cmdline, &self.identity.profile_dir));
        if !ours {
            return false;
        }
        // The answer may never come: the browser can close the socket as it goes.
        let _ = conn.call("Browser.close", json!({}), None, call).await;
        while self.is_running() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Ends the browser and everything of it that uses our profile with signals: SIGTERM, then
    /// SIGKILL after `grace`. Blocking, bounded by `grace` plus a little. What the browser held
    /// only in memory is lost; [`Managed::close`] asks it to close first.
    pub fn terminate(mut self, grace: Duration) {
        self.end_on_drop = false;
        // Helpers are swept by our profile, but only those already running now: a browser
        // launched after this began (a restart's) is not this one's to end. (Start times come
        // at the kernel's boot-time resolution, a second: one started within a second after
        // may still be taken for a helper, never a helper for a newer one.)
        let began = crate::clock::now_unix_ms();
        let mut processes: Vec<platform::ProcessInfo> = platform::process(self.identity.pid)
            .filter(|p| p.start_unix_ms.abs_diff(self.identity.start_unix_ms) <= 20)
            .into_iter()
            .collect();
        // A few rounds: a helper the browser spawned while it was going down is caught by the
        // next sweep of our profile.
        for _ in 0..3 {
            processes.extend(
                leftovers(&self.identity.profile_dir, &[self.identity.pid])
                    .into_iter()
                    .filter(|p| p.start_unix_ms <= began),
            );
            if processes.is_empty() {
                break;
            }
            end_processes(&processes, &self.identity.profile_dir, grace);
            processes.clear();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        // SIGTERM only: a drop must not block; Chromium ends its helpers as it exits.
        if self.end_on_drop && self.identity.is_alive() {
            platform::signal(self.identity.pid, Signal::Term);
        }
        // Reap a child that already exited so it does not linger as a zombie.
        if let Some(child) = self.child.as_mut() {
            let _ = child.try_wait();
        }
    }
}

pub fn launch_args(options: &LaunchOptions) -> Vec<String> {
    let mut args = vec![
        "--remote-debugging-address=127.0.0.1".to_string(),
        format!("--remote-debugging-port={}", options.port),
        format!("--user-data-dir={}", options.profile_dir.display()),
        // These keep the browser from calling home on a closed network (and flooding it with
        // refused connections), and from sandbox failures when run as root.
        "--no-first-run".into(),
        "--no-default-browser-check".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-quic".into(),
        "--disable-gpu".into(),
        "--no-sandbox".into(),
        // Popups are closed by the page cap; the browser itself must not block them silently.
        "--disable-popup-blocking".into(),
        "--disable-features=Translate,MediaRouter,OptimizationHints".into(),
    ];
    if options.headless {
        args.push("--headless".into());
    }
    args.push("about:blank".into());
    args
}

/// What Chromium on X11 writes to its stderr when it has no display to open a window on.
const NO_X_SERVER: &str = "Missing X server or $DISPLAY";

/// The browser process id, as the browser itself reports it.
pub(super) async fn browser_pid(conn: &Connection) -> Option<u32> {
    let answer = conn
        .call(
            "SystemInfo.getProcessInfo",
            json!({}),
            None,
            Duration::from_secs(3),
        )
        .await
        .ok()?;
    answer["processInfo"]
        .as_array()?
        .iter()
        .find(|p| p["type"].as_str() == Some("browser"))
        .and_then(|p| p["id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
}

/// The beginning of the browser's stderr file (what a launch needs is in its first lines), at
/// most 1 MiB, as text; empty when it cannot be read. A link is never followed.
fn read_log_head(path: &Path) -> String {
    crate::files::read_head(path, 1024 * 1024, crate::files::Links::Refuse)
        .map(|(head, _)| String::from_utf8_lossy(&head).into_owned())
        .unwrap_or_default()
}

fn read_announced_port(stderr_log: &Path) -> Option<u16> {
    // The announcement comes first; the browser may write much more after it.
    let text = read_log_head(stderr_log);
    let rest = text.split("DevTools listening on ws://").nth(1)?;
    let host_port = rest.split('/').next()?;
    host_port
        .rsplit(':')
        .next()?
        .parse()
        .ok()
        .filter(|p: &u16| *p != 0)
}

fn read_active_port(path: &Path) -> Option<u16> {
    let (head, _) = crate::files::read_head(path, 4096, crate::files::Links::Refuse).ok()?;
    let text = String::from_utf8_lossy(&head);
    text.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|p: &u16| *p != 0)
}

/// Profile dirs hold cookies: owner-only (SPEC §3).
pub fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_log_is_read_bounded_and_never_through_a_link() {
        let dir = std::env::temp_dir().join(format!("executor-managed-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let elsewhere = dir.join("elsewhere.txt");
        std::fs::write(&elsewhere, format!("{NO_X_SERVER}\n")).expect("write");
        let log = dir.join("chrome-stderr.log");
        std::os::unix::fs::symlink(&elsewhere, &log).expect("symlink");
        assert_eq!(read_log_head(&log), "", "a link is not followed");

        assert!(
            crate::files::open_for_writing(&log, crate::files::Write::Replace).is_err(),
            "nor written through"
        );
        assert_eq!(
            std::fs::read_to_string(&elsewhere).expect("read"),
            format!("{NO_X_SERVER}\n"),
            "the link's target is left alone"
        );
        std::fs::remove_file(&log).expect("remove link");
        let mut file =
            crate::files::open_for_writing(&log, crate::files::Write::Replace).expect("created");
        use std::io::Write;
        file.write_all(&vec![b'x'; 1100 * 1024]).expect("write");
        file.write_all(NO_X_SERVER.as_bytes()).expect("write");
        let head = read_log_head(&log);
        assert_eq!(head.len(), 1024 * 1024, "bounded");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
