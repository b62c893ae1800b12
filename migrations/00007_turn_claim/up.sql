-- The turn scheduler claims a due turn in one short statement (the claim
-- lasts until turn_claimed_until), asks the engine for it with no lock,
-- transaction or connection held, then records it in a second short
-- transaction. A claim of a process that died runs out and the turn is
-- claimed again; the engine's turn number makes the retry idempotent.
ALTER TABLE runtime_records ADD COLUMN turn_claimed_until timestamptz NULL;
