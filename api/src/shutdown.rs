//! Shutdown signals (12-factor, factor IX: disposability).
//!
//! Guarantee: [`shutdown_signal`] installs the SIGTERM (what orchestrators
//! send) and SIGINT (Ctrl-C) handlers when it is *called*, not when its
//! future is first polled, so a signal that arrives right after start-up
//! (before the server task has run) is not lost to the default action (an
//! immediate exit without a drain). The future resolves on the first of the
//! two; the server then stops accepting connections, lets in-flight requests
//! finish within `SHUTDOWN_TIMEOUT`, closes the database pool and returns,
//! so the process exits with status 0.

use std::future::Future;

/// Install the SIGTERM/SIGINT handlers now; the future resolves (and logs
/// which signal arrived) on the first of them.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, signal = name, "cannot listen for the signal");
                None
            }
        };
        let mut term = install(SignalKind::terminate(), "SIGTERM");
        let mut int = install(SignalKind::interrupt(), "SIGINT");
        async move {
            let signal = tokio::select! {
                _ = recv(&mut int) => "SIGINT",
                _ = recv(&mut term) => "SIGTERM",
            };
            log_received(signal);
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
            log_received("SIGINT");
        }
    }
}

/// The next delivery of `s`, or never if its handler could not be installed.
#[cfg(unix)]
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn log_received(signal: &str) {
    tracing::info!(
        signal,
        "shutdown signal received, draining in-flight requests"
    );
}
