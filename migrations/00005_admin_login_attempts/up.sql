-- Admin login attempts that count against BACKEND_ADMIN_LOGIN_LIMIT: a row
-- is written (under advisory locks on the source IP and the username)
-- BEFORE the password is hashed, so parallel logins cannot all pass the
-- limit, and it holds across several backends on one database. A
-- successful login deletes its row: the limit counts failed logins.
CREATE TABLE admin_login_attempts (
    id           uuid PRIMARY KEY,
    source_ip    text NOT NULL,
    username     text NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_login_attempts_ip_idx ON admin_login_attempts (source_ip, attempted_at);
CREATE INDEX admin_login_attempts_username_idx ON admin_login_attempts (username, attempted_at);
CREATE INDEX admin_login_attempts_at_idx ON admin_login_attempts (attempted_at);
