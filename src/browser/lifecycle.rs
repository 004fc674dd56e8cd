//! The connection's lifecycle: connect (attach mode) or launch and connect (launch mode), adopt
//! or create our page, start the guard; restart on purpose; end in order.
//!
//! A connection is made only when there is none: a lost one is noticed by the guard and the next
//! [`Browser::connect`] makes a new one. In launch mode a browser lost after it had worked (its
//! page adopted, alive for [`HEALTHY_LIFE`]) is relaunched at once; one that keeps dying soon
//! after launch is relaunched after waits that double, 1 s, 2 s, 4 s … up to
//! `relaunch_interval` ([`relaunch_wait`]), so it is never started in a loop. A deliberate
//! restart (halting a runaway page, the memory cap) is not a loss. A browser we own that does
//! not answer is ended, so the next attempt relaunches instead of waiting on it.
//! Leftovers on our profile from an earlier run are ended before a launch: the profile lock
//! makes this daemon their only possible owner.

use super::cdp::{self, Connection};
use super::managed::{self, Identity, LaunchOptions, Managed};
use super::targets::{attach, create_page, page_targets};
use super::{guard, Browser, BrowserError, Lifecycle, Live, Notice};
use crate::platform;
use crate::settings::BrowserMode;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

impl Browser {
    /// Makes sure there is a live connection and our page; (re)connects or (re)launches.
    pub async fn connect(&self) -> Result<(), BrowserError> {
        if self.live().is_some() {
            return Ok(());
        }
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if self.live().is_some() {
            return Ok(());
        }
        let config = &self.shared.config;
        let port = match config.mode {
            BrowserMode::Attach => config.port,
            BrowserMode::Launch => self.ensure_launched(&mut lifecycle).await?,
        };
        let result = self.establish(port).await;
        if config.mode == BrowserMode::Launch {
            match &result {
                Ok(()) => {
                    if lifecycle.established_at.is_none() {
                        lifecycle.established_at = Some(Instant::now());
                    }
                }
                Err(_) => {
                    // The browser we own does not answer (frozen, or half dead): end it so the
                    // next attempt relaunches instead of waiting on it forever. It did not
                    // answer CDP, so it cannot be asked to close: signals only.
                    if let Some(managed) = lifecycle.managed.take() {
                        let _ = tokio::task::spawn_blocking(move || {
                            managed.terminate(Duration::from_secs(2))
                        })
                        .await;
                        note_loss(&mut lifecycle);
                    }
                }
            }
        }
        result
    }

    async fn ensure_launched(&self, lifecycle: &mut Lifecycle) -> Result<u16, BrowserError> {
        let config = &self.shared.config;
        if let Some(managed) = lifecycle.managed.as_mut() {
            if managed.is_running() {
                return Ok(managed.identity.port);
            }
            lifecycle.managed = None;
            note_loss(lifecycle);
        }
        if let Some(last) = lifecycle.last_launch {
            let wait = relaunch_wait(
                lifecycle.quick_losses,
                last.elapsed(),
                config.relaunch_interval,
            );
            if !wait.is_zero() {
                return Err(BrowserError::RelaunchTooSoon {
                    seconds: wait.as_secs_f64().ceil() as u64,
                    interval: config.relaunch_interval.as_secs(),
                    losses: lifecycle.quick_losses,
                });
            }
        }
        // A launch a cut tick left running on the blocking pool finishes first (what it started
        // is ended as it is dropped), so that two are never in flight on one profile.
        let launching = self.shared.launching.clone().lock_owned().await;
        let stop = self.shared.stopping.clone();
        if stop.load(Ordering::SeqCst) {
            return Err(managed::LaunchError::Stopped.into());
        }
        // Counted from the attempt: a launch that fails is a quick loss too.
        lifecycle.last_launch = Some(Instant::now());
        lifecycle.established_at = None;
        let binary = managed::find_binary(config.chrome_path.as_deref())?;
        let options = LaunchOptions {
            binary,
            profile_dir: config.profile_dir.clone(),
            port: config.port,
            headless: config.headless,
            stderr_log: config.stderr_log.clone(),
        };
        let profile_dir = config.profile_dir.clone();
        // The launched browser travels with the hold on `launching`: should this future be gone
        // (the tick cut), tokio drops the two in that order, so the browser is ended (see
        // `Managed`) before anything waiting for the launch goes on.
        let launched = tokio::task::spawn_blocking(move || {
            // Anything still using our profile is a leftover of an earlier run (the lock makes
            // this daemon the only owner of the profile in launch mode).
            let left = managed::leftovers(&profile_dir, &[]);
            let ended = managed::end_processes(&left, &profile_dir, Duration::from_secs(3));
            Managed::launch_unless(&options, Duration::from_secs(30), &stop)
                .map(|m| (m, ended, launching))
        })
        .await;
        let (managed, ended, _launching) = match launched {
            Ok(Ok(launched)) => launched,
            // Given up for a stop: not a loss of the browser.
            Ok(Err(managed::LaunchError::Stopped)) => {
                return Err(managed::LaunchError::Stopped.into())
            }
            failed => {
                lifecycle.quick_losses = lifecycle.quick_losses.saturating_add(1);
                return Err(match failed {
                    Ok(Err(err)) => err.into(),
                    Err(join) => BrowserError::Launch(join.to_string()),
                    Ok(Ok(_)) => unreachable!("matched above"),
                });
            }
        };
        if ended > 0 {
            (self.shared.notify)(Notice::LeftoversEnded { count: ended });
        }
        lifecycle.launched_once = true;
        let port = managed.identity.port;
        let _ = managed.identity.write(&config.identity_path);
        (self.shared.notify)(Notice::Launched {
            pid: managed.identity.pid,
            port,
        });
        lifecycle.managed = Some(managed);
        Ok(port)
    }

