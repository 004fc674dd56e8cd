//! The HTML pages: the overview, the job list with its filters, one job with its history, and
//! the operator's actions (retry, cancel, retry every dead job, pause and resume). The actions
//! call the same functions as `executor jobs retry|cancel` and `executor pause|resume`, so the
//! rules of which state allows what are the CLI's, a pause is stored and announced as the
//! CLI's is, and refusals read the same. "Why is it waiting" is [`crate::waiting`]'s, in the
//! words `executor status` and `jobs show` use.

use super::html::{cell, escape, page, table, url_component};
use super::view::{self, Overview};
use super::{Dashboard, Failure, Nonce};
use crate::clock::format_ts;
use crate::jobs::{Job, JobQuery, JobState, Kind, OperatorAction, STATE_NAMES};
use crate::pauses::{Pause, Scope};
use crate::store::{EventQuery, StoreError};
use crate::waiting::{Cause, Waiting};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// The most jobs one list shows, and one bulk retry takes.
const MOST_JOBS: u32 = 1000;
/// The most events a job's history shows (the newest).
const MOST_HISTORY: u32 = 500;

#[derive(Debug, Deserialize, Default)]
pub struct OverviewParams {
    /// How many hours the timeline spans (1 to 48; 6 by default).
    hours: Option<u64>,
}

pub async fn overview(
    State(ui): State<Dashboard>,
    Extension(Nonce(nonce)): Extension<Nonce>,
    Query(params): Query<OverviewParams>,
) -> Result<Html<String>, Failure> {
    let span = Duration::from_secs(params.hours.unwrap_or(6).clamp(1, 48) * 3600);
    let overview = view::overview(ui.store(), ui.silence(), span, SystemTime::now()).await?;
    let body = format!(
        "<div id=\"live\">{}</div>{}",
        overview_body(&overview, ui.csrf()),
        pause_form(ui.csrf())
    );
    Ok(Html(page("Overview", &nonce, true, &body)))
}

fn overview_body(overview: &Overview, csrf: &str) -> String {
    let executors: Vec<String> = overview.executors.iter().map(executor_row).collect();
    let queue: Vec<String> = overview
        .queue
        .iter()
        .map(|row| queue_row(row, overview, csrf))
        .collect();
    let pauses: Vec<String> = overview
        .pauses
        .iter()
        .map(|pause| pause_row(pause, csrf))
        .collect();
    format!(
        "<section><h2>Executors</h2>{}</section>\
         <section><h2>Queue by account and lane</h2>{}</section>\
         <section><h2>Pauses in force</h2>{}</section>\
         <section><h2>The last {} hours</h2>{}</section>\
         <p class=\"muted\">As of {} · updates every 5 s</p>",
        table(
            "executors",
            &[
                "Executor",
                "Account",
                "Health",
                "Last tick",
                "Tick",
                "Pages",
                "Backoff",
                "Last error",
                "Host"
            ],
            &executors,
            "No executor has registered in this store yet.",
        ),
        table(
            "queue",
            &[
                "Account",
                "Lane",
                "Due",
                "Waiting",
                "First due",
                "In flight",
                "Uncertain",
                "Dead",
                "Paused",
                "Why waiting"
            ],
            &queue,
            "No unfinished jobs.",
        ),
        table(
            "pauses",
            &["Paused", "Since", "By", "Reason", ""],
            &pauses,
            "Nothing is paused: every executor claims in every lane.",
        ),
        overview.timeline.hours,
        timeline_svg(&overview.timeline),
        escape(&overview.at),
    )
}

/// A JSON value as a cell's text ("-" for nothing).
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn account_name(account: &str) -> &str {
    if account.is_empty() {
        "(default)"
    } else {
        account
    }
}

