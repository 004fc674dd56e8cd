//! `executor daemon`: the daemon in the foreground.

use crate::daemon::{self, RunOptions};
use crate::log::Logger;
use crate::settings::Settings;
use crate::stop::Shutdown;

pub async fn run(settings: Settings) -> i32 {
    let logger = Logger::new(settings.log_format, Some(&settings.log_path()));
    let options = RunOptions {
        logger: logger.clone(),
        site: None,
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
