//! The one shutdown signal of every Galaxy process.

/// Resolves on SIGINT or SIGTERM (each listener gets every signal, so the
/// serve loop and a shutdown clock can both wait on it).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // No SIGTERM handler can be installed: Ctrl-C still works.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
