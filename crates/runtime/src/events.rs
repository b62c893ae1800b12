//! What the runtime tells other modules (lobby status, notifications)
//! through the port the binary implements.

use async_trait::async_trait;
use diesel_async::AsyncPgConnection;
use galaxy_core::ApiError;
use uuid::Uuid;

use crate::model::EngineFailure;

/// Reactions of other modules (lobby status, notifications), implemented
/// by the binary's adapters. Called after the runtime's own commit; an
/// implementation handles its own failures. `engine_running` fires on every
/// transition into `running` (a first start, a restart by the reconciler, a
/// patch), so implementations must be idempotent; `engine_stopped` when an
/// operator stopped the engine (committed before the container is gone: from
/// then on the engine takes no orders), before the stop request returns.
#[async_trait]
pub trait RuntimeEvents: Send + Sync + 'static {
    async fn engine_running(&self, game_id: Uuid);
    async fn engine_stopped(&self, game_id: Uuid);
    async fn engine_failed(&self, game_id: Uuid, failure: EngineFailure);
    /// Inside the transaction that records `turn` (`conn` is in it): writes
    /// what must happen exactly once with the turn (`runtime.turn_generated`),
    /// so a crash after the commit loses nothing (decision HARD-14). An error
    /// rolls the turn back; the claim then runs out and a later tick records
    /// the same turn. The returned future runs after the commit.
    async fn turn_generated(
        &self,
        conn: &mut AsyncPgConnection,
        game_id: Uuid,
        turn: u32,
        forced: bool,
    ) -> Result<AfterCommit, ApiError>;
}

/// What a reaction written inside the runtime's transaction still does once
/// it committed (an immediate push); dropping it loses nothing.
pub type AfterCommit = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
