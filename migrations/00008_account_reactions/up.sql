-- The reactions an account change owes other modules (sessions revoked,
-- notification routes skipped, open games left), written in the same
-- transaction as the change and deleted once every reaction succeeded.
-- A process that dies in between leaves the row; the user module's worker
-- (any backend) completes it. A row is worked on under its row lock
-- (FOR UPDATE), so a crash releases it at once. changed_at bounds a block's
-- revocation to the sessions that existed when the block committed.
CREATE TABLE account_reactions (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id),
    status          text NOT NULL CHECK (status IN ('blocked', 'deleted')),
    changed_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NULL
);
CREATE INDEX account_reactions_due_idx ON account_reactions (next_attempt_at);
