//! Shutdown signals (12-factor, factor IX: disposability).
//!
//! Guarantee: [`shutdown_signal`] resolves on the first SIGTERM (what
//! orchestrators send) or SIGINT (Ctrl-C). The server then stops accepting
//! connections, lets in-flight requests finish within `SHUTDOWN_TIMEOUT`,
//! closes the database pool and returns, so the process exits with status 0.

/// Wait for SIGTERM or SIGINT and log which one arrived.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    let signal = tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = terminate => "SIGTERM",
    };
    tracing::info!(
        signal,
        "shutdown signal received, draining in-flight requests"
    );
}
