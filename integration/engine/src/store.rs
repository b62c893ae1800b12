//! The game's state file under the data directory. Every change is written
//! to a temporary file, flushed and renamed over the old one, so a crash or a
//! `docker kill` leaves either the old or the new state, never a torn file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::rules::Game;

pub struct Store {
    path: PathBuf,
    tmp: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("state.json"),
            tmp: dir.join("state.json.tmp"),
        }
    }

    pub fn load(&self) -> Result<Option<Game>, String> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is corrupt: {e}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    pub fn save(&self, game: &Game) -> Result<(), String> {
        let bytes = serde_json::to_vec(game).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&self.tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&self.tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                // Makes the rename itself durable.
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::rules::StartConfig;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = std::env::temp_dir().join(format!("galaxy-engine-store-{}", Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let store = Store::new(&dir);
        assert_eq!(store.load().unwrap(), None);
        let config = StartConfig::parse(
            &json!({"game_id": Uuid::nil(), "players": [{"account_id": Uuid::nil(), "race_name": "A"}]})
                .to_string(),
        )
        .unwrap();
        let mut game = Game::new(config);
        game.next_turn();
        store.save(&game).unwrap();
        assert_eq!(store.load().unwrap(), Some(game));
        assert!(!dir.join("state.json.tmp").exists());
        fs::write(dir.join("state.json"), b"{").unwrap();
        assert!(store.load().is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
