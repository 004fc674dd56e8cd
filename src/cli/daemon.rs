//! `executor daemon`: the daemon in the foreground.

use super::CliError;
use crate::daemon::{self, RunOptions};
use crate::log::Logger;
use crate::settings::Settings;
use crate::sites::Site;
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
        crate::sandbox::address::site_url(settings).as_deref(),
    ))))
}

/// Exit 0 when the daemon stopped as asked (or found another running, or STOP present); a
/// daemon that gave up after failed ticks has logged why and only its exit code is left.
pub async fn run(settings: Settings) -> Result<(), CliError> {
    let site = site_for(&settings).map_err(CliError::usage)?;
    // A profile that cannot be written is the one line to say, before the log (which would
    // say first that it cannot write its file) is opened there.
    daemon::prepare_profile(&settings)
        .map_err(|err| CliError::with_code(err.code(), err.to_string()))?;
    let logger = Logger::new(settings.log_format, Some(&settings.log_path()));
    let options = RunOptions {
        logger: logger.clone(),
        site,
        work: None,
        browser: None,
    };
    match daemon::run(settings, Shutdown::new(), options).await {
        Ok(exit) if exit.code() == super::EXIT_OK => Ok(()),
        Ok(exit) => {
            // Logged to stdout and the log; said on stderr too, where a supervisor or a
            // wrapper looks for why a program failed, unless both go to the same place.
            if !crate::output::stderr_is_stdout() {
                crate::errln!(
                    "error: {}",
                    crate::quote::single_line(&exit.to_string(), crate::quote::MESSAGE_CHARS)
                );
            }
            Err(CliError::already_reported(exit.code()))
        }
        Err(err) => {
            logger.error(&err.to_string());
            // Once on a terminal (the log line is on stdout already), twice when stderr is
            // elsewhere: a supervisor reads stderr for why a program failed.
            if crate::output::stderr_is_stdout() {
                Err(CliError::already_reported(err.code()))
            } else {
                Err(CliError::with_code(err.code(), err.to_string()))
            }
        }
    }
}
