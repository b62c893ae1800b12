-- Galaxy backend: the whole platform schema. Runs with search_path=backend
-- (the schema itself is created by the migrations runner before this file).

-- identity ---------------------------------------------------------------

CREATE TABLE accounts (
    id               uuid PRIMARY KEY,
    email            text NOT NULL,
    display_name     text NOT NULL,
    declared_country text NULL CHECK (declared_country ~ '^[A-Z]{2}$'),
    status           text NOT NULL DEFAULT 'active'
                     CHECK (status IN ('active', 'blocked', 'deleted')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz NULL,
    CONSTRAINT accounts_email_lower CHECK (email = lower(email)),
    CONSTRAINT accounts_deleted_at CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);
CREATE INDEX accounts_created_at_idx ON accounts (created_at DESC, id);

CREATE TABLE auth_challenges (
    id          uuid PRIMARY KEY,
    email       text NOT NULL CHECK (email = lower(email)),
    code_hash   text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz NULL,
    source_ip   inet NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- rate limits count recent challenges per email and per source address
CREATE INDEX auth_challenges_email_created_idx ON auth_challenges (email, created_at);
CREATE INDEX auth_challenges_source_ip_created_idx ON auth_challenges (source_ip, created_at);
CREATE INDEX auth_challenges_expires_idx ON auth_challenges (expires_at);

CREATE TABLE auth_sessions (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    token_hash   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz NULL,
    source_ip    inet NULL,
    user_agent   text NULL
);
CREATE UNIQUE INDEX auth_sessions_token_hash_key ON auth_sessions (token_hash);
CREATE INDEX auth_sessions_account_idx ON auth_sessions (account_id) WHERE revoked_at IS NULL;

CREATE TABLE admins (
    id                  uuid PRIMARY KEY,
    username            text NOT NULL,
    password_hash       text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    disabled_at         timestamptz NULL
);
CREATE UNIQUE INDEX admins_username_key ON admins (username);

CREATE TABLE admin_sessions (
    id         uuid PRIMARY KEY,
    admin_id   uuid NOT NULL REFERENCES admins (id),
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NULL
);
CREATE UNIQUE INDEX admin_sessions_token_hash_key ON admin_sessions (token_hash);
CREATE INDEX admin_sessions_admin_idx ON admin_sessions (admin_id) WHERE revoked_at IS NULL;

-- geo --------------------------------------------------------------------

CREATE TABLE user_country_counters (
    account_id    uuid NOT NULL REFERENCES accounts (id),
    country       text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    request_count bigint NOT NULL CHECK (request_count >= 0),
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, country)
);

-- lobby and runtime ------------------------------------------------------

CREATE TABLE engine_versions (
    version    text PRIMARY KEY CHECK (length(version) BETWEEN 1 AND 64),
    image      text NOT NULL CHECK (length(image) BETWEEN 1 AND 255),
    status     text NOT NULL DEFAULT 'active'
               CHECK (status IN ('active', 'deprecated', 'disabled')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE games (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    owner_id              uuid NOT NULL REFERENCES accounts (id),
    engine_version        text NOT NULL REFERENCES engine_versions (version),
    status                text NOT NULL DEFAULT 'open'
                          CHECK (status IN ('open', 'starting', 'running', 'paused', 'finished', 'cancelled')),
    min_players           integer NOT NULL CHECK (min_players >= 1),
    max_players           integer NOT NULL CHECK (max_players >= min_players),
    turn_interval_seconds integer NOT NULL CHECK (turn_interval_seconds > 0),
    settings              jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz NULL,
    finished_at           timestamptz NULL
);
CREATE INDEX games_status_created_idx ON games (status, created_at DESC);
CREATE INDEX games_owner_idx ON games (owner_id);

CREATE TABLE game_members (
    game_id    uuid NOT NULL REFERENCES games (id),
    account_id uuid NOT NULL REFERENCES accounts (id),
    race_name  text NOT NULL,
    role       text NOT NULL CHECK (role IN ('owner', 'player')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    left_at    timestamptz NULL,
    PRIMARY KEY (game_id, account_id)
);
-- a race name is unique among a game's current members
CREATE UNIQUE INDEX game_members_race_key ON game_members (game_id, lower(race_name)) WHERE left_at IS NULL;
CREATE INDEX game_members_account_idx ON game_members (account_id);

CREATE TABLE game_turns (
    game_id      uuid NOT NULL REFERENCES games (id),
    turn_no      integer NOT NULL CHECK (turn_no >= 0),
    generated_at timestamptz NOT NULL DEFAULT now(),
    duration_ms  integer NOT NULL CHECK (duration_ms >= 0),
    forced       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (game_id, turn_no)
);

CREATE TABLE runtime_records (
    game_id            uuid PRIMARY KEY REFERENCES games (id),
    desired_state      text NOT NULL CHECK (desired_state IN ('running', 'stopped')),
    observed_state     text NOT NULL DEFAULT 'absent'
                       CHECK (observed_state IN ('absent', 'starting', 'running', 'exited', 'failed')),
    container_id       text NULL,
    container_name     text NOT NULL,
    engine_version     text NOT NULL REFERENCES engine_versions (version),
    image              text NOT NULL,
    endpoint           text NULL,
    current_turn       integer NOT NULL DEFAULT 0 CHECK (current_turn >= 0),
    next_turn_at       timestamptz NULL,
    skip_next_wait     boolean NOT NULL DEFAULT false,
    last_error         text NULL,
    last_reconciled_at timestamptz NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX runtime_records_container_name_key ON runtime_records (container_name);
-- the turn scheduler scans running games that are due or forced
CREATE INDEX runtime_records_due_idx ON runtime_records (next_turn_at)
    WHERE desired_state = 'running' AND observed_state = 'running';

CREATE TABLE runtime_operation_log (
    id            uuid PRIMARY KEY,
    game_id       uuid NOT NULL REFERENCES games (id),
    operation     text NOT NULL CHECK (operation IN ('start', 'stop', 'patch', 'force_next_turn')),
    actor         text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz NULL,
    outcome       text NOT NULL DEFAULT 'running' CHECK (outcome IN ('running', 'succeeded', 'failed')),
    error_message text NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT runtime_operation_log_finished CHECK ((outcome = 'running') = (finished_at IS NULL))
);
CREATE INDEX runtime_operation_log_game_idx ON runtime_operation_log (game_id, started_at DESC);

-- notifications and mail -------------------------------------------------

CREATE TABLE notification_intents (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_intents_kind_key UNIQUE (kind, idempotency_key)
);
CREATE INDEX notification_intents_created_idx ON notification_intents (created_at DESC);

CREATE TABLE notification_routes (
    id               uuid PRIMARY KEY,
    intent_id        uuid NOT NULL REFERENCES notification_intents (id),
    channel          text NOT NULL CHECK (channel IN ('push', 'email')),
    account_id       uuid NULL REFERENCES accounts (id),
    address          text NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'retrying', 'delivered', 'skipped', 'dead_lettered')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text NULL,
    skip_reason      text NULL,
    mail_delivery_id uuid NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notification_routes_recipient CHECK (account_id IS NOT NULL OR address IS NOT NULL OR status = 'skipped')
);
CREATE INDEX notification_routes_intent_idx ON notification_routes (intent_id);
CREATE INDEX notification_routes_due_idx ON notification_routes (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX notification_routes_account_idx ON notification_routes (account_id, created_at DESC);
CREATE INDEX notification_routes_status_idx ON notification_routes (status, created_at DESC);

CREATE TABLE mail_deliveries (
    id                    uuid PRIMARY KEY,
    kind                  text NOT NULL,
    to_address            text NOT NULL,
    subject               text NOT NULL,
    body_text             text NOT NULL,
    body_html             text NULL,
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'retrying', 'sent', 'dead_lettered')),
    cycle_attempts        integer NOT NULL DEFAULT 0 CHECK (cycle_attempts >= 0),
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    last_error            text NULL,
    notification_route_id uuid NULL REFERENCES notification_routes (id),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    sent_at               timestamptz NULL
);
CREATE INDEX mail_deliveries_due_idx ON mail_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX mail_deliveries_status_created_idx ON mail_deliveries (status, created_at DESC);
CREATE INDEX mail_deliveries_created_idx ON mail_deliveries (created_at DESC, id);

ALTER TABLE notification_routes
    ADD CONSTRAINT notification_routes_mail_delivery_fk
    FOREIGN KEY (mail_delivery_id) REFERENCES mail_deliveries (id);

CREATE TABLE mail_attempts (
    delivery_id uuid NOT NULL REFERENCES mail_deliveries (id),
    attempt_no  integer NOT NULL CHECK (attempt_no >= 1),
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NULL,
    outcome     text NULL CHECK (outcome IN ('sent', 'failed')),
    smtp_code   integer NULL,
    error       text NULL,
    PRIMARY KEY (delivery_id, attempt_no)
);
