//! Tables owned by the notification module (migrations 00001 and 00002).

diesel::table! {
    notification_intents (id) {
        id -> Uuid,
        kind -> Text,
        idempotency_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        origin_request_id -> Nullable<Text>,
    }
}

diesel::table! {
    notification_routes (id) {
        id -> Uuid,
        intent_id -> Uuid,
        channel -> Text,
        account_id -> Nullable<Uuid>,
        address -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        skip_reason -> Nullable<Text>,
        mail_delivery_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        read_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(notification_routes -> notification_intents (intent_id));
diesel::allow_tables_to_appear_in_same_query!(notification_intents, notification_routes);
