//! Tables owned by the admin module.

diesel::table! {
    admins (id) {
        id -> Uuid,
        username -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        password_changed_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    admin_sessions (id) {
        id -> Uuid,
        admin_id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// Failed (and in-progress) admin logins inside the limit window.
    admin_login_attempts (id) {
        id -> Uuid,
        source_ip -> Text,
        username -> Text,
        attempted_at -> Timestamptz,
    }
}
