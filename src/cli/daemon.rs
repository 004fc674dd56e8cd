//! `executor daemon`: the daemon in the foreground.

use crate::daemon::{self, RunOptions};
use crate::lanes::Site;
use crate::log::Logger;
use crate::settings::Settings;
use crate::sites::{engine::SiteEngine, SiteDefinition};
use crate::stop::Shutdown;
use std::sync::Arc;

/// The site engine for `--site` (`none`: count the queue, act on nothing).
pub fn site_for(settings: &Settings) -> Result<Option<Arc<dyn Site>>, String> {
    if settings.site == "none" {
        return Ok(None);
    }
    let definition = SiteDefinition::load(&settings.site).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(SiteEngine::new(
        definition,
        settings.site_url.as_deref(),
    ))))
}

pub async fn run(settings: Settings) -> i32 {
    let site = match site_for(&settings) {
        Ok(site) => site,
        Err(err) => {
            eprintln!("error: {err}");
            return super::EXIT_USAGE;
        }
    };
    let logger = Logger::new(settings.log_format, Some(&settings.log_path()));
    let options = RunOptions {
        logger: logger.clone(),
        site,
        work: None,
        browser: None,
    };
    match daemon::run(settings, Shutdown::new(), options).await {
        Ok(exit) => exit.code(),
        Err(err) => {
            logger.error(&err.to_string());
            eprintln!("error: {err}");
            err.code()
        }
    }
}
