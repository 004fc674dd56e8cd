//! The caps on what the browser may hold: one page (ours), and a memory ceiling.
//!
//! The guard closes a stray page the moment it is announced; [`Browser::enforce_page_cap`] is
//! the sweep that does not rely on announcements (at connect, once per tick, after missed
//! events). It counts what it found and closed, and waits (bounded) for the count to settle,
//! because closing is asynchronous in the browser: more than one page left after that is a
//! hard-cap breach, which the tick reports and the daemon exits on. The memory cap is enforced
//! between actions only, never in the middle of one.

use super::targets::{close_target, page_targets};
use super::{Browser, BrowserError, CapCheck, Notice};
use crate::settings::BrowserMode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long the sweep keeps closing under a tab storm before it gives up on the browser.
pub const STORM_BOUND: Duration = Duration::from_secs(30);

/// A storm that comes back within this time of a replacement is not the browser's doing (a page
/// or program keeps opening tabs): replacing it again would only repeat, so the tick reports what
/// remains and the daemon ends with `HARD CAP EXCEEDED` for an operator to look.
pub const STORM_REPEAT: Duration = Duration::from_secs(600);

/// At most this many closes in flight at once: the browser works through them in order, and a
/// few hundred at once would only make each wait longer.
const CLOSES_IN_FLIGHT: usize = 32;

/// Closes `ids`, [`CLOSES_IN_FLIGHT`] at a time; the number closed.
async fn close_all(conn: &super::cdp::Connection, ids: &[String], deadline: Duration) -> usize {
    let mut closed = 0;
    for batch in ids.chunks(CLOSES_IN_FLIGHT) {
        let results =
            futures_util::future::join_all(batch.iter().map(|id| close_target(conn, id, deadline)))
                .await;
        closed += results.into_iter().filter(|ok| *ok).count();
    }
    closed
}

impl Browser {
    /// Closes every page but ours and waits (bounded) until they are gone. Under a tab storm
    /// it keeps sweeping, many closes in flight at a time, for up to [`STORM_BOUND`], then
    /// reports what remains.
    pub async fn enforce_page_cap(&self) -> Result<CapCheck, BrowserError> {
        let live = self.page()?;
        let started = Instant::now();
        // Listing answers late under a storm: its deadline is the storm's, not one call's.
        let list_deadline = self
            .shared
            .config
            .call_deadline
            .max(Duration::from_secs(10));
        let close_deadline = Duration::from_secs(10);
        let mut found = 0;
        let mut closed = 0;
        let remaining = loop {
            let events_before = self.shared.page_events.load(Ordering::SeqCst);
            let pages = page_targets(&live.conn, list_deadline).await?;
            let listed = pages.len();
            self.cached(&live.session_id, |cache| {
                cache.listed = Some((events_before, listed))
            });
            found = found.max(pages.len());
            let strays: Vec<String> = pages
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| *id != live.target_id)
                .collect();
            if strays.is_empty() {
                break 1;
            }
            if started.elapsed() >= self.shared.config.storm_bound {
                break strays.len() + 1;
            }
            (self.shared.notify)(Notice::StraysClosed {
                detected: strays.len() + 1,
                closed: strays.len(),
            });
            let now_closed = close_all(&live.conn, &strays, close_deadline).await;
            closed += now_closed;
            self.shared
                .strays_closed
                .fetch_add(now_closed as u64, Ordering::Relaxed);
            // Closing is asynchronous in the browser: wait until the count settles, bounded.
            let settle = Instant::now() + Duration::from_secs(2);
            loop {
                let now = page_targets(&live.conn, list_deadline).await?.len();
                if now <= 1 || Instant::now() >= settle {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        Ok(CapCheck {
            found,
            closed,
            remaining,
        })
    }

    /// The tick's cap step: [`Browser::enforce_page_cap`], and in launch mode a browser that
    /// could not be brought back to one page is replaced by a fresh one (which has only ours),
    /// unless it was already replaced for a storm within [`STORM_REPEAT`]. What remains is the
    /// caller's hard cap.
    pub async fn sweep_or_replace(&self) -> Result<CapCheck, BrowserError> {
        let cap = self.enforce_page_cap().await?;
        if cap.remaining <= 1 || self.shared.config.mode != BrowserMode::Launch {
            return Ok(cap);
        }
        {
            let mut lifecycle = self.shared.lifecycle.lock().await;
            let repeated = lifecycle
                .storm_replaced_at
                .is_some_and(|at| at.elapsed() < STORM_REPEAT);
            if repeated {
                return Ok(cap);
            }
            lifecycle.storm_replaced_at = Some(Instant::now());
        }
        self.restart().await?;
        (self.shared.notify)(Notice::ReplacedAfterStorm {
            pages: cap.remaining,
        });
        Ok(CapCheck {
            remaining: self.page_count().await?,
            ..cap
        })
    }

    /// The number of page targets right now: the last listing while the browser has announced
    /// no page created or destroyed since (an idle tick lists once, in its sweep), else a new
    /// listing.
    pub async fn page_count(&self) -> Result<usize, BrowserError> {
        let live = self.page()?;
        let events_before = self.shared.page_events.load(Ordering::SeqCst);
        let still_holds = self.cached(&live.session_id, |cache| {
            cache
                .listed
                .filter(|(events, _)| *events == events_before)
                .map(|(_, count)| count)
        });
        if let Some(count) = still_holds {
            return Ok(count);
        }
        let count = page_targets(&live.conn, self.shared.config.call_deadline)
            .await?
            .len();
        self.cached(&live.session_id, |cache| {
            cache.listed = Some((events_before, count))
        });
        Ok(count)
    }

    /// Stray pages closed since the last call (for the tick's counters).
    pub fn take_strays_closed(&self) -> u64 {
        self.shared.strays_closed.swap(0, Ordering::Relaxed)
    }

    /// Between actions only: when the browser's process tree is above `cap_bytes`, recycle our
    /// page; in launch mode restart the browser if that was not enough. Returns whether anything
    /// was done.
    pub async fn enforce_memory_cap(&self, cap_bytes: u64) -> Result<bool, BrowserError> {
        // Proportional memory is never above resident memory: below the cap by the cheap count,
        // the costly one is not needed (it is, only near or above the cap).
        if self.resident_recently_far_below(cap_bytes) || self.resident_bytes() <= cap_bytes {
            return Ok(false);
        }
        let before_bytes = self.memory_bytes();
        if before_bytes <= cap_bytes {
            return Ok(false);
        }
        self.recreate_page().await?;
        let mut after_bytes = self.memory_bytes();
        let mut browser_restarted = false;
        if after_bytes > cap_bytes && self.shared.config.mode == BrowserMode::Launch {
            self.restart().await?;
            browser_restarted = true;
            after_bytes = self.memory_bytes();
        }
        (self.shared.notify)(Notice::Recycled {
            before_bytes,
            after_bytes,
            browser_restarted,
        });
        Ok(true)
    }
}