fn executor_row(row: &Value) -> String {
    let health = shown(&row["health"]);
    let health = match row["standby_for"].as_str() {
        Some(holder) if health == "standby" => format!("standby ({holder})"),
        _ => health,
    };
    let backoff = match &row["backoff_seconds"] {
        Value::Null => "-".into(),
        seconds => format!("{seconds}s"),
    };
    [
        cell("", &shown(&row["executor"])),
        cell(
            "",
            account_name(row["account"].as_str().unwrap_or_default()),
        ),
        cell(&format!("s-{}", shown(&row["health"])), &health),
        cell("t", &shown(&row["last_tick_at"])),
        cell("", &shown(&row["tick_line"])),
        cell("n", &shown(&row["pages"])),
        cell("n", &backoff),
        cell("err", &shown(&row["last_error"])),
        cell("", &shown(&row["host"])),
    ]
    .concat()
}

fn queue_row(row: &view::QueueRow, overview: &Overview, csrf: &str) -> String {
    let link = |state: &str, n: u64| {
        format!(
            "<td class=\"n\" data-col=\"{state}\"><a href=\"/jobs?state={state}&amp;kind={}&amp;account={}\">{n}</a></td>",
            row.lane,
            url_component(account_name(&row.account)),
        )
    };
    [
        cell("", account_name(&row.account)),
        cell("", row.lane),
        format!("<td class=\"n\" data-col=\"due\">{}</td>", row.due),
        format!("<td class=\"n\" data-col=\"waiting\">{}</td>", row.waiting),
        cell("t", row.waiting_until.as_deref().unwrap_or("-")),
        format!(
            "<td class=\"n\" data-col=\"in-flight\">{}</td>",
            row.in_flight
        ),
        link("uncertain", row.uncertain),
        link("dead", row.dead),
        lane_pause_cell(row, overview, csrf),
        why_cell(overview.waiting_of(&row.account, row.lane)),
    ]
    .concat()
}

/// The lane's pause: the one that holds it, or a button that pauses this lane of this account.
fn lane_pause_cell(row: &view::QueueRow, overview: &Overview, csrf: &str) -> String {
    let holding = Kind::parse(row.lane)
        .and_then(|kind| crate::pauses::blocking(&overview.pauses, &row.account, kind));
    if let Some(pause) = holding {
        return format!(
            "<td class=\"pause paused\" data-col=\"paused\" title=\"{}\">paused</td>",
            escape(&pause.describe())
        );
    }
    let scope = Scope {
        kind: Kind::parse(row.lane),
        account: Some(row.account.clone()),
    };
    format!(
        "<td class=\"pause\" data-col=\"paused\">\
         <form method=\"post\" action=\"/pauses\" class=\"inline\">{}\
         <button type=\"submit\" class=\"pause\" title=\"Pause {}\">Pause</button></form></td>",
        scope_fields(&scope, csrf),
        escape(&scope.describe())
    )
}

/// A reason as its stable name (`paused`, `hourly_limit`, …), for the page's `data-reason`.
fn reason_name(reason: crate::waiting::Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The causes, one item each, in `executor status`'s words (each says its own time).
fn causes_list(causes: &[Cause]) -> String {
    let mut out = String::from("<ul class=\"why\">");
    for cause in causes {
        let until = cause.until.map(format_ts).unwrap_or_default();
        let _ = write!(
            out,
            "<li data-reason=\"{}\" data-until=\"{}\">{}</li>",
            escape(&reason_name(cause.reason)),
            escape(&until),
            escape(&cause.message)
        );
    }
    out.push_str("</ul>");
    out
}

/// Why a lane's due jobs wait: `executor status`'s sentence (when the next one goes), then
/// its reasons.
fn why_cell(waiting: Option<&Waiting>) -> String {
    let Some(waiting) = waiting else {
        return "<td class=\"why muted\" data-col=\"why\">-</td>".to_string();
    };
    let goes = waiting.goes_at.map(format_ts).unwrap_or_default();
    format!(
        "<td class=\"why\" data-col=\"why\" data-goes-at=\"{}\">{}{}</td>",
        escape(&goes),
        escape(&waiting.headline()),
        if waiting.reasons.is_empty() {
            String::new()
        } else {
            causes_list(&waiting.reasons)
        }
    )
}

/// The hidden fields that name `scope` exactly (its store key) and prove the form is ours.
fn scope_fields(scope: &Scope, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"scope\" value=\"{}\">",
        escape(csrf),
        escape(&scope.key())
    )
}

