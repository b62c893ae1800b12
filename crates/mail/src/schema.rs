//! Tables owned by the mail module. `mail_deliveries.secret_until` and
//! `scrubbed_at` (migration 00006) are left out — diesel's default limit is
//! 16 columns — and only used through SQL (`outbox`, `retention`, `store`).

diesel::table! {
    mail_deliveries (id) {
        id -> Uuid,
        kind -> Text,
        to_address -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        status -> Text,
        cycle_attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        notification_route_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        origin_request_id -> Nullable<Text>,
    }
}

diesel::table! {
    mail_attempts (delivery_id, attempt_no) {
        delivery_id -> Uuid,
        attempt_no -> Int4,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
        smtp_code -> Nullable<Int4>,
        error -> Nullable<Text>,
    }
}

diesel::joinable!(mail_attempts -> mail_deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(mail_deliveries, mail_attempts);
