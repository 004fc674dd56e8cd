//! `executor sandbox`: serve the bundled test site on 127.0.0.1 until SIGINT/SIGTERM.
//!
//! While it serves, its address is recorded in the profile (`sandbox::address`), so that the
//! daemon, `login` and `verify --on-site` of the same profile given `--site sandbox` find it
//! on whatever port it took, without `--site-url`.

use super::CliError;
use crate::sandbox::{address, Fault, Sandbox};
use crate::settings::Settings;
use clap::Args;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0: any free port; the URL is printed, and recorded in the profile for
    /// the commands given --site sandbox)
    #[arg(long, default_value_t = 8088)]
    pub port: u16,
    /// Start with a fault switched on: popups, slow, hang, script_hang, rate_limit, logged_out, late_answer, no_answer, short_timeline, garble (change it later with POST /api/fault)
    #[arg(long, value_name = "NAME")]
    pub fault: Option<String>,
}

pub async fn run(settings: &Settings, args: &SandboxArgs) -> Result<(), CliError> {
    let fault = match args.fault.as_deref().map(|n| Fault::parse(n).ok_or(n)) {
        Some(Err(name)) => {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
            return Err(CliError::usage(format!(
                "--fault {name:?} is not one of {}",
                names.join(", ")
            )));
        }
        Some(Ok(fault)) => Some(fault),
        None => None,
    };
    let sandbox = Sandbox::new(fault);
    let stop = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let (bound, task) = sandbox
        .serve(addr, stop)
        .await
        .map_err(|err| CliError::failure(format!("cannot listen on {addr}: {err}")))?;
    crate::outln!(
        "Sandbox serving on http://{bound} (fault: {}); published posts: http://{bound}/api/posts",
        fault.map(Fault::name).unwrap_or("none")
    );
    let recorded = record(settings, &format!("http://{bound}"));
    let _ = task.await;
    if recorded {
        address::forget(&settings.profile);
    }
    Ok(())
}

/// Records the address for the profile's other commands; a profile that cannot take it is
/// said once, with what to do instead, and the sandbox serves all the same.
fn record(settings: &Settings, url: &str) -> bool {
    let profile = &settings.profile;
    let written =
        crate::files::create_private_dir(profile).and_then(|()| address::record(profile, url));
    match written {
        Ok(()) => true,
        Err(err) => {
            crate::errln!(
                "cannot record the sandbox's address in {}: {err}; give the other commands --site-url {url}",
                profile.display()
            );
            false
        }
    }
}
