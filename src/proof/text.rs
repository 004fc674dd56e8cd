//! The report as text and as JSON: what `executor report` prints (the seed's three reports —
//! recent ticks, page-count distribution, failure rate — then what was published, the jobs
//! needing attention and the browser's record) and the same numbers for `--json`; and the
//! checklist's PASS/FAIL lines as `executor verify` prints them.

use super::checklist::Criterion;
use super::verdict::Section;
use super::Report;
use crate::clock::format_ts;
use serde_json::json;

/// The report as one JSON object (`executor report --json`).
pub fn report_json(report: &Report) -> serde_json::Value {
    let (total, failed, pct) = report.failure_rate();
    json!({
        "since": format_ts(report.since),
        "until": format_ts(report.until),
        "recent_ticks": report.ticks.iter().rev().take(20).map(|t| json!({
            "created_at": format_ts(t.created_at), "pages": t.pages, "chrome_pids": t.chrome_pids,
            "posting_ready": t.posting_ready, "posting_attempts": t.posting_attempts,
            "reply_ready": t.reply_ready, "reply_attempts": t.reply_attempts,
            "backoff": t.backoff_seconds, "last_error": t.last_error,
        })).collect::<Vec<_>>(),
        "page_distribution": report.page_distribution().iter().map(|(pages, count, first, last)| json!({
            "pages": pages, "count": count, "first_seen": format_ts(*first), "last_seen": format_ts(*last),
        })).collect::<Vec<_>>(),
        "failure_rate": { "total_ticks": total, "failed_ticks": failed, "failure_rate_pct": pct },
        "published": report.published.iter().map(|p| json!({
            "created_at": format_ts(p.created_at), "job_id": p.job_id, "kind": p.kind, "text": p.text, "post_id": p.post_id, "url": p.url,
        })).collect::<Vec<_>>(),
        "uncertain_jobs": report.uncertain_jobs.iter().map(|(id, text)| json!({ "id": id, "text": text })).collect::<Vec<_>>(),
        "dead_jobs": report.dead_jobs.iter().map(|(id, text)| json!({ "id": id, "text": text })).collect::<Vec<_>>(),
        "browser_losses": report.browser_losses,
        "browser_restarts": report.browser_restarts,
        "strays_closed": report.strays_closed,
    })
}

/// The report as tables on stdout (`executor report`).
pub fn print_report(report: &Report) {
    crate::outln!(
        "Window: {} → {}",
        format_ts(report.since),
        format_ts(report.until)
    );
    crate::outln!("\n== Recent ticks (newest first, at most 20)");
    crate::outln!(
        "{:<26} {:>5} {:<16} {:>8} {:>8} {:>8} {:>8} {:>7}  LAST_ERROR",
        "CREATED_AT",
        "PAGES",
        "CHROME_PIDS",
        "POST_RDY",
        "POST_ATT",
        "REPL_RDY",
        "REPL_ATT",
        "BACKOFF"
    );
    for t in report.ticks.iter().rev().take(20) {
        crate::outln!(
            "{:<26} {:>5} {:<16} {:>8} {:>8} {:>8} {:>8} {:>7}  {}",
            format_ts(t.created_at),
            t.pages,
            t.chrome_pids,
            t.posting_ready,
            t.posting_attempts,
            t.reply_ready,
            t.reply_attempts,
            t.backoff_seconds,
            t.last_error.as_deref().unwrap_or("-")
        );
    }
    crate::outln!("\n== Page count distribution");
    crate::outln!(
        "{:>5} {:>7}  {:<26} LAST_SEEN",
        "PAGES",
        "COUNT",
        "FIRST_SEEN"
    );
    for (pages, count, first, last) in report.page_distribution() {
        crate::outln!(
            "{pages:>5} {count:>7}  {:<26} {}",
            format_ts(first),
            format_ts(last)
        );
    }
    let (total, failed, pct) = report.failure_rate();
    crate::outln!("\n== Failure rate\n{total} ticks, {failed} failed: {pct:.2}%");
    crate::outln!("\n== Published ({})", report.published.len());
    for p in &report.published {
        crate::outln!(
            "  {} {:<5} job {:<6} {}  {}",
            format_ts(p.created_at),
            p.kind,
            p.job_id,
            p.post_id.as_deref().unwrap_or("-"),
            p.url.as_deref().unwrap_or("")
        );
    }
    crate::outln!(
        "\n== Needing attention: {} uncertain, {} dead job(s)",
        report.uncertain_jobs.len(),
        report.dead_jobs.len()
    );
    for (id, text) in report.uncertain_jobs.iter().chain(&report.dead_jobs) {
        crate::outln!("  job {id}: {text}");
    }
    crate::outln!(
        "\n== Browser: {} loss(es), {} restart(s) for memory; {} stray page(s) closed",
        report.browser_losses,
        report.browser_restarts,
        report.strays_closed
    );
}

/// One section of a verdict: its heading, if any, then its criteria.
pub fn print_section(section: &Section) {
    if let Some(heading) = &section.heading {
        crate::outln!("\n== {heading}");
    }
    print_checklist(&section.criteria);
}

/// One line per criterion: PASS or FAIL, its name, its evidence.
pub fn print_checklist(checklist: &[Criterion]) {
    for criterion in checklist {
        crate::outln!(
            "{}  {:<56} {}",
            if criterion.pass { "PASS" } else { "FAIL" },
            criterion.name,
            criterion.evidence
        );
    }
}
