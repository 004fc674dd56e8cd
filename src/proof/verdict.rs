//! The verdict: the stability checklist of every executor in scope, judged once, as data.
//! `executor verify` prints it and the HTML report leads with it, so the page and the command
//! show the same rows with the same evidence and can never disagree.
//!
//! Each executor is judged on its own events, so one executor's ticks never hide another's
//! death; the lock criterion goes only to the executor of this profile (another machine's lock
//! is not ours to read); "no job published twice" counts every executor's publications. An
//! empty window is judged as one executor with no ticks: it fails, never passes vacuously.

use super::checklist::{Criterion, LockState, Thresholds};
use super::{Report, Scope};
use crate::store::{Store, StoreError};
use std::time::SystemTime;

/// Who judges: the executor of this profile, what its lock file says now, and the operator's
/// thresholds.
#[derive(Debug, Clone)]
pub struct Judge {
    pub executor_id: String,
    pub lock: LockState,
    pub thresholds: Thresholds,
}

impl Judge {
    /// The judge of this profile, as `verify` and `report --html` run on it.
    pub fn of_profile(settings: &crate::settings::Settings) -> Judge {
        Judge {
            executor_id: settings.executor_id.clone(),
            lock: LockState::read(&settings.lock_path()),
            thresholds: Thresholds::from_settings(settings),
        }
    }
}

/// One group of criteria: one executor's checklist, or the comparison with the site.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// `executor ID` when several are judged, `on the site`; `None` for the only one.
    pub heading: Option<String>,
    pub criteria: Vec<Criterion>,
}

/// The whole checklist over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub since: SystemTime,
    pub until: SystemTime,
    pub sections: Vec<Section>,
}

impl Verdict {
    /// Reads the window `[since, now]` and judges every executor in `scope`. Returns the report
    /// of the whole window too (what `report --html` draws).
    pub async fn evaluate(
        store: &dyn Store,
        since: SystemTime,
        scope: &Scope,
        judge: &Judge,
    ) -> Result<(Report, Verdict), StoreError> {
        let whole = Report::collect(store, since).await?;
        let executors = Report::collect_by_executor(store, since, scope).await?;
        let judged: Vec<(Option<&str>, &Report)> = if executors.is_empty() {
            vec![(None, &whole)]
        } else {
            executors
                .iter()
                .map(|(id, report)| (Some(id.as_str()), report))
                .collect()
        };
        let several = judged.len() > 1;
        let sections = judged
            .iter()
            .map(|(id, report)| {
                let local = !several || id.is_none_or(|id| id == judge.executor_id);
                Section {
                    heading: several.then(|| format!("executor {}", id.unwrap_or("-"))),
                    criteria: report.checklist_in(
                        local.then_some(&judge.lock),
                        &whole.published,
                        &judge.thresholds,
                    ),
                }
            })
            .collect();
        let verdict = Verdict {
            since: whole.since,
            until: whole.until,
            sections,
        };
        Ok((whole, verdict))
    }

    /// How many criteria there are, and how many fail.
    pub fn counts(&self) -> (usize, usize) {
        let all = self.sections.iter().flat_map(|s| &s.criteria);
        let total = all.clone().count();
        (total, all.filter(|c| !c.pass).count())
    }

    pub fn passed(&self) -> bool {
        self.counts().1 == 0
    }

    /// The closing line: `All 8 criteria pass.` or `2 of 8 criteria fail.`
    pub fn summary(&self) -> String {
        match self.counts() {
            (total, 0) => format!("All {total} criteria pass."),
            (total, failed) => format!("{failed} of {total} criteria fail."),
        }
    }
}
