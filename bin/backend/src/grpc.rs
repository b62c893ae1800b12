//! The internal gRPC listener. It is bound before anything else is served so
//! readiness can report it; services are added as modules land (the push
//! service arrives with the notification module).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use galaxy_core::ReadyFlag;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

pub struct GrpcListener {
    listener: TcpListener,
}

impl GrpcListener {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind the gRPC listener on {addr}"))?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled. Sets `bound` once accepting.
    pub async fn serve(self, bound: ReadyFlag, shutdown: CancellationToken) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let incoming = TcpListenerStream::new(self.listener);
        bound.set_ready();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_service(health_service)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
            .context("gRPC server failed")
    }
}
