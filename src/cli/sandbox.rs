//! `executor sandbox`: serve the bundled test site on 127.0.0.1 until SIGINT/SIGTERM.

use super::CliError;
use crate::sandbox::{Fault, Sandbox};
use clap::Args;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1 (0: any free port; the URL is printed)
    #[arg(long, default_value_t = 8088)]
    pub port: u16,
    /// Start with a fault switched on: popups, slow, hang, script_hang, rate_limit, logged_out, late_answer, no_answer, short_timeline, garble (change it later with POST /api/fault)
    #[arg(long, value_name = "NAME")]
    pub fault: Option<String>,
}

pub async fn run(args: &SandboxArgs) -> Result<(), CliError> {
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
    let _ = task.await;
    Ok(())
}
