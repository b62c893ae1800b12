-- Mails that carry a live secret (a sign-in code): the enqueuer sets
-- secret_until to the moment the secret stops working. The mail worker
-- scrubs subject and body once the mail is sent, and a dead-lettered one
-- once secret_until has passed (until then it can still be resent);
-- scrubbed_at marks a scrubbed row (resend refuses it).
ALTER TABLE mail_deliveries
    ADD COLUMN secret_until timestamptz NULL,
    ADD COLUMN scrubbed_at  timestamptz NULL;
CREATE INDEX mail_deliveries_secret_idx ON mail_deliveries (secret_until)
    WHERE secret_until IS NOT NULL AND scrubbed_at IS NULL;
