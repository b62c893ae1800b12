//! The session cache follows its peers' changes (SYSTEM.md §12): every
//! session opened or revoked on any backend is announced on
//! [`session::CHANNEL`] and reloaded here by id.

use galaxy_db::announce::Coherent;
use uuid::Uuid;

use crate::service::PgAuthService;
use crate::session;

#[async_trait::async_trait]
impl Coherent for PgAuthService {
    fn channel(&self) -> &'static str {
        session::CHANNEL
    }

    async fn reload(&self, ids: &[Uuid]) -> Result<(), String> {
        self.reload_sessions(ids).await.map_err(|e| e.to_string())
    }

    async fn reload_all(&self) -> Result<(), String> {
        self.warm().await.map(drop).map_err(|e| e.to_string())
    }
}
