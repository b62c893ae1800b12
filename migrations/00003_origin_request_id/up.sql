-- The request that caused queued work, so one request id correlates the HTTP
-- request, its logs and trace, and the worker that later handles the row.
ALTER TABLE mail_deliveries
    ADD COLUMN origin_request_id text NULL CHECK (length(origin_request_id) <= 128);
ALTER TABLE notification_intents
    ADD COLUMN origin_request_id text NULL CHECK (length(origin_request_id) <= 128);
