//! The request id of the work a task does: set by the HTTP middleware (and
//! the gRPC listener) for a request, carried into tasks the request hands
//! work to, read by error responses and log lines. The lowest piece of the
//! request context, so errors can name their request without depending on
//! the middleware.

/// The header a request id arrives in and is echoed back in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served by this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `fut` with `request_id` as its request id: for work a request hands
/// to another task (which does not inherit the task-local), so its logs and
/// the rows it enqueues still carry the request's id.
pub async fn with_request_id<F: std::future::Future>(
    request_id: Option<String>,
    fut: F,
) -> F::Output {
    match request_id {
        Some(id) => REQUEST_ID.scope(id, fut).await,
        None => fut.await,
    }
}

/// The caller's request id when it is sane, else a fresh one. Shared by the
/// HTTP middleware and the gRPC listener so both accept the same ids.
pub fn request_id_or_new(supplied: Option<&str>) -> String {
    supplied
        .filter(|v| sane_request_id(v))
        .map_or_else(new_request_id, str::to_owned)
}

/// A fresh request id (a v4 UUID, simple form) from the thread's generator:
/// `Uuid::new_v4` asks the kernel for its bytes, one system call on every
/// request.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .to_string()
}

/// A client-supplied id is kept when it is a short token of safe characters;
/// anything else is replaced so ids can be logged and echoed safely.
pub(crate) fn sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}
