#![doc = include_str!("../README.md")]

mod cache;
mod db;
mod error;
mod model;
mod openapi;
mod ports;
mod routes;
pub mod schema;
mod service;

pub use error::LobbyError;
pub use model::{
    CreateGame, Game, GameStatus, GameView, JoinGame, Member, MemberRole, SubmitOrders, TurnInfo,
};
pub use openapi::openapi;
pub use ports::{
    AccountDirectory, GameCallError, GameRuntime, GameStartSpec, LobbyNotifier, StartError,
    StartPlayer,
};
pub use routes::configure;
pub use service::{LobbyEvents, LobbyService, PgLobby};
