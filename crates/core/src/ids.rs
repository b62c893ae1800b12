use uuid::Uuid;

/// A new primary key. UUIDv7 keeps ids roughly time-ordered, which keeps
/// b-tree inserts local and makes "newest first" listings cheap to tie-break.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}
