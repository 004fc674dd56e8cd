//! `executor report --html FILE`: one self-contained page (inline SVG and CSS, no script, no
//! external reference — it opens with no network, and its Content-Security-Policy forbids
//! loading anything) with the verdict first, then a timeline of the window and the tables.
//!
//! The verdict is `executor verify`'s checklist over the same window ([`Verdict`]), every
//! criterion with PASS/FAIL and its evidence: the page says whether the run behaved before it
//! shows how. What was published is listed with its text and a link to the post.
//!
//! The chart stacks three panels on one time axis — pages, queue depth (posting + reply due),
//! backoff — and marks failed ticks (red), stray pages closed (orange) and STOP (a dashed line).

use super::verdict::Verdict;
use super::Report;
use crate::clock::format_ts;
use crate::events;
use crate::sandbox::escape_html as escape;
use std::fmt::Write;
use std::time::SystemTime;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 90.0;
const GAP: f64 = 30.0;
const LEFT: f64 = 60.0;

struct Axis {
    start: f64,
    span: f64,
}

impl Axis {
    fn x(&self, at: SystemTime) -> f64 {
        let t = crate::clock::unix_ms(at) as f64;
        LEFT + (t - self.start) / self.span * (WIDTH - LEFT - 10.0)
    }
}

/// A step line of `(time, value)` in panel `index`, scaled to `max`.
fn series(
    out: &mut String,
    axis: &Axis,
    index: usize,
    class: &str,
    label: &str,
    points: &[(SystemTime, f64)],
) {
    let top = 10.0 + index as f64 * (PANEL + GAP);
    let max = points.iter().map(|(_, v)| *v).fold(1.0_f64, f64::max);
    let y = |v: f64| top + PANEL - v / max * PANEL;
    let _ = write!(
        out,
        "<g class=\"panel\"><text x=\"4\" y=\"{:.0}\">{}</text><text x=\"4\" y=\"{:.0}\" class=\"scale\">max {}</text>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{WIDTH}\" y2=\"{:.1}\"/>",
        top + 12.0,
        escape(label),
        top + 26.0,
        max,
        top + PANEL,
        top + PANEL
    );
    let path: Vec<String> = points
        .iter()
        .map(|(t, v)| format!("{:.1},{:.1}", axis.x(*t), y(*v)))
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"series {class}\" points=\"{}\"/>",
        path.join(" ")
    );
    for (t, v) in points {
        let _ = write!(
            out,
            "<circle class=\"point {class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"/>",
            axis.x(*t),
            y(*v)
        );
    }
    out.push_str("</g>");
}

/// The verdict: one table row per criterion (a heading row per section when there are
/// several), under a line that says whether all pass.
fn verdict_section(verdict: &Verdict) -> String {
    let passed = verdict.passed();
    let mut out = format!(
        "<section id=\"verdict\" class=\"{}\"><h2>Verdict: <span id=\"verdict-result\">{}</span></h2><p id=\"verdict-summary\">{}</p>\
         <table id=\"checklist\"><tr><th>result</th><th>criterion</th><th>evidence</th></tr>",
        if passed { "pass" } else { "fail" },
        if passed { "PASS" } else { "FAIL" },
        escape(&verdict.summary())
    );
    for section in &verdict.sections {
        if let Some(heading) = &section.heading {
            let _ = write!(
                out,
                "<tr class=\"section\"><th colspan=\"3\">{}</th></tr>",
                escape(heading)
            );
        }
        for criterion in &section.criteria {
            let result = if criterion.pass { "PASS" } else { "FAIL" };
            let _ = write!(
                out,
                "<tr class=\"criterion {}\"><td class=\"result\">{result}</td><td class=\"name\">{}</td><td class=\"evidence\">{}</td></tr>",
                result.to_ascii_lowercase(),
                escape(criterion.name),
                escape(&criterion.evidence)
            );
        }
    }
    out.push_str("</table></section>");
    out
}

/// A link to a published post, for http(s) URLs only: a `javascript:` URL from a site's
/// answer must not become a link to click.
fn post_link(url: Option<&str>) -> String {
    match url {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            format!("<a href=\"{0}\">{0}</a>", escape(url))
        }
        Some(other) => escape(other),
        None => "-".to_string(),
    }
}

