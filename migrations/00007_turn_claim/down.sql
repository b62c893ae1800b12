ALTER TABLE runtime_records DROP COLUMN turn_claimed_until;