/// A pause in force, with the button that lifts exactly it.
fn pause_row(pause: &Pause, csrf: &str) -> String {
    [
        cell("scope", &pause.scope.describe()),
        cell("t", &format_ts(pause.since)),
        cell("", &pause.by),
        cell("text", &pause.reason),
        format!(
            "<td><form method=\"post\" action=\"/pauses/resume\" class=\"inline\">{}\
             <button type=\"submit\" class=\"resume\">Resume</button></form></td>",
            scope_fields(&pause.scope, csrf)
        ),
    ]
    .concat()
}

/// The form that pauses any scope: a lane or both, one account or every account. Outside the
/// refreshed part of the page, so that a refresh never clears what is being typed.
fn pause_form(csrf: &str) -> String {
    format!(
        "<section><h2>Pause</h2><form method=\"post\" action=\"/pauses\" id=\"pause-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <select name=\"kind\"><option value=\"\">both lanes</option>\
         <option value=\"post\">the post lane</option><option value=\"reply\">the reply lane</option></select> \
         of <input name=\"account\" size=\"34\" placeholder=\"every account, or a name, or (default)\"> \
         <input name=\"reason\" maxlength=\"500\" size=\"30\" placeholder=\"why (for the other operators)\"> \
         <button type=\"submit\">Pause</button></form>\
         <p class=\"muted\">Every executor on this store claims nothing there from its next tick; \
         jobs in flight still settle. The same as <code>executor pause</code>.</p></section>",
        escape(csrf)
    )
}

/// One row of the timeline: its name, its value in a bucket, its colour.
type Series = (&'static str, fn(&view::Bucket) -> u64, &'static str);

/// Four bar rows (pages, due queue, failed ticks, strays closed) and a red line per STOP, as
/// inline SVG: no script, no external asset.
fn timeline_svg(timeline: &view::Timeline) -> String {
    const WIDTH: usize = 720;
    const ROW: usize = 44;
    const LABEL: usize = 110;
    let series: [Series; 4] = [
        ("pages", |b| b.pages, "#4a7bd0"),
        ("queue", |b| b.queue, "#6a9f3a"),
        ("failures", |b| b.failures, "#c0392b"),
        ("strays", |b| b.strays_closed, "#d68910"),
    ];
    let columns = timeline.buckets.len().max(1);
    let step = (WIDTH - LABEL) as f64 / columns as f64;
    let height = ROW * series.len() + 16;
    let mut svg = format!(
        "<svg id=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" \
         aria-label=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (row, (name, value, color)) in series.iter().enumerate() {
        let top = row * ROW + 4;
        let most = timeline.buckets.iter().map(value).max().unwrap_or(0);
        let _ = write!(
            svg,
            "<text x=\"2\" y=\"{}\">{name} (max {most})</text>",
            top + ROW / 2
        );
        for (i, bucket) in timeline.buckets.iter().enumerate() {
            let v = value(bucket);
            if v == 0 {
                continue;
            }
            let h = ((ROW - 8) as f64 * v as f64 / most.max(1) as f64).max(1.0);
            let _ = write!(
                svg,
                "<rect class=\"bar {name}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{} {name}: {v}</title></rect>",
                LABEL as f64 + i as f64 * step,
                (top + ROW - 6) as f64 - h,
                (step - 1.0).max(1.0),
                escape(&bucket.start),
            );
        }
    }
    for (i, bucket) in timeline.buckets.iter().enumerate() {
        if bucket.stops > 0 {
            let x = LABEL as f64 + (i as f64 + 0.5) * step;
            let _ = write!(
                svg,
                "<line class=\"stop\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"0\" y2=\"{}\" stroke=\"#c0392b\" stroke-width=\"2\"><title>STOP at {}</title></line>",
                height - 14,
                escape(&bucket.start)
            );
        }
    }
    let (first, last) = (
        timeline
            .buckets
            .first()
            .map(|b| b.start.as_str())
            .unwrap_or_default(),
        timeline
            .buckets
            .last()
            .map(|b| b.start.as_str())
            .unwrap_or_default(),
    );
    let _ = write!(
        svg,
        "<text x=\"{LABEL}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} (+{}s)</text></svg>",
        height - 2,
        escape(first),
        WIDTH - 2,
        height - 2,
        escape(last),
        timeline.bucket_seconds
    );
    svg
}

/// The job list's filters, as the form and the links send them.
#[derive(Debug, Deserialize, Default)]
pub struct JobFilter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    kind: String,
    /// `(default)` is the default account; empty: every account.
    #[serde(default)]
    account: String,
    #[serde(default)]
    text: String,
    /// How many dead jobs the last bulk retry put back.
    retried: Option<u64>,
}

