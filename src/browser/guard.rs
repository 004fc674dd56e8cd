//! The guard task: one per connection, the only reader of its event stream.
//!
//! It closes every page but ours the moment `Target.targetCreated` announces it (and sweeps
//! with the page cap when it missed announcements), sends a heartbeat so that a frozen browser
//! is noticed within `heartbeat_deadline`, and reports the loss of the connection once. A
//! connection we close on purpose (restart, shutdown) is not reported as lost. The guard ends
//! with its connection.

use super::cdp::{CdpError, CdpEvent, Connection};
use super::targets::close_target;
use super::{Browser, Notice};
use serde_json::json;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The guard: closes strays as they appear, sends the heartbeat, reports a loss once.
pub(super) async fn run(
    browser: Browser,
    conn: Connection,
    ours: Arc<Mutex<Option<String>>>,
    mut events: super::cdp::Events,
) {
    let config = browser.shared.config.clone();
    // The beat is due `heartbeat_every` after the browser was last heard from: anything it
    // sends (an answer to the tick's calls, an event) shows it alive as well as an answer to the
    // heartbeat would, so a browser the ticks talk to often is never sent one.
    let beat_due = tokio::time::sleep(config.heartbeat_every);
    tokio::pin!(beat_due);
    let mut known_pages: HashSet<String> = HashSet::new();
    let reason = loop {
        tokio::select! {
            _ = conn.closed() => break conn.close_reason(),
            _ = &mut beat_due => {
                let quiet = conn.quiet_for();
                if quiet < config.heartbeat_every {
                    beat_due.as_mut().reset(tokio::time::Instant::now() + (config.heartbeat_every - quiet));
                    continue;
                }
                beat_due.as_mut().reset(tokio::time::Instant::now() + config.heartbeat_every);
                let beat = conn.call("Browser.getVersion", json!({}), None, config.heartbeat_deadline).await;
                if let Err(err) = beat {
                    // A browser that keeps talking (events, answers to our closes) is busy, not
                    // lost: under a tab storm its answers queue up behind the storm's.
                    let busy = matches!(err, CdpError::Timeout { .. })
                        && conn.quiet_for() < config.heartbeat_deadline;
                    if !busy {
                        let reason = format!("heartbeat: {err}");
                        conn.close(&reason);
                        break reason;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(event) => on_event(&browser, &conn, &ours, &mut known_pages, event),
                Err(super::cdp::EventsEnded::Lagged(_)) => {
                    // We missed announcements: no earlier page count holds; sweep instead.
                    browser.shared.page_events.fetch_add(1, Ordering::SeqCst);
                    let browser = browser.clone();
                    tokio::spawn(async move { let _ = browser.enforce_page_cap().await; });
                }
                Err(_) => break conn.close_reason(),
            },
        }
    };
    if !browser.shared.closing.load(Ordering::SeqCst) {
        (browser.shared.notify)(Notice::Lost { reason });
    }
}

fn on_event(
    browser: &Browser,
    conn: &Connection,
    ours: &Arc<Mutex<Option<String>>>,
    known_pages: &mut HashSet<String>,
    event: CdpEvent,
) {
    match event.method.as_str() {
        "Target.targetCreated" | "Target.targetInfoChanged" => {
            let info = &event.params["targetInfo"];
            if info["type"].as_str() != Some("page") {
                return;
            }
            let Some(id) = info["targetId"].as_str() else {
                return;
            };
            let is_new = known_pages.insert(id.to_string());
            if is_new {
                browser.shared.page_events.fetch_add(1, Ordering::SeqCst);
                // A page brings its renderer process.
                browser.tree_may_have_grown();
            }
            let our_id = ours.lock().ok().and_then(|o| o.clone());
            // While our page is being (re)created it has no name yet: leave sweeping to the
            // explicit cap check that follows.
            let Some(our_id) = our_id else { return };
            if id == our_id || !is_new {
                return;
            }
            let detected = known_pages.len().max(2);
            let conn = conn.clone();
            let id = id.to_string();
            let browser = browser.clone();
            tokio::spawn(async move {
                // Generous: under a storm the browser answers closes in its own time.
                if close_target(&conn, &id, Duration::from_secs(10)).await {
                    browser.shared.strays_closed.fetch_add(1, Ordering::Relaxed);
                    (browser.shared.notify)(Notice::StraysClosed {
                        detected,
                        closed: 1,
                    });
                }
            });
        }
        "Target.targetDestroyed" => {
            // Any target: its type is not in the announcement.
            browser.shared.page_events.fetch_add(1, Ordering::SeqCst);
            if let Some(id) = event.params["targetId"].as_str() {
                known_pages.remove(id);
            }
        }
        _ => {}
    }
}
