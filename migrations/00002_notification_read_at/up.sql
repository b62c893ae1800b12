-- The inbox (GET /api/v1/user/notifications) lists a user's push routes;
-- reading one stamps read_at.
ALTER TABLE notification_routes ADD COLUMN read_at timestamptz NULL;

-- Inbox pages: a user's push routes newest first, and the unread subset.
CREATE INDEX notification_routes_inbox_idx ON notification_routes (account_id, created_at DESC, id DESC)
    WHERE channel = 'push';
CREATE INDEX notification_routes_inbox_unread_idx ON notification_routes (account_id, created_at DESC, id DESC)
    WHERE channel = 'push' AND read_at IS NULL;

-- Admin listing of intents filtered by kind.
CREATE INDEX notification_intents_kind_created_idx ON notification_intents (kind, created_at DESC);
