//! Lock guards that outlive a panic: the in-memory caches hold plain data
//! that every write replaces whole or entry by entry, so a writer that
//! panicked leaves nothing half-made, and readers carry on rather than
//! failing every later request.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// `lock.read()`, poisoned or not.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// `lock.write()`, poisoned or not.
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
