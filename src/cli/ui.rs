//! `executor ui`: the dashboard over the store (docs/ui.md), in the foreground until SIGINT or
//! SIGTERM.
//!
//! It prints one line at start, the URL to open with the token in it; the token is made once
//! and kept in `<profile>/ui-token` (`0600`), so the URL stays the same across restarts until
//! the file is deleted. The dashboard listens on loopback unless `--allow-remote-ui`.

use super::CliError;
use crate::settings::Settings;
use crate::ui::{Dashboard, Token};
use clap::Args;

/// No options of its own: the address, the store and the profile are settings.
#[derive(Debug, Args)]
pub struct UiArgs {}

pub async fn run(settings: &Settings, _args: &UiArgs) -> Result<(), CliError> {
    let token = Token::load_or_create(&settings.profile)
        .map_err(|err| CliError::failure(format!("cannot keep the dashboard's token: {err}")))?;
    let store = super::open_store(settings).await?;
    let dashboard = Dashboard::new(store, token, settings);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bound = crate::ui::serve(settings.ui_addr, &dashboard, async move {
        let _ = stopped.await;
    })
    .await
    .map_err(|err| {
        CliError::failure(format!(
            "cannot serve the dashboard on {}: {err}",
            settings.ui_addr
        ))
    })?;
    crate::outln!("Dashboard on {}", dashboard.url(bound));
    crate::outln!(
        "(the token is kept in {}; Ctrl-C stops)",
        settings
            .profile
            .join(crate::ui::security::TOKEN_FILE)
            .display()
    );
    wait_for_signal().await?;
    let _ = stop.send(());
    Ok(())
}

/// Until SIGINT or SIGTERM.
async fn wait_for_signal() -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let listen = |kind: SignalKind| {
        signal(kind).map_err(|err| CliError::failure(format!("cannot watch for signals: {err}")))
    };
    let (mut term, mut int) = (
        listen(SignalKind::terminate())?,
        listen(SignalKind::interrupt())?,
    );
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
