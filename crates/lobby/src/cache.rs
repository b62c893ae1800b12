//! The lobby cache: every game with its current members, loaded whole at
//! warm-up and written through only after a commit succeeded. Request paths
//! read it and never the database.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use galaxy_core::Page;
use uuid::Uuid;

use crate::model::{Game, GameStatus};

#[derive(Default)]
pub(crate) struct LobbyCache {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    games: HashMap<Uuid, Arc<Game>>,
    /// Newest first, the order every listing uses.
    order: BTreeSet<(Reverse<DateTime<Utc>>, Reverse<Uuid>)>,
}

impl LobbyCache {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn replace_all(&self, games: Vec<Game>) {
        let mut fresh = Inner::default();
        for g in games {
            fresh.insert(g);
        }
        *self.write() = fresh;
    }

    pub fn put(&self, game: Game) -> Arc<Game> {
        self.write().insert(game)
    }

    pub fn get(&self, id: Uuid) -> Option<Arc<Game>> {
        self.read().games.get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.read().games.len()
    }

    /// One page of games (optionally of one status), newest first, and the total.
    pub fn list(&self, status: Option<GameStatus>, page: Page) -> (Vec<Arc<Game>>, i64) {
        let inner = self.read();
        let skip = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let take = page.page_size as usize;
        let mut total = 0i64;
        let mut items = Vec::with_capacity(take.min(inner.games.len()));
        for (_, Reverse(id)) in &inner.order {
            let game = &inner.games[id];
            if status.is_some_and(|s| s != game.status) {
                continue;
            }
            let index = usize::try_from(total).unwrap_or(usize::MAX);
            if index >= skip && items.len() < take {
                items.push(Arc::clone(game));
            }
            total += 1;
        }
        (items, total)
    }

    /// Games in which `account_id` is a current member.
    pub fn games_of(&self, account_id: Uuid) -> Vec<Arc<Game>> {
        self.read()
            .games
            .values()
            .filter(|g| g.member(account_id).is_some())
            .cloned()
            .collect()
    }
}

impl Inner {
    fn insert(&mut self, game: Game) -> Arc<Game> {
        let game = Arc::new(game);
        if let Some(old) = self.games.insert(game.id, Arc::clone(&game)) {
            self.order
                .remove(&(Reverse(old.created_at), Reverse(old.id)));
        }
        self.order
            .insert((Reverse(game.created_at), Reverse(game.id)));
        game
    }
}
