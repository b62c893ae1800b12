//! The Galaxy backend as a library, so its composition can be tested; the
//! `galaxy-backend` binary is a thin command-line front over it.

mod adapters;
pub mod config;
mod gauges;
mod grpc;
pub mod modules;
pub mod openapi;
pub mod serve;
pub mod telemetry;
