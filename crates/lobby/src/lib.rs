#![doc = include_str!("../README.md")]

mod cache;
mod db;
mod error;
mod events;
mod model;
mod openapi;
mod ports;
mod routes;
pub mod schema;
mod schema_rules;
mod service;
mod state;
mod validate;

pub use error::LobbyError;
pub use model::{
    BuildShips, BuildShipsType, CreateGame, Game, GameStatus, GameView, JoinGame, Member,
    MemberRole, Order, RaiseIndustry, RaiseIndustryType, Report, SubmitOrders, TurnInfo,
};
pub use openapi::openapi;
pub use ports::{
    AccountDirectory, AfterCommit, GameCallError, GameRuntime, GameStartSpec, LobbyNotifier,
    StartError, StartPlayer,
};
pub use routes::configure;
pub use service::{LobbyEvents, LobbyService};
pub use state::PgLobby;
