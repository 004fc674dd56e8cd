//! Liveness that means progress: Prometheus `/metrics` and `/healthz` (systemd's notify protocol
//! is in [`crate::notify`]).
//!
//! The counters observe the events the daemon records, on their way to the store, so they can
//! never disagree with `system_events`. Queue depths are read from the store when scraped.
//! `/healthz` answers 200 only while ticks complete within their budget *and* the browser
//! connection is alive (a frozen browser fails its heartbeat within seconds and drops it): a
//! process that merely exists is not healthy.

use crate::browser::Browser;
use crate::events::{self, Event, EventObserver};
use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tick duration buckets, seconds.
const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Counters and gauges, updated from events. Cheap to share.
#[derive(Default)]
pub struct Metrics {
    ticks: AtomicU64,
    ticks_failed: AtomicU64,
    pages: AtomicU64,
    strays_closed: AtomicU64,
    browser_lost: AtomicU64,
    browser_restarts: AtomicU64,
    hard_caps: AtomicU64,
    actions_succeeded: AtomicU64,
    actions_failed: AtomicU64,
    actions_uncertain: AtomicU64,
    rate_limits: AtomicU64,
    stop_latency_ms: AtomicU64,
    durations: Mutex<Histogram>,
    health: Mutex<Option<TickHealth>>,
}

#[derive(Clone, Copy)]
struct TickHealth {
    at: Instant,
    /// How long until the next tick must have finished.
    budget: Duration,
}

impl EventObserver for Metrics {
    /// Counts one event (called for every event the daemon records).
    fn observe(&self, event: &Event) {
        let data = &event.event_data;
        let add = |counter: &AtomicU64, n: u64| {
            counter.fetch_add(n, Ordering::Relaxed);
        };
        match event.event_type.as_str() {
            events::TICK => {
                add(&self.ticks, 1);
                // A tick that only reports a job's failure is not a failed tick.
                let failed = data["failed"]
                    .as_bool()
                    .unwrap_or(!data["last_error"].is_null());
                if failed {
                    add(&self.ticks_failed, 1);
                }
                self.pages
                    .store(data["pages"].as_u64().unwrap_or(0), Ordering::Relaxed);
                let seconds = data["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
                if let Ok(mut histogram) = self.durations.lock() {
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        if seconds <= *bound {
                            histogram.counts[i] += 1;
                        }
                    }
                    histogram.sum += seconds;
                    histogram.count += 1;
                }
            }
            events::PAGE_CAP_ENFORCED => {
                add(&self.strays_closed, data["closed"].as_u64().unwrap_or(0))
            }
            events::BROWSER_LOST => add(&self.browser_lost, 1),
            events::BROWSER_RECYCLED if data["browser_restarted"] == serde_json::json!(true) => {
                add(&self.browser_restarts, 1)
            }
            events::HARD_CAP_EXCEEDED => add(&self.hard_caps, 1),
            events::POST_SUCCESS | events::REPLY_SUCCESS => add(&self.actions_succeeded, 1),
            events::POST_FAILED => add(&self.actions_failed, 1),
            events::JOB_OUTCOME_UNKNOWN => add(&self.actions_uncertain, 1),
            events::RATE_LIMIT_DETECTED => add(&self.rate_limits, 1),
            events::STOP => self.stop_latency_ms.store(
                data["ms_since_request"].as_u64().unwrap_or(0),
                Ordering::Relaxed,
            ),
            _ => {}
        }
    }
}

impl Metrics {
    /// A tick completed; the next must complete within `budget`.
    pub fn tick_completed(&self, budget: Duration) {
        if let Ok(mut health) = self.health.lock() {
            *health = Some(TickHealth {
                at: Instant::now(),
                budget,
            });
        }
    }