impl JobFilter {
    fn query(&self) -> Result<JobQuery, Failure> {
        let states = match self.state.as_str() {
            "" => Vec::new(),
            state if STATE_NAMES.contains(&state) => vec![state.to_string()],
            state => {
                return Err(Failure::bad_request(format!(
                    "state {} is not one of {}",
                    crate::quote::quoted(state),
                    STATE_NAMES.join(", ")
                )))
            }
        };
        let kind = match self.kind.as_str() {
            "" => None,
            kind => Some(Kind::parse(kind).ok_or_else(|| {
                Failure::bad_request(format!(
                    "kind {} is not `post` or `reply`",
                    crate::quote::quoted(kind)
                ))
            })?),
        };
        Ok(JobQuery {
            states,
            kind,
            limit: Some(MOST_JOBS),
            account: account_filter(&self.account),
            text: (!self.text.is_empty()).then(|| self.text.clone()),
        })
    }
}

fn account_filter(account: &str) -> Option<String> {
    match account.trim() {
        "" => None,
        "(default)" => Some(String::new()),
        name => Some(name.to_string()),
    }
}

pub async fn jobs(
    State(ui): State<Dashboard>,
    Extension(Nonce(nonce)): Extension<Nonce>,
    Query(filter): Query<JobFilter>,
) -> Result<Html<String>, Failure> {
    let query = filter.query()?;
    let mut jobs = ui.store().job_list(&query).await?;
    jobs.reverse(); // newest first
    let now = SystemTime::now();
    let lanes = lanes_of(&ui, &jobs, now).await?;
    let rows: Vec<String> = jobs
        .iter()
        .map(|job| job_row(job, &job_causes(job, &lanes, now), ui.csrf()))
        .collect();
    let mut body = String::new();
    if let Some(n) = filter.retried {
        let _ = write!(
            body,
            "<p class=\"flash\" id=\"flash\">{n} dead job(s) queued again.</p>"
        );
    }
    body.push_str(&filter_form(&filter));
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/jobs/retry-dead\" class=\"inline\" id=\"retry-dead\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"kind\" value=\"{}\">\
         <input type=\"hidden\" name=\"account\" value=\"{}\">\
         <button type=\"submit\">Retry every dead job{}</button></form>",
        escape(ui.csrf()),
        escape(&filter.kind),
        escape(&filter.account),
        if filter.kind.is_empty() && filter.account.is_empty() {
            String::new()
        } else {
            " matching kind and account".to_string()
        }
    );
    let _ = write!(
        body,
        "<p class=\"muted\">{} job(s), newest first (at most {MOST_JOBS}).</p>{}",
        jobs.len(),
        table(
            "jobs",
            &[
                "ID",
                "Kind",
                "State",
                "Attempts",
                "Due",
                "Account",
                "Text",
                "Why waiting",
                "Actions"
            ],
            &rows,
            "No job matches.",
        )
    );
    Ok(Html(page("Jobs", &nonce, false, &body)))
}