    async fn establish(&self, port: u16) -> Result<(), BrowserError> {
        let config = &self.shared.config;
        let deadline = Duration::from_secs(3);
        let ws_url = cdp::browser_ws_url(config.host, port, deadline).await?;
        let conn = Connection::connect(&ws_url, deadline).await?;
        // Discovery first, so a page opened from now on is announced to the guard.
        let ours = Arc::new(Mutex::new(None::<String>));
        let events = conn.subscribe();
        conn.call(
            "Target.setDiscoverTargets",
            json!({ "discover": true }),
            None,
            deadline,
        )
        .await?;
        let pages = page_targets(&conn, deadline).await?;
        let target_id = match pages
            .iter()
            .find(|(_, url)| url == "about:blank")
            .or(pages.first())
        {
            Some((id, _)) => id.clone(),
            None => create_page(&conn, deadline).await?,
        };
        let session_id = attach(&conn, &target_id, deadline).await?;
        if let Ok(mut slot) = ours.lock() {
            *slot = Some(target_id.clone());
        }
        let browser_pid = managed::browser_pid(&conn).await;
        let live = Live {
            conn: conn.clone(),
            target_id,
            session_id,
            browser_pid,
            ours: ours.clone(),
        };
        self.shared.closing.store(false, Ordering::SeqCst);
        if let Ok(mut slot) = self.shared.live.lock() {
            *slot = Some(live);
        }
        tokio::spawn(guard::run(self.clone(), conn, ours, events));
        // Pages that were open before we started watching.
        self.enforce_page_cap().await?;
        Ok(())
    }

    /// The managed browser's main process id(s); in attach mode, the process serving the port.
    pub fn pids(&self) -> Vec<u32> {
        self.live()
            .and_then(|l| l.browser_pid)
            .into_iter()
            .collect()
    }

    /// Resident memory of the whole browser process tree, counting shared pages once per
    /// process: cheap (one small read per process), and never below [`Browser::memory_bytes`].
    ///
    /// The tree is found by the kernel's child links, which costs a read per thread of every
    /// browser process (a hundred and more); between navigations only its known members are
    /// read again (one small read each), and it is looked for afresh when a page navigated, a
    /// member is gone, or after [`super::TREE_REFRESH`].
    pub fn resident_bytes(&self) -> u64 {
        let bytes = self
            .pids()
            .iter()
            .map(|root| self.tree_resident(*root))
            .sum();
        if let Ok(mut read) = self.shared.resident_read.lock() {
            *read = Some((Instant::now(), bytes));
        }
        bytes
    }