/// The page.
pub fn render(report: &Report, verdict: &Verdict) -> String {
    let start = report
        .ticks
        .first()
        .map(|t| t.created_at)
        .unwrap_or(report.since);
    let end = report
        .ticks
        .last()
        .map(|t| t.created_at)
        .unwrap_or(report.until)
        .max(start);
    let axis = Axis {
        start: crate::clock::unix_ms(start) as f64,
        span: ((crate::clock::unix_ms(end) - crate::clock::unix_ms(start)) as f64).max(1.0),
    };
    let height = 3.0 * (PANEL + GAP) + 20.0;
    let mut svg = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"Tick timeline\">"
    );
    let pages: Vec<(SystemTime, f64)> = report
        .ticks
        .iter()
        .map(|t| (t.created_at, t.pages as f64))
        .collect();
    let queue: Vec<(SystemTime, f64)> = report
        .ticks
        .iter()
        .map(|t| (t.created_at, (t.posting_ready + t.reply_ready) as f64))
        .collect();
    let backoff: Vec<(SystemTime, f64)> = report
        .ticks
        .iter()
        .map(|t| (t.created_at, t.backoff_seconds))
        .collect();
    series(&mut svg, &axis, 0, "pages", "pages", &pages);
    series(&mut svg, &axis, 1, "queue", "queue depth", &queue);
    series(&mut svg, &axis, 2, "backoff", "backoff (s)", &backoff);
    let bottom = 3.0 * (PANEL + GAP);
    for tick in report.ticks.iter().filter(|t| t.last_error.is_some()) {
        let _ = write!(
            svg,
            "<circle class=\"failed\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\"><title>{}: {}</title></circle>",
            axis.x(tick.created_at),
            bottom,
            format_ts(tick.created_at),
            escape(tick.last_error.as_deref().unwrap_or_default())
        );
    }
    for event in report
        .events
        .iter()
        .filter(|e| e.event_type == events::PAGE_CAP_ENFORCED)
    {
        let _ = write!(
            svg,
            "<rect class=\"stray\" x=\"{:.1}\" y=\"{:.1}\" width=\"6\" height=\"6\"><title>{}: {}</title></rect>",
            axis.x(event.created_at) - 3.0,
            bottom - 12.0,
            format_ts(event.created_at),
            escape(&event.message)
        );
    }
    for stop in &report.stops {
        let x = axis.x(stop.stop_at);
        let _ = write!(
            svg,
            "<line class=\"stop\" x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"><title>STOP {}</title></line>",
            format_ts(stop.stop_at)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LEFT}\" y=\"{:.0}\" class=\"scale\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" class=\"scale\" text-anchor=\"end\">{}</text></svg>",
        height - 2.0,
        format_ts(start),
        WIDTH - 10.0,
        height - 2.0,
        format_ts(end)
    );

    let (total, failed, pct) = report.failure_rate();
    let mut tables = String::new();
    tables.push_str("<h2>Page count distribution</h2><table id=\"distribution\"><tr><th>pages</th><th>count</th><th>first seen</th><th>last seen</th></tr>");
    for (pages, count, first, last) in report.page_distribution() {
        let _ = write!(
            tables,
            "<tr><td>{pages}</td><td>{count}</td><td class=\"ts\">{}</td><td class=\"ts\">{}</td></tr>",
            format_ts(first),
            format_ts(last)
        );
    }
    let _ = write!(
        tables,
        "</table><h2>Failure rate</h2><p id=\"failure-rate\">{total} ticks, {failed} failed: {pct:.2}%</p>\
         <h2>Recent ticks</h2><table id=\"ticks\"><tr><th>created_at</th><th>pages</th><th>chrome_pids</th>\
         <th>posting_ready</th><th>posting_attempts</th><th>reply_ready</th><th>reply_attempts</th><th>backoff</th><th>last_error</th></tr>"
    );
    for t in report.ticks.iter().rev().take(50) {
        let _ = write!(
            tables,
            "<tr{}><td class=\"ts\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if t.last_error.is_some() { " class=\"error\"" } else { "" },
            format_ts(t.created_at),
            t.pages,
            escape(&t.chrome_pids),
            t.posting_ready,
            t.posting_attempts,
            t.reply_ready,
            t.reply_attempts,
            t.backoff_seconds,
            escape(t.last_error.as_deref().unwrap_or(""))
        );
    }
    let _ = write!(tables, "</table><h2>Published ({})</h2><table id=\"published\"><tr><th>at</th><th>kind</th><th>job</th><th>post id</th><th>text</th><th>link</th></tr>", report.published.len());
    for p in &report.published {
        let _ = write!(
            tables,
            "<tr><td class=\"ts\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"link\">{}</td></tr>",
            format_ts(p.created_at),
            escape(&p.kind),
            p.job_id,
            escape(p.post_id.as_deref().unwrap_or("-")),
            escape(p.text.as_deref().unwrap_or("-")),
            post_link(p.url.as_deref())
        );
    }
    let _ = write!(
        tables,
        "</table><p>Uncertain jobs: {}. Dead jobs: {}. Browser losses: {}, restarts for memory: {}. Stray pages closed: {}.</p>",
        report.uncertain_jobs.len(),
        report.dead_jobs.len(),
        report.browser_losses,
        report.browser_restarts,
        report.strays_closed
    );

    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>executor report {} → {}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin-bottom:1em}}\
         td,th{{border:1px solid #ccc;padding:2px 6px;font-size:12px}}tr.error td{{background:#fee}}\
         td.ts{{white-space:nowrap}}td.text{{max-width:40em;white-space:pre-wrap}}\
         #verdict h2{{margin-bottom:0.2em}}#verdict.pass #verdict-result,tr.pass td.result{{color:#070;font-weight:bold}}\
         #verdict.fail #verdict-result,tr.fail td.result{{color:#c00;font-weight:bold}}tr.fail td{{background:#fee}}\
         polyline.series{{fill:none;stroke-width:1.5}}.pages{{stroke:#1d9bf0;fill:#1d9bf0}}.queue{{stroke:#6a3;fill:#6a3}}\
         .backoff{{stroke:#a63;fill:#a63}}.axis{{stroke:#999}}.failed{{fill:#d00}}.stray{{fill:#f90}}\
         .stop{{stroke:#000;stroke-dasharray:4 3}}text{{font-size:11px}}.scale{{fill:#777}}</style></head><body>\
         <h1>executor report</h1><p>{} → {} — {} ticks.</p>{verdict}<h2>Timeline</h2><p>Blue: pages; green: queue depth; \
         brown: backoff; red dots: failed ticks; orange squares: stray pages closed; dashed line: STOP.</p>{svg}{tables}</body></html>",
        format_ts(report.since),
        format_ts(report.until),
        format_ts(report.since),
        format_ts(report.until),
        report.ticks.len(),
        verdict = verdict_section(verdict),
    )
}
