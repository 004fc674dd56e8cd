//! `executor report [--since 60m] [--json] [--executor ID | --account NAME | --fleet]`: the
//! three reports users already run — recent ticks, page-count distribution, failure rate — plus
//! what was published, uncertain and dead jobs, browser restarts and stray pages closed. With a
//! scope, one report per executor. `--html` writes a page that leads with `verify`'s verdict
//! over the same window (the same thresholds, the same lock), then the timeline and the tables.

use super::CliError;
use crate::proof::text::{print_report, report_json};
use crate::proof::verdict::{Judge, Verdict};
use crate::proof::{Report, Scope};
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
            crate::outln!("{:#}", json!(all));
            return Ok(());
        }
        if reports.is_empty() {
            crate::outln!("(no executor in this scope)");
        }
        for (id, report) in &reports {
            crate::outln!("\n######## executor {id}");
            print_report(report);
        }
        return Ok(());
    }
    // The page leads with the verdict: `verify`'s checklist over the same window.
    let (report, verdict) = if args.html.is_some() {
        let judge = Judge::of_profile(settings);
        let (report, verdict) =
            Verdict::evaluate(store.as_ref(), since, &Scope::Window, &judge).await?;
        (report, Some(verdict))
    } else {
        (Report::collect(store.as_ref(), since).await?, None)
    };
    if let (Some(path), Some(verdict)) = (&args.html, &verdict) {
        std::fs::write(path, crate::proof::html::render(&report, verdict))
            .map_err(|err| CliError::failure(format!("cannot write {}: {err}", path.display())))?;
        crate::errln!("HTML report written to {}", path.display());
    }
    if args.json {
        crate::outln!("{:#}", report_json(&report));
    } else {
        print_report(&report);
    }
    Ok(())
}