    /// Whether the last [`Browser::resident_bytes`] still answers for `cap_bytes` without a new
    /// reading (see [`super::RESIDENT_REREAD`]).
    pub(super) fn resident_recently_far_below(&self, cap_bytes: u64) -> bool {
        let roots = self.pids();
        let tree_changed = match self.shared.tree.lock() {
            Ok(known) => known
                .as_ref()
                .is_none_or(|tree| tree.stale || roots != [tree.root]),
            Err(_) => true,
        };
        let last = self.shared.resident_read.lock().ok().and_then(|read| *read);
        super::resident_reading_holds(last, tree_changed, Instant::now(), cap_bytes)
    }

    fn tree_resident(&self, root: u32) -> u64 {
        let mut known = match self.shared.tree.lock() {
            Ok(known) => known,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tree) = known
            .as_ref()
            .filter(|t| t.root == root && !t.stale && t.found.elapsed() < super::TREE_REFRESH)
        {
            let now: Option<Vec<u64>> = tree
                .members
                .iter()
                .map(platform::Followed::resident_bytes)
                .collect();
            if let Some(now) = now {
                return now.iter().sum();
            }
        }
        let found = platform::process_tree(root);
        *known = Some(super::KnownTree {
            root,
            members: found
                .iter()
                .filter_map(|p| platform::follow(p.pid, p.start_unix_ms))
                .collect(),
            found: Instant::now(),
            stale: false,
        });
        found.iter().map(|p| p.rss_bytes).sum()
    }

    /// The processes [`Browser::resident_bytes`] counted last.
    pub fn counted_processes(&self) -> Vec<u32> {
        self.shared
            .tree
            .lock()
            .ok()
            .and_then(|known| {
                known
                    .as_ref()
                    .map(|t| t.members.iter().map(platform::Followed::pid).collect())
            })
            .unwrap_or_default()
    }

    /// A page navigated: the browser may have started processes for it.
    pub(super) fn tree_may_have_grown(&self) {
        if let Ok(mut known) = self.shared.tree.lock() {
            if let Some(tree) = known.as_mut() {
                tree.stale = true;
            }
        }
    }

    /// Memory of the whole browser process tree (proportional set size where the OS reports
    /// it, so pages shared between Chromium's processes are not counted several times). Reads
    /// every process's `smaps_rollup`, which costs the kernel a walk of its memory map.
    pub fn memory_bytes(&self) -> u64 {
        self.pids()
            .iter()
            .flat_map(|pid| platform::process_tree(*pid))
            .map(|p| platform::proportional_memory(p.pid).unwrap_or(p.rss_bytes))
            .sum()
    }

    /// The identity of the browser we launched, if any.
    pub async fn managed_identity(&self) -> Option<Identity> {
        self.shared
            .lifecycle
            .lock()
            .await
            .managed
            .as_ref()
            .map(|m| m.identity.clone())
    }

    /// One cheap round trip to the browser process.
    pub async fn heartbeat(&self) -> Result<(), BrowserError> {
        let live = self.page()?;
        live.conn
            .call(
                "Browser.getVersion",
                json!({}),
                None,
                self.shared.config.heartbeat_deadline,
            )
            .await?;
        Ok(())
    }

    /// Launch mode: ends the browser we own and starts a fresh one. A deliberate restart is not
    /// a loss, so the relaunch rate limit does not apply.
    pub(super) async fn restart(&self) -> Result<(), BrowserError> {
        self.drop_connection("restarting the browser");
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if let Some(managed) = lifecycle.managed.take() {
            // Closed in order, so the restarted browser keeps the session.
            managed
                .close(managed::CLOSE_WAIT, std::future::pending())
                .await;
        }
        lifecycle.last_launch = None;
        drop(lifecycle);
        self.connect().await
    }

    pub(super) fn drop_connection(&self, reason: &str) {
        if let Ok(mut slot) = self.shared.live.lock() {
            if let Some(live) = slot.take() {
                self.shared.closing.store(true, Ordering::SeqCst);
                live.conn.close(reason);
            }
        }
    }

    /// Orderly end: in launch mode the browser we own is closed (`Browser.close`, so that it
    /// writes its cookies, then signals for what is left; see [`Managed::close`]); in attach mode
    /// our page is parked and the connection closed, the browser left running.
    pub async fn shutdown(&self) {
        self.shutdown_within(std::future::pending()).await
    }