fn filter_form(filter: &JobFilter) -> String {
    let option = |value: &str, label: &str, chosen: &str| {
        format!(
            "<option value=\"{}\"{}>{}</option>",
            escape(value),
            if value == chosen { " selected" } else { "" },
            escape(label)
        )
    };
    let mut states = option("", "any state", &filter.state);
    for state in STATE_NAMES {
        states.push_str(&option(state, state, &filter.state));
    }
    let kinds: String = [("", "any kind"), ("post", "post"), ("reply", "reply")]
        .iter()
        .map(|(value, label)| option(value, label, &filter.kind))
        .collect();
    format!(
        "<form method=\"get\" action=\"/jobs\" id=\"filter\">\
         <select name=\"state\">{states}</select> <select name=\"kind\">{kinds}</select> \
         <input name=\"account\" placeholder=\"account, or (default)\" value=\"{}\"> \
         <input name=\"text\" placeholder=\"text contains\" value=\"{}\"> \
         <button type=\"submit\">Filter</button></form>",
        escape(&filter.account),
        escape(&filter.text)
    )
}

/// The retry and cancel buttons the job's state allows (the CLI's rule).
fn actions(job: &Job, csrf: &str) -> String {
    let mut out = String::new();
    for (action, label) in [
        (OperatorAction::Retry, "Retry"),
        (OperatorAction::Cancel, "Cancel"),
    ] {
        if action.allowed(&job.state) {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/jobs/{}/{}\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" class=\"{}\">{label}</button></form> ",
                job.id,
                action.name(),
                escape(csrf),
                action.name()
            );
        }
    }
    out
}

/// Why the lanes of the listed jobs' accounts wait (those that may wait: queued or failed),
/// read once per account, so that each row says what `jobs show` says of its job.
async fn lanes_of(ui: &Dashboard, jobs: &[Job], now: SystemTime) -> Result<Vec<Waiting>, Failure> {
    let mut accounts: Vec<&str> = jobs
        .iter()
        .filter(|job| matches!(job.state, JobState::Queued | JobState::Failed { .. }))
        .map(|job| job.account.as_str())
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut lanes = Vec::new();
    for account in accounts {
        lanes.extend(crate::waiting::why(ui.store(), account, now).await?);
    }
    Ok(lanes)
}

/// Why `job` waits, from its lane (see [`crate::waiting::why_job`]).
fn job_causes(job: &Job, lanes: &[Waiting], now: SystemTime) -> Vec<Cause> {
    lanes
        .iter()
        .find(|lane| lane.account == job.account && lane.kind == job.kind)
        .map(|lane| crate::waiting::explain_job(job, lane, now))
        .unwrap_or_default()
}

fn job_row(job: &Job, causes: &[Cause], csrf: &str) -> String {
    let state = job.state.name();
    [
        format!("<td class=\"n\"><a href=\"/jobs/{0}\">{0}</a></td>", job.id),
        cell("", job.kind.as_str()),
        cell(&format!("state s-{state}"), state),
        cell("n", &format!("{}/{}", job.attempts, job.max_attempts)),
        cell("t", &format_ts(job.not_before)),
        cell("", account_name(&job.account)),
        cell("text", &job.text),
        if causes.is_empty() {
            cell("why muted", "-")
        } else {
            format!("<td class=\"why\">{}</td>", causes_list(causes))
        },
        format!("<td>{}</td>", actions(job, csrf)),
    ]
    .concat()
}

