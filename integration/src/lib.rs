//! The integration suite's environment harness: real `galaxy-backend` and
//! `galaxy-gateway` processes on free loopback ports, each backend against
//! its own database, and a private Redis where a test needs one.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test
//! executables (`target/<profile>/`); running this package alone needs
//! `cargo build --bins` first.
//!
//! `testenv` is the container suite's stack: the shipped images, not the
//! binaries (integration/tests/{auth_flow,game_lifecycle,…}.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test support")]
#![allow(clippy::cast_precision_loss, reason = "approximate rates")]

pub mod api;
mod backend;
pub mod engines;
mod gateway;
pub mod load;
mod process;
pub mod push;
mod redis;
pub mod testenv;

pub use backend::{Backend, BackendBuilder, binary_path, free_port, geoip_fixture};
pub use gateway::{Gateway, GatewayBuilder};
pub use redis::RedisServer;
