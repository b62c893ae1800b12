//! Tables owned by the runtime module.

diesel::table! {
    engine_versions (version) {
        version -> Text,
        image -> Text,
        status -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    runtime_records (game_id) {
        game_id -> Uuid,
        desired_state -> Text,
        observed_state -> Text,
        container_id -> Nullable<Text>,
        container_name -> Text,
        engine_version -> Text,
        image -> Text,
        endpoint -> Nullable<Text>,
        current_turn -> Int4,
        next_turn_at -> Nullable<Timestamptz>,
        skip_next_wait -> Bool,
        last_error -> Nullable<Text>,
        last_reconciled_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        turn_claimed_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    runtime_operation_log (id) {
        id -> Uuid,
        game_id -> Uuid,
        operation -> Text,
        actor -> Text,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        outcome -> Text,
        error_message -> Nullable<Text>,
        details -> Jsonb,
    }
}

diesel::table! {
    game_turns (game_id, turn_no) {
        game_id -> Uuid,
        turn_no -> Int4,
        generated_at -> Timestamptz,
        duration_ms -> Int4,
        forced -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(engine_versions, runtime_records);