pub async fn job(
    State(ui): State<Dashboard>,
    Extension(Nonce(nonce)): Extension<Nonce>,
    Path(id): Path<i64>,
) -> Result<Html<String>, Failure> {
    let job = ui
        .store()
        .job_get(id)
        .await?
        .ok_or(StoreError::NotFound { job_id: id })?;
    let history = ui
        .store()
        .event_list(&EventQuery {
            since: Some(job.created_at),
            limit: Some(MOST_HISTORY),
            job_id: Some(job.id),
            ..Default::default()
        })
        .await?;
    let mut fields = String::from("<table id=\"job\"><tbody>");
    for (key, value) in crate::cli::jobs::job_fields(&job) {
        let class = if key == "text" { "text" } else { "" };
        let _ = write!(
            fields,
            "<tr><th>{}</th>{}</tr>",
            escape(&key),
            cell(class, &shown(&value))
        );
    }
    // What holds it back, as `jobs show` says it under the fields.
    let causes = crate::waiting::why_job(ui.store(), &job, SystemTime::now()).await?;
    if !causes.is_empty() {
        let _ = write!(
            fields,
            "<tr id=\"waiting\"><th>waiting</th><td class=\"why\">{}</td></tr>",
            causes_list(&causes)
        );
    }
    fields.push_str("</tbody></table>");
    let rows: Vec<String> = history
        .iter()
        .rev()
        .map(|event| {
            [
                cell("t", &format_ts(event.created_at)),
                cell("", &event.event_type),
                cell("", event.severity.as_str()),
                cell("text", &event.message),
            ]
            .concat()
        })
        .collect();
    let body = format!(
        "<h2>Job {}</h2><p>{}</p>{fields}<section><h2>History</h2>{}</section>",
        job.id,
        actions(&job, ui.csrf()),
        table(
            "history",
            &["At", "Event", "Severity", "Message"],
            &rows,
            "No event about this job yet (it has not been attempted).",
        )
    );
    Ok(Html(page(&format!("Job {}", job.id), &nonce, false, &body)))
}

/// A form's proof that it came from one of our pages.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

