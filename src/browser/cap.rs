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

impl Browser {
    /// Closes every page but ours and waits (bounded) until they are gone.
    pub async fn enforce_page_cap(&self) -> Result<CapCheck, BrowserError> {
        let live = self.page()?;
        let deadline = self.shared.config.call_deadline.min(Duration::from_secs(5));
        let pages = page_targets(&live.conn, deadline).await?;
        let found = pages.len();
        let strays: Vec<String> = pages
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| *id != live.target_id)
            .collect();
        let mut closed = 0;
        if !strays.is_empty() {
            (self.shared.notify)(Notice::StraysClosed {
                detected: found,
                closed: strays.len(),
            });
            for id in &strays {
                if close_target(&live.conn, id, deadline).await {
                    closed += 1;
                }
            }
            self.shared
                .strays_closed
                .fetch_add(closed as u64, Ordering::Relaxed);
        }
        // Closing is asynchronous in the browser: wait until the count settles, bounded.
        let settle = Instant::now() + Duration::from_secs(2);
        let remaining = loop {
            let now = page_targets(&live.conn, deadline).await?.len();
            if now <= 1 || Instant::now() >= settle {
                break now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(CapCheck {
            found,
            closed,
            remaining,
        })
    }

    /// The number of page targets right now.
    pub async fn page_count(&self) -> Result<usize, BrowserError> {
        let live = self.page()?;
        Ok(page_targets(&live.conn, self.shared.config.call_deadline)
            .await?
            .len())
    }

    /// Stray pages closed since the last call (for the tick's counters).
    pub fn take_strays_closed(&self) -> u64 {
        self.shared.strays_closed.swap(0, Ordering::Relaxed)
    }

    /// Between actions only: when the browser's process tree is above `cap_bytes`, recycle our
    /// page; in launch mode restart the browser if that was not enough. Returns whether anything
    /// was done.
    pub async fn enforce_memory_cap(&self, cap_bytes: u64) -> Result<bool, BrowserError> {
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
