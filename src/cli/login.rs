//! `executor login --cookies FILE`: logs the managed browser in without a window, from session
//! cookies exported from a desktop browser (docs/login.md), for a server with no display.
//!
//! In order: the file is read and checked (exit 2 on a bad line, before any browser starts);
//! only the cookies of the site's host are kept; the running managed browser is used, or one is
//! started headless; the cookies are set through CDP (`Network.setCookies`) on our page; the
//! site's own session check ([`Site::session`]) says who is logged in, or that the login wall is
//! still there (exit 1). A browser this command started is closed in order (`Browser.close`), so
//! that the cookies are written to the profile before it exits.

use super::{chrome, CliError};
use crate::browser::{Browser, BrowserConfig};
use crate::cookies::{self, Cookie};
use crate::settings::{BrowserMode, Settings};
use crate::sites::engine::SiteEngine;
use crate::sites::{ActionError, Session, Site, SiteDefinition};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Session cookies exported from a desktop browser that is logged in: a Netscape
    /// cookies.txt, or the JSON of a cookie-export extension
    #[arg(long, value_name = "FILE")]
    pub cookies: PathBuf,
}

pub async fn run(settings: &Settings, args: &LoginArgs) -> Result<(), CliError> {
    crate::daemon::prepare_profile(settings).map_err(|err| CliError::usage(err.to_string()))?;
    if settings.site == "none" {
        return Err(CliError::usage(
            "login needs a site to check the session on: --site / EXECUTOR_SITE is `none` (use x, sandbox or a site file)",
        ));
    }
    let definition =
        SiteDefinition::load(&settings.site).map_err(|err| CliError::usage(err.to_string()))?;
    let site_name = definition.name.clone();
    let site_url = crate::sandbox::address::site_url(settings);
    let base = site_url
        .clone()
        .unwrap_or_else(|| definition.base_url.clone());
    let host = host_of(&base)
        .ok_or_else(|| CliError::usage(format!("the site's base URL {base:?} names no host")))?;
    let engine = SiteEngine::new(definition, site_url.as_deref());

    let all = cookies::read_file(&args.cookies).map_err(|err| CliError::usage(err.to_string()))?;
    let total = all.len();
    let ours: Vec<Cookie> = all.into_iter().filter(|c| c.belongs_to(&host)).collect();
    if ours.is_empty() {
        return Err(CliError::usage(format!(
            "--cookies {}: none of its {total} cookie(s) is for {host}, the host of the site {site_name}; export that site's cookies",
            args.cookies.display()
        )));
    }
    if let Some(owner) =
        crate::lock::LockOwner::read(&settings.lock_path()).filter(|owner| owner.is_alive())
    {
        return Err(CliError::failure(format!(
            "the daemon (pid {}) is running on this profile and owns its browser's page; stop it first (executor stop)",
            owner.pid
        )));
    }

    let (identity, started) = match chrome::running(settings) {
        Some(identity) => (identity, false),
        None => (chrome::start(settings, true).await?, true),
    };
    let outcome = import(settings, identity.port, &engine, &ours).await;
    if started {
        match chrome::stop(settings).await? {
            chrome::Stopped::Browser { closed: true, .. } => {
                crate::outln!("The browser this command started was closed (the cookies are saved in the profile).")
            }
            _ => crate::outln!(
                "The browser this command started did not close by itself and was ended: if the next start is logged out, run this command again with `executor chrome` running."
            ),
        }
    }
    let session = outcome?;

    let skipped = total - ours.len();
    crate::outln!(
        "Set {} cookie(s) for {host} from {}{}.",
        ours.len(),
        args.cookies.display(),
        if skipped > 0 {
            format!(" (skipped {skipped} of other sites)")
        } else {
            String::new()
        }
    );
    let now = unix_seconds();
    let expired = ours.iter().filter(|c| c.expired(now)).count();
    match session {
        Ok(Session {
            account: Some(account),
        }) => {
            if !settings.account.is_empty() && settings.account != account {
                return Err(CliError::failure(format!(
                    "logged in to {site_name} as {account}, but --account / EXECUTOR_ACCOUNT is {}: export the cookies of that account",
                    settings.account
                )));
            }
            crate::outln!("Logged in to {site_name} as {account}.");
        }
        Ok(Session { account: None }) => {
            crate::outln!("Logged in to {site_name} (its site definition does not say as whom).")
        }
        Err(ActionError::AuthRequired) => {
            let why = if expired > 0 {
                format!("{expired} of them had expired already")
            } else {
                "export them again from a browser that is logged in".to_string()
            };
            return Err(CliError::failure(format!(
                "{site_name} still shows its login wall after {} cookie(s) from {} were set: still logged out ({why})",
                ours.len(),
                args.cookies.display()
            )));
        }
        Err(err) => {
            return Err(CliError::failure(format!(
                "checking the session on {site_name}: {err}"
            )))
        }
    }
    let session_only = ours.iter().filter(|c| c.expires.is_none()).count();
    if started && session_only > 0 {
        crate::outln!(
            "Note: {session_only} of the cookies are session cookies (no expiry), which the browser drops when it closes; if the site needs them, start `executor chrome` first and keep it running."
        );
    }
    Ok(())
}

/// Sets the cookies in the managed browser on `port` and checks the session on the site. The
/// outer error: the browser could not be reached or refused the cookies.
async fn import(
    settings: &Settings,
    port: u16,
    engine: &SiteEngine,
    cookies: &[Cookie],
) -> Result<Result<Session, ActionError>, CliError> {
    let config = BrowserConfig {
        mode: BrowserMode::Attach,
        host: [127, 0, 0, 1].into(),
        port,
        ..BrowserConfig::from_settings(settings)
    };
    let browser = Browser::new(config, std::sync::Arc::new(|_| {}));
    let result = async {
        // A browser started a moment ago on a busy machine may not answer at the first try.
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(err) = browser.connect().await {
            if Instant::now() >= deadline {
                return Err(CliError::failure(format!(
                    "cannot reach the managed browser on CDP port {port}: {err}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let params: Vec<serde_json::Value> = cookies.iter().map(Cookie::to_cdp).collect();
        browser
            .page_call(
                "Network.setCookies",
                json!({ "cookies": params }),
                Duration::from_secs(10),
            )
            .await
            .map_err(|err| CliError::failure(format!("the browser refused the cookies: {err}")))?;
        Ok(engine.session(&browser).await)
    }
    .await;
    browser.shutdown().await; // attach mode: our page parked, the browser left as it was
    result
}

/// The host of an `http(s)://` URL, without user, port or path.
fn host_of(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_a_site_url_has_no_scheme_user_port_or_path() {
        assert_eq!(host_of("https://x.com").as_deref(), Some("x.com"));
        assert_eq!(
            host_of("http://127.0.0.1:8088/home").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            host_of("https://me@Mobile.X.com:443?a#b").as_deref(),
            Some("mobile.x.com")
        );
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("ftp://x.com"), None);
        assert_eq!(host_of("http:///path"), None);
    }
}
