//! The shared low layer of the Galaxy backend (layer 0).
//!
//! Everything a domain crate needs to expose HTTP routes the same way as every
//! other module: the problem+json error type, pagination, the caller's
//! identity (`UserPrincipal` / `AdminPrincipal` backed by resolvers the binary
//! registers), request ids and access logs, readiness, source-IP extraction and
//! environment parsing helpers. No domain logic lives here.

pub mod env;
pub mod failpoint;
pub mod healthcheck;
pub mod http;
mod ids;
pub mod openapi_responses;
mod pagination;
pub mod percent;
mod principal;
mod problem;
mod readiness;
mod request;
mod request_id;
pub mod schema_rules;
mod signal;
mod source_ip;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
mod validate;

pub use ids::new_id;
pub use pagination::{Page, PageQuery, Paged};
pub use principal::{
    AdminPrincipal, AdminSessionResolver, UserPrincipal, UserSessionResolver, bearer_token,
};
pub use problem::{ApiError, FieldError, Problem};
pub use readiness::{LeaderProbe, Readiness, ReadinessCheck, ReadinessReport, ReadyFlag};
pub use request::{RequestContext, RequestObserver, set_request_observer};
pub use request_id::{current_request_id, new_request_id, request_id_or_new, with_request_id};
pub use signal::shutdown_signal;
pub use source_ip::{SourceIp, source_ip};
pub use validate::{Validator, is_invisible, json_problem, name_pattern, name_problem};