    /// `None` when healthy, else why not.
    pub fn unhealthy(&self, browser: &Browser) -> Option<String> {
        let health = self.health.lock().ok().and_then(|h| *h);
        match health {
            None => return Some("no tick has completed yet".into()),
            Some(h) if h.at.elapsed() > h.budget => {
                return Some(format!(
                    "the last tick completed {:.0}s ago (budget {:.0}s)",
                    h.at.elapsed().as_secs_f64(),
                    h.budget.as_secs_f64()
                ))
            }
            _ => {}
        }
        if !browser.is_connected() {
            return Some("the browser does not answer its heartbeat".into());
        }
        None
    }

    /// Prometheus text format.
    pub fn render(&self, queue: &[(crate::jobs::Kind, String, u64)]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            "executor_ticks_total",
            "Ticks completed (EXECUTOR_DAEMON_TICK events).",
            get(&self.ticks),
        );
        counter(
            "executor_ticks_failed_total",
            "Ticks that ended with last_error.",
            get(&self.ticks_failed),
        );
        counter(
            "executor_stray_pages_closed_total",
            "Pages other than ours closed by the page cap.",
            get(&self.strays_closed),
        );
        counter(
            "executor_browser_lost_total",
            "Browser connections lost (crash, kill, freeze).",
            get(&self.browser_lost),
        );
        counter(
            "executor_browser_restarts_total",
            "Browser restarts for the memory cap.",
            get(&self.browser_restarts),
        );
        counter(
            "executor_hard_cap_exceeded_total",
            "HARD CAP EXCEEDED exits.",
            get(&self.hard_caps),
        );
        counter(
            "executor_rate_limits_total",
            "HTTP 429 answers that paused a lane.",
            get(&self.rate_limits),
        );
        let _ = writeln!(out, "# HELP executor_actions_total Actions by outcome.\n# TYPE executor_actions_total counter");
        for (outcome, value) in [
            ("succeeded", get(&self.actions_succeeded)),
            ("failed", get(&self.actions_failed)),
            ("uncertain", get(&self.actions_uncertain)),
        ] {
            let _ = writeln!(
                out,
                "executor_actions_total{{outcome=\"{outcome}\"}} {value}"
            );
        }
        let _ = writeln!(out, "# HELP executor_pages Page targets at the last tick.\n# TYPE executor_pages gauge\nexecutor_pages {}", get(&self.pages));
        let _ = writeln!(
            out,
            "# HELP executor_stop_latency_seconds Time from the STOP request to the STOP line.\n# TYPE executor_stop_latency_seconds gauge\nexecutor_stop_latency_seconds {}",
            get(&self.stop_latency_ms) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP executor_queue_jobs Jobs by lane and state.\n# TYPE executor_queue_jobs gauge"
        );
        for (kind, state, n) in queue {
            let _ = writeln!(
                out,
                "executor_queue_jobs{{lane=\"{}\",state=\"{state}\"}} {n}",
                kind.as_str()
            );
        }
        let _ = writeln!(out, "# HELP executor_tick_duration_seconds Tick run time.\n# TYPE executor_tick_duration_seconds histogram");
        if let Ok(histogram) = self.durations.lock() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "executor_tick_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                    histogram.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "executor_tick_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "executor_tick_duration_seconds_sum {}", histogram.sum);
            let _ = writeln!(
                out,
                "executor_tick_duration_seconds_count {}",
                histogram.count
            );
        }
        out
    }
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    browser: Browser,
}

async fn metrics_page(State(served): State<Served>) -> impl IntoResponse {
    let queue = served.store.job_count_by_state().await.unwrap_or_default();
    (
        [("content-type", "text/plain; version=0.0.4")],
        served.metrics.render(&queue),
    )
}

async fn healthz(State(served): State<Served>) -> impl IntoResponse {
    match served.metrics.unhealthy(&served.browser) {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

/// Serves `/metrics` and `/healthz` on `addr` until `stop` resolves, and beside them the
/// dashboard's routes when given (`--ui`; they keep their own token check, the metrics stay
/// open to the scraper as before).
pub async fn serve(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    browser: Browser,
    dashboard: Option<Router>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .with_state(Served {
            metrics,
            store,
            browser,
        });
    let app = match dashboard {
        Some(dashboard) => app.merge(dashboard),
        None => app,
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
    });
    Ok(bound)
}
