//! `executor report [--since 60m] [--json] [--executor ID | --account NAME | --fleet]`: the
//! three reports users already run — recent ticks, page-count distribution, failure rate — plus
//! what was published, uncertain and dead jobs, browser restarts and stray pages closed. With a
//! scope, one report per executor.

use super::CliError;
use crate::clock::format_ts;
use crate::report::{Report, Scope};
use crate::settings::Settings;
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The window: a duration back from now (60m, 24h) or an RFC 3339 UTC time
    #[arg(long, default_value = "60m", value_name = "WINDOW")]
    pub since: String,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page (timeline chart + tables) to FILE
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// One executor's report (its id, as `executor fleet` shows it)
    #[arg(long, value_name = "ID", conflicts_with_all = ["account", "fleet"])]
    pub executor: Option<String>,
    /// A report per executor registered for this account
    #[arg(long, value_name = "NAME", conflicts_with = "fleet")]
    pub account: Option<String>,
    /// A report per executor of the fleet
    #[arg(long)]
    pub fleet: bool,
}

impl ReportArgs {
    fn scope(&self) -> Option<Scope> {
        match (&self.executor, &self.account, self.fleet) {
            (Some(id), _, _) => Some(Scope::Executor(id.clone())),
            (None, Some(account), _) => Some(Scope::Account(account.clone())),
            (None, None, true) => Some(Scope::Fleet),
            (None, None, false) => None,
        }
    }
}

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
            "created_at": format_ts(p.created_at), "job_id": p.job_id, "kind": p.kind, "post_id": p.post_id, "url": p.url,
        })).collect::<Vec<_>>(),
        "uncertain_jobs": report.uncertain_jobs.iter().map(|(id, text)| json!({ "id": id, "text": text })).collect::<Vec<_>>(),
        "dead_jobs": report.dead_jobs.iter().map(|(id, text)| json!({ "id": id, "text": text })).collect::<Vec<_>>(),
        "browser_losses": report.browser_losses,
        "browser_restarts": report.browser_restarts,
        "strays_closed": report.strays_closed,
    })
}

pub fn print_report(report: &Report) {
    println!(
        "Window: {} → {}",
        format_ts(report.since),
        format_ts(report.until)
    );
    println!("\n== Recent ticks (newest first, at most 20)");
    println!(
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
        println!(
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
    println!("\n== Page count distribution");
    println!(
        "{:>5} {:>7}  {:<26} LAST_SEEN",
        "PAGES", "COUNT", "FIRST_SEEN"
    );
    for (pages, count, first, last) in report.page_distribution() {
        println!(
            "{pages:>5} {count:>7}  {:<26} {}",
            format_ts(first),
            format_ts(last)
        );
    }
    let (total, failed, pct) = report.failure_rate();
    println!("\n== Failure rate\n{total} ticks, {failed} failed: {pct:.2}%");
    println!("\n== Published ({})", report.published.len());
    for p in &report.published {
        println!(
            "  {} {:<5} job {:<6} {}  {}",
            format_ts(p.created_at),
            p.kind,
            p.job_id,
            p.post_id.as_deref().unwrap_or("-"),
            p.url.as_deref().unwrap_or("")
        );
    }
    println!(
        "\n== Needing attention: {} uncertain, {} dead job(s)",
        report.uncertain_jobs.len(),
        report.dead_jobs.len()
    );
    for (id, text) in report.uncertain_jobs.iter().chain(&report.dead_jobs) {
        println!("  job {id}: {text}");
    }
    println!(
        "\n== Browser: {} loss(es), {} restart(s) for memory; {} stray page(s) closed",
        report.browser_losses, report.browser_restarts, report.strays_closed
    );
}

pub async fn run(settings: &Settings, args: &ReportArgs) -> Result<(), CliError> {
    let since = super::events::parse_since(&args.since).map_err(CliError::usage)?;
    let store = super::open_store(settings).await?;
    if let Some(scope) = args.scope() {
        let reports = Report::collect_by_executor(store.as_ref(), since, &scope).await?;
        if args.json {
            let all: Vec<_> = reports
                .iter()
                .map(|(id, report)| json!({ "executor": id, "report": report_json(report) }))
                .collect();
            println!("{:#}", json!(all));
            return Ok(());
        }
        if reports.is_empty() {
            println!("(no executor in this scope)");
        }
        for (id, report) in &reports {
            println!("\n######## executor {id}");
            print_report(report);
        }
        return Ok(());
    }
    let report = Report::collect(store.as_ref(), since).await?;
    if let Some(path) = &args.html {
        std::fs::write(path, crate::report_html::render(&report))
            .map_err(|err| CliError::failure(format!("cannot write {}: {err}", path.display())))?;
        eprintln!("HTML report written to {}", path.display());
    }
    if args.json {
        println!("{:#}", report_json(&report));
    } else {
        print_report(&report);
    }
    Ok(())
}
