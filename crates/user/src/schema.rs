//! Tables owned by the user module.

diesel::table! {
    accounts (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        declared_country -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    /// What an account change still owes other modules (decision HARD-15).
    account_reactions (id) {
        id -> Uuid,
        account_id -> Uuid,
        status -> Text,
        changed_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
    }
}
