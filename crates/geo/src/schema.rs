//! Tables owned by the geo module.

diesel::table! {
    user_country_counters (account_id, country) {
        account_id -> Uuid,
        country -> Text,
        request_count -> Int8,
        first_seen_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}
