DROP INDEX mail_deliveries_secret_idx;
ALTER TABLE mail_deliveries DROP COLUMN scrubbed_at, DROP COLUMN secret_until;
