//! `verify --on-site`: each account's timeline read back to the window's start through this
//! profile's browser, then held against what the store says was published
//! ([`on_site_checklist`]). The daemon must be stopped: it owns the browser's one page.

use super::checklist::{on_site_checklist, Criterion, LockState};
use super::Scope;
use crate::browser::{Browser, BrowserConfig};
use crate::jobs::{JobQuery, JobState};
use crate::settings::Settings;
use crate::sites::Site;
use std::time::SystemTime;

/// Reads each account's timeline on the site back to `since` through this profile's browser,
/// and compares it with the jobs the store says were published since then.
pub async fn check(
    settings: &Settings,
    store: &dyn crate::store::Store,
    since: SystemTime,
    scope: &Scope,
) -> Result<Vec<Criterion>, String> {
    if let LockState::HeldByLiveDaemon { pid } = LockState::read(&settings.lock_path()) {
        return Err(format!(
            "the daemon (pid {pid}) is running on this profile and owns its browser's page; stop it first (executor stop)"
        ));
    }
    let definition =
        crate::sites::SiteDefinition::load(&settings.site).map_err(|e| e.to_string())?;
    let engine = crate::sites::engine::SiteEngine::new(
        definition,
        crate::sandbox::address::site_url(settings).as_deref(),
    );
    let registry = store.fleet().await.map_err(|e| e.to_string())?;
    let wanted = |account: &str| match scope {
        Scope::Account(name) => name == account,
        Scope::Executor(id) => registry.iter().any(|m| m.id == *id && m.account == account),
        Scope::Window | Scope::Fleet => true,
    };
    let jobs: Vec<crate::jobs::Job> = store
        .job_list(&JobQuery {
            states: vec!["succeeded".into()],
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|j| j.updated_at >= since && wanted(&j.account))
        .filter(|j| matches!(j.state, JobState::Succeeded { .. }))
        .collect();
    let browser = Browser::new(
        BrowserConfig::from_settings(settings),
        std::sync::Arc::new(|_| {}),
    );
    let read = async {
        browser.connect().await.map_err(|e| e.to_string())?;
        // The default account is whoever the browser is logged in as.
        let logged_in = engine
            .session(&browser)
            .await
            .map_err(|e| format!("checking the session: {e}"))?
            .account;
        let mut timelines = std::collections::BTreeMap::new();
        let accounts: std::collections::BTreeSet<&str> =
            jobs.iter().map(|j| j.account.as_str()).collect();
        for account in accounts {
            let handle =
                match (account, logged_in.as_deref()) {
                    ("", Some(handle)) => handle,
                    ("", None) => return Err(
                        "jobs of the default account, and the site does not say who is logged in"
                            .to_string(),
                    ),
                    (name, _) => name,
                };
            let timeline = engine
                .timeline(&browser, handle, since)
                .await
                .map_err(|e| format!("reading {handle}'s timeline: {e}"))?;
            timelines.insert(account.to_string(), timeline);
        }
        Ok::<_, String>(timelines)
    };
    let timelines = read.await;
    browser.shutdown().await;
    let timelines = timelines?;
    Ok(on_site_checklist(&jobs, &timelines, |shown, typed| {
        engine.shows(shown, typed)
    }))
}
