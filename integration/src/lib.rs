//! The integration suite's environment harness: real `galaxy-backend`
//! processes on free loopback ports, each against its own database.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the test
//! executables (`target/<profile>/`); running this package alone needs
//! `cargo build --bins` first.

pub mod api;
mod backend;

pub use backend::{Backend, BackendBuilder, binary_path, free_port, geoip_fixture};
