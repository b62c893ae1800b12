//! The internal gRPC listener. It is bound before anything else is served so
//! readiness can report it. It serves the health service and the
//! notification module's push service (`Subscribe`, SYSTEM.md §7).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use galaxy_core::ReadyFlag;
use galaxy_notification::PushGrpc;
use galaxy_notification::proto::push_server::PushServer;
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

    /// Serves `push` (and health) until `shutdown` is cancelled. Sets
    /// `bound` once accepting.
    pub async fn serve(
        self,
        push: PushServer<PushGrpc>,
        bound: ReadyFlag,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let incoming = TcpListenerStream::new(self.listener);
        bound.set_ready();
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .trace_fn(grpc_span)
            .add_service(health_service)
            .add_service(push)
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
            .context("gRPC server failed")
    }
}

/// One span per gRPC call, like `http_request`: the caller's `x-request-id`
/// (when sane) so a request id correlates HTTP and gRPC, and the caller's
/// W3C `traceparent` as remote parent.
fn grpc_span(req: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request_id = galaxy_core::request_id_or_new(header("x-request-id"));
    let span = tracing::info_span!(
        "grpc_request",
        request_id = %request_id,
        rpc.method = %req.uri().path(),
        otel.kind = "server",
    );
    galaxy_telemetry::set_remote_parent(&span, header("traceparent"), header("tracestate"));
    span
}