    /// [`Browser::shutdown`], waiting for the browser to close by itself only until `give_up`
    /// (the daemon's abort) resolves, then signalling it.
    pub async fn shutdown_within(&self, give_up: impl std::future::Future<Output = ()>) {
        tokio::pin!(give_up);
        // A launch still in flight (its tick was cut by STOP) gives up, ending what it started,
        // or finishes and is dropped, which ends it: either way before this process exits.
        // While this runs no launch starts (each checks `stopping` once it holds `launching`,
        // which is not held here past the wait, so a restart in the guard cannot deadlock us);
        // one that is never done (`give_up` came first) stays told to give up.
        self.shared.stopping.store(true, Ordering::SeqCst);
        let gave_up = tokio::select! {
            biased;
            _ = self.shared.launching.lock() => false,
            _ = &mut give_up => true,
        };
        if self.shared.config.mode == BrowserMode::Attach && self.live().is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.park()).await;
        }
        self.drop_connection("shutting down");
        let mut lifecycle = self.shared.lifecycle.lock().await;
        if let Some(managed) = lifecycle.managed.take() {
            // `give_up` done is not polled again.
            if gave_up {
                managed
                    .close(managed::CLOSE_WAIT, std::future::ready(()))
                    .await;
            } else {
                managed.close(managed::CLOSE_WAIT, &mut give_up).await;
            }
            let _ = std::fs::remove_file(&self.shared.config.identity_path);
        } else if self.shared.config.mode == BrowserMode::Launch
            && (lifecycle.launched_once || lifecycle.last_launch.is_some())
        {
            // No browser to close, though one was launched: anything still on our profile is
            // one whose ending was cut short with its tick (its signals were still on their way
            // on the blocking pool). Closing the browser above sweeps the profile itself. In
            // launch mode the profile is ours alone (the daemon's lock), as it is when leftovers
            // are ended before a launch.
            let profile = self.shared.config.profile_dir.clone();
            let grace = Duration::from_secs(if gave_up { 1 } else { 2 });
            let _ = tokio::task::spawn_blocking(move || {
                let left = managed::leftovers(&profile, &[]);
                if !left.is_empty() {
                    managed::end_processes(&left, &profile, grace);
                }
            })
            .await;
        }
        if !gave_up {
            self.shared.stopping.store(false, Ordering::SeqCst);
        }
    }
}
/// A browser that was lost after working at least this long is relaunched at once.
pub(super) const HEALTHY_LIFE: Duration = Duration::from_secs(5);

/// Counts the loss of the browser we launched last: a quick one (it never worked, or not for
/// [`HEALTHY_LIFE`]) makes the next relaunch wait; one after it worked clears the count.
fn note_loss(lifecycle: &mut Lifecycle) {
    let worked = lifecycle
        .established_at
        .take()
        .is_some_and(|at| at.elapsed() >= HEALTHY_LIFE);
    lifecycle.quick_losses = if worked {
        0
    } else {
        lifecycle.quick_losses.saturating_add(1)
    };
}

/// How long to wait before the next launch, `since_launch` after the last one: none after a
/// browser that worked, then 1 s, 2 s, 4 s … for each quick loss in a row, at most `longest`.
pub(super) fn relaunch_wait(
    quick_losses: u32,
    since_launch: Duration,
    longest: Duration,
) -> Duration {
    if quick_losses == 0 {
        return Duration::ZERO;
    }
    let step = Duration::from_secs(1u64 << (quick_losses - 1).min(20)).min(longest);
    step.saturating_sub(since_launch)
}

#[cfg(test)]
mod tests {
    use super::relaunch_wait;
    use std::time::Duration;

    #[test]
    fn relaunch_waits_double_with_quick_losses_and_stop_at_the_longest() {
        let minute = Duration::from_secs(60);
        let s = Duration::from_secs;
        assert_eq!(
            relaunch_wait(0, s(0), minute),
            s(0),
            "after a browser that worked: at once"
        );
        assert_eq!(relaunch_wait(1, s(0), minute), s(1));
        assert_eq!(relaunch_wait(2, s(0), minute), s(2));
        assert_eq!(
            relaunch_wait(3, s(1), minute),
            s(3),
            "counted from the last launch"
        );
        assert_eq!(relaunch_wait(7, s(0), minute), minute);
        assert_eq!(relaunch_wait(40, s(0), minute), minute, "no overflow");
        assert_eq!(relaunch_wait(5, s(100), minute), s(0), "the wait is over");
    }
}
