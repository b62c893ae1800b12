//! Tables owned by the lobby module (`game_turns` belongs to runtime).

diesel::table! {
    games (id) {
        id -> Uuid,
        name -> Text,
        owner_id -> Uuid,
        engine_version -> Text,
        status -> Text,
        min_players -> Int4,
        max_players -> Int4,
        turn_interval_seconds -> Int4,
        settings -> Jsonb,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    game_members (game_id, account_id) {
        game_id -> Uuid,
        account_id -> Uuid,
        race_name -> Text,
        role -> Text,
        joined_at -> Timestamptz,
        left_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(game_members -> games (game_id));
diesel::allow_tables_to_appear_in_same_query!(games, game_members);
