-- Who did what to what, when, and how it ended: one row per admin action,
-- through the admin API (recorded by the audit middleware) or the operator
-- console (recorded by its handlers). Rows are only ever inserted.
CREATE TABLE admin_audit (
    id uuid PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    -- No foreign key: the log outlives what it names.
    admin_id uuid NOT NULL,
    admin_username text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('api', 'console')),
    -- API: `POST /api/v1/admin/users/{id}/block`; console: `user.block`.
    action text NOT NULL,
    -- The ids the action named (path ids), e.g. `id=…`; NULL when none.
    target text NULL,
    -- API: the HTTP status; console: `ok` or the error code.
    outcome text NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at DESC, id DESC);
