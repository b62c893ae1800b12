//! The gateway's life: build the parts, serve until SIGTERM/SIGINT, then
//! stop accepting, close every player socket with 1001 and finish in-flight
//! requests, all within `GATEWAY_SHUTDOWN_TIMEOUT`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio_util::sync::CancellationToken;

use crate::backend_api::BackendApi;
use crate::client_addr::ClientAddr;
use crate::hub::{Hub, close};
use crate::limits::Limits;
use crate::streams::Streams;
use crate::upstream::Upstreams;
use crate::{Gateway, Settings, app, revalidate};

/// Serves until `stop` resolves (the binary passes its signal listener).
pub async fn serve(
    settings: Settings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let hub = Arc::new(Hub::new(
        settings.ws.send_queue,
        settings.ws.max_per_account,
    ));
    let upstreams = Arc::new(Upstreams::new(settings.backend_urls.clone())?);
    let limits = Arc::new(Limits::new(
        settings.auth_rate_limit,
        settings.redis_url.as_ref(),
    )?);
    let streams = Arc::new(Streams::new(
        settings.backend_grpc.clone(),
        settings.push_token.clone(),
        settings.gateway_id.clone(),
        Arc::clone(&hub),
    ));
    let api = Arc::new(BackendApi::new(Arc::clone(&upstreams)));
    let gw = Arc::new(Gateway {
        client_addr: ClientAddr::new(settings.trusted_proxies.clone()),
        settings,
        limits: Arc::clone(&limits),
        upstreams: Arc::clone(&upstreams),
        api: Arc::clone(&api),
        hub: Arc::clone(&hub),
        streams: Arc::clone(&streams),
        draining: AtomicBool::new(false),
    });
    let sockets = Arc::clone(&hub);
    galaxy_telemetry::register_gauge(
        "gateway.push.sockets",
        "Player sockets open on this gateway",
        move |g| {
            g.observe(
                i64::try_from(sockets.open_sockets()).unwrap_or(i64::MAX),
                &[],
            );
        },
    );

    let listen = gw.settings.http_listen;
    let listener =
        bind(listen).with_context(|| format!("cannot bind the HTTP listener on {listen}"))?;
    tracing::info!(http = %listener.local_addr()?, gateway_id = %gw.settings.gateway_id, "listening");

    // Know the backends before the first request.
    upstreams.refresh_once(true).await;
    let tasks = vec![
        tokio::spawn(Arc::clone(&upstreams).run(shutdown.clone())),
        tokio::spawn(Arc::clone(&limits).run(shutdown.clone())),
        tokio::spawn(Arc::clone(&streams).run(shutdown.clone())),
        tokio::spawn(revalidate::run(
            Arc::clone(&hub),
            api,
            gw.settings.ws.revalidate_interval,
            shutdown.clone(),
        )),
    ];

    let timeout = gw.settings.shutdown_timeout;
    let stopping = CancellationToken::new();
    let on_stop = {
        let (gw, stopping) = (Arc::clone(&gw), stopping.clone());
        async move {
            stop.await;
            tracing::info!("shutdown requested; closing sockets and draining");
            gw.draining.store(true, Ordering::Relaxed);
            gw.hub.close_all(close::GOING_AWAY);
            stopping.cancel();
        }
    };
    let app = app::router(Arc::clone(&gw));
    let listener = listener.tap_io(|stream| {
        // Inherited from the listener on some kernels, not on others: set
        // on each accepted connection.
        let sock = socket2::SockRef::from(&*stream);
        if let Err(e) = sock.set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(error = %e, "cannot bound a connection's send buffer");
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(on_stop);
    let mut server = tokio::spawn(async move { server.await });

    let outcome = tokio::select! {
        biased;
        () = stopping.cancelled() => {
            let drain = async {
                let _served = (&mut server).await;
                // Upgraded sockets are not the server's any more: wait for
                // their close frames to go out.
                while gw.hub.open_sockets() > 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            if tokio::time::timeout(timeout, drain).await.is_err() {
                tracing::warn!(?timeout, open_sockets = gw.hub.open_sockets(), "shutdown bound reached; exiting anyway");
            }
            Ok(())
        }
        res = &mut server => match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("HTTP server failed")),
            Err(e) => Err(anyhow::anyhow!("HTTP server task failed: {e}")),
        },
    };
    shutdown.cancel();
    for task in tasks {
        task.abort();
    }
    tracing::info!("stopped");
    outcome
}

/// Kernel send buffer of every accepted connection. Bounded so that a player who stops reading fills it, then
/// its queue, and is closed as a slow consumer — instead of the kernel's
/// autotuning parking megabytes per socket. 64 KiB still streams an API
/// response at hundreds of MB/s on a LAN.
const SEND_BUFFER: usize = 64 * 1024;

fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