pub async fn retry(
    State(ui): State<Dashboard>,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Failure> {
    act(&ui, id, &form, OperatorAction::Retry).await
}

pub async fn cancel(
    State(ui): State<Dashboard>,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Failure> {
    act(&ui, id, &form, OperatorAction::Cancel).await
}

async fn act(
    ui: &Dashboard,
    id: i64,
    form: &ActionForm,
    action: OperatorAction,
) -> Result<Response, Failure> {
    ui.check_csrf(&form.csrf)?;
    let now = SystemTime::now();
    match action {
        OperatorAction::Retry => ui.store().job_retry(id, now).await?,
        OperatorAction::Cancel => ui.store().job_cancel(id, now).await?,
    };
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct RetryDeadForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    account: String,
}

/// Every dead job (of the kind and account asked, at most [`MOST_JOBS`] at a time) back in
/// the queue, each through the CLI's retry.
pub async fn retry_dead(
    State(ui): State<Dashboard>,
    Form(form): Form<RetryDeadForm>,
) -> Result<Response, Failure> {
    ui.check_csrf(&form.csrf)?;
    let filter = JobFilter {
        state: "dead".into(),
        kind: form.kind.clone(),
        account: form.account.clone(),
        ..JobFilter::default()
    };
    let dead = ui.store().job_list(&filter.query()?).await?;
    let now = SystemTime::now();
    let mut retried = 0u64;
    for job in &dead {
        match ui.store().job_retry(job.id, now).await {
            Ok(_) => retried += 1,
            // Retried or cancelled by someone else meanwhile: not ours to count.
            Err(StoreError::Transition { .. } | StoreError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(Redirect::to(&format!(
        "/jobs?state=queued&kind={}&account={}&retried={retried}",
        url_component(&form.kind),
        url_component(&form.account)
    ))
    .into_response())
}

/// A pause or resume form: the exact scope of a button (`scope`, the store's key), or the
/// lane and account typed into the pause form (account empty: every account; `(default)`:
/// the default account, as in the job filter).
#[derive(Debug, Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    csrf: String,
    scope: Option<String>,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    reason: String,
}

impl PauseForm {
    /// The scope asked for, checked as `executor pause` checks its flags.
    fn scope(&self) -> Result<Scope, Failure> {
        let (kind, account) = match &self.scope {
            Some(key) => {
                let (kind, account): (Option<String>, Option<String>) = serde_json::from_str(key)
                    .map_err(|_| {
                    Failure::bad_request("this pause's scope is not one the dashboard made")
                })?;
                (kind.unwrap_or_default(), account)
            }
            None => (self.kind.clone(), account_filter(&self.account)),
        };
        let kind = match kind.as_str() {
            "" => None,
            name => Some(Kind::parse(name).ok_or_else(|| {
                Failure::bad_request(format!(
                    "kind {} is not `post` or `reply`",
                    crate::quote::quoted(name)
                ))
            })?),
        };
        Scope::new(kind, account)
            .map_err(|err| Failure::bad_request(without_dashes(&err.to_string())))
    }
}

/// The CLI's refusal without its flag's dashes: the form's field has the same name.
fn without_dashes(line: &str) -> String {
    line.trim_start_matches("--").to_string()
}

/// Who acts, as a pause made here records it: the dashboard's user and host.
fn dashboard_operator() -> String {
    format!("{} (dashboard)", crate::cli::pause::operator())
}

/// Pauses the scope for the whole fleet, as `executor pause` does (an already paused scope
/// keeps its pause), and goes back to the overview, which lists it.
pub async fn pause(
    State(ui): State<Dashboard>,
    Form(form): Form<PauseForm>,
) -> Result<Response, Failure> {
    ui.check_csrf(&form.csrf)?;
    let scope = form.scope()?;
    let pause =
        crate::cli::pause::request(scope, &form.reason, dashboard_operator(), SystemTime::now())
            .map_err(|line| Failure::bad_request(without_dashes(&line)))?;
    let identity = crate::cli::pause::identity(ui.settings(), "ui");
    crate::cli::pause::apply(ui.store(), pause, &identity).await?;
    Ok(Redirect::to("/#pauses").into_response())
}

/// Lifts exactly the scope's pause, as `executor resume` does; a wider pause that still holds
/// part of it stays listed on the overview.
pub async fn resume(
    State(ui): State<Dashboard>,
    Form(form): Form<PauseForm>,
) -> Result<Response, Failure> {
    ui.check_csrf(&form.csrf)?;
    let scope = form.scope()?;
    let identity = crate::cli::pause::identity(ui.settings(), "ui");
    crate::cli::pause::lift(
        ui.store(),
        &scope,
        &dashboard_operator(),
        &identity,
        SystemTime::now(),
    )
    .await?;
    Ok(Redirect::to("/#pauses").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(scope: Option<&str>, kind: &str, account: &str) -> PauseForm {
        PauseForm {
            csrf: String::new(),
            scope: scope.map(str::to_string),
            kind: kind.into(),
            account: account.into(),
            reason: String::new(),
        }
    }

    #[test]
    fn a_button_names_its_scope_exactly_and_the_form_reads_as_the_job_filter() {
        let scopes = [
            Scope::ALL,
            Scope::new(Some(Kind::Post), Some(String::new())).expect("scope"),
            Scope::new(Some(Kind::Reply), Some(" (default) ".into())).expect("scope"),
        ];
        for scope in scopes {
            let key = scope.key();
            assert_eq!(form(Some(&key), "", "").scope().expect("scope"), scope);
        }
        let typed = |kind: &str, account: &str| form(None, kind, account).scope();
        assert_eq!(typed("post", "").expect("scope").account, None);
        assert_eq!(
            typed("", "(default)").expect("scope").account,
            Some(String::new())
        );
        assert_eq!(
            typed("reply", " alice ").expect("scope"),
            Scope::new(Some(Kind::Reply), Some("alice".into())).expect("scope")
        );
    }

    #[test]
    fn a_bad_scope_is_refused_in_one_line_naming_the_field() {
        let refused = |form: PauseForm| form.scope().expect_err("refused").message;
        assert!(refused(form(None, "story", "")).contains("story"));
        assert!(refused(form(None, "", &"a".repeat(101))).starts_with("account must"));
        assert!(refused(form(Some("[1, 2]"), "", "")).contains("scope"));
    }
}
