ALTER TABLE notification_intents DROP COLUMN origin_request_id;
ALTER TABLE mail_deliveries DROP COLUMN origin_request_id;
