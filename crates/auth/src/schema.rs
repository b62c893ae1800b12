//! Tables owned by the auth module. `source_ip` (inet) is left out: it is
//! written and read through SQL casts so the crate needs no inet mapping.

diesel::table! {
    auth_challenges (id) {
        id -> Uuid,
        email -> Text,
        code_hash -> Text,
        attempts -> Int4,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    auth_sessions (id) {
        id -> Uuid,
        account_id -> Uuid,
        token_hash -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        user_agent -> Nullable<Text>,
    }
}
