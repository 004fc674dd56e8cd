//! The HTML pages: the overview, the job list with its filters, one job with its history, and
//! the operator's actions (retry, cancel, retry every dead job). The actions call the same store
//! methods as `executor jobs retry|cancel`, so the rules of which state allows what are the
//! CLI's, and their refusals read the same.

use super::html::{cell, escape, page, table, url_component};
use super::view::{self, Overview};
use super::{Dashboard, Failure, Nonce};
use crate::clock::format_ts;
use crate::jobs::{Job, JobQuery, Kind, OperatorAction, STATE_NAMES};
use crate::store::{EventQuery, StoreError};
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

/// Where the pause/resume controls go once the pause work lands (issue 14): a per-lane and
/// per-account switch stored for the fleet. Shown as a marked placeholder until then.
const PAUSE_PLACEHOLDER: &str =
    "Pause / resume of a lane or an account: not in this build yet (it arrives with `executor pause|resume`).";
/// Where a due job's "why is it waiting" reason goes once that work lands (issue 14).
const WAITING_PLACEHOLDER: &str = "—";

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
    let body = format!("<div id=\"live\">{}</div>", overview_body(&overview));
    Ok(Html(page("Overview", &nonce, true, &body)))
}

fn overview_body(overview: &Overview) -> String {
    let executors: Vec<String> = overview.executors.iter().map(executor_row).collect();
    let queue: Vec<String> = overview.queue.iter().map(queue_row).collect();
    format!(
        "<section><h2>Executors</h2>{}</section>\
         <section><h2>Queue by account and lane</h2>{}\
         <p class=\"note\" id=\"pause-placeholder\">{}</p></section>\
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
                "Paused"
            ],
            &queue,
            "No unfinished jobs.",
        ),
        escape(PAUSE_PLACEHOLDER),
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

fn queue_row(row: &view::QueueRow) -> String {
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
        // PAUSE-RESUME: the lane's paused state and its switch go here.
        "<td class=\"pause muted\">-</td>".to_string(),
    ]
    .concat()
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
    let rows: Vec<String> = jobs.iter().map(|job| job_row(job, ui.csrf())).collect();
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

fn job_row(job: &Job, csrf: &str) -> String {
    let state = job.state.name();
    [
        format!("<td class=\"n\"><a href=\"/jobs/{0}\">{0}</a></td>", job.id),
        cell("", job.kind.as_str()),
        cell(&format!("state s-{state}"), state),
        cell("n", &format!("{}/{}", job.attempts, job.max_attempts)),
        cell("t", &format_ts(job.not_before)),
        cell("", account_name(&job.account)),
        cell("text", &job.text),
        // WAITING-REASON: the reason a due job is not being published, and when it will go.
        cell("why muted", WAITING_PLACEHOLDER),
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
