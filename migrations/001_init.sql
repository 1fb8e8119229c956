-- 001_init.sql - the accounts schema (issue 3): the original app's ER model.
--
-- Conventions for every migration in this folder:
--   * Timestamps are INTEGER unix seconds (UTC). Day buckets for charts are
--     created_at / 86400, which the created_at indexes serve.
--   * Every foreign key has an index (SQLite does not create one), so a
--     cascading delete of a user never scans a whole table.
--   * The runner (src/db/migrate.c) wraps each file in one transaction with
--     foreign keys off and runs PRAGMA foreign_key_check before COMMIT; a file
--     must not contain BEGIN/COMMIT itself.

-- Usernames ([A-Za-z0-9_.-]) and emails are ASCII (checked by src/db/users.c),
-- so NOCASE, which folds ASCII letters only, makes their uniqueness exactly
-- case-insensitive.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL COLLATE NOCASE UNIQUE
                          CHECK (length(username) BETWEEN 1 AND 64),
    email         TEXT    NOT NULL COLLATE NOCASE UNIQUE
                          CHECK (length(email) BETWEEN 3 AND 254),
    password_hash TEXT,   -- NULL: the account cannot log in with a password
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER -- NULL: never logged in
);
CREATE INDEX users_created_at ON users (created_at);
CREATE INDEX users_last_login_at ON users (last_login_at); -- "active in the last 7 days"

-- A user may hold several roles ("admin", "moderator", ...), each once.
-- The unique index (user_id, name) also serves the user_id foreign key.
CREATE TABLE roles (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 32),
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
);
CREATE INDEX roles_name ON roles (name);
CREATE INDEX roles_created_at ON roles (created_at);

-- Profile pictures; the newest row (highest id) of a user is the current one.
-- path is relative to the instance folder's media directory.
CREATE TABLE pictures (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    mime       TEXT    NOT NULL,
    width      INTEGER NOT NULL CHECK (width > 0),
    height     INTEGER NOT NULL CHECK (height > 0),
    bytes      INTEGER NOT NULL CHECK (bytes >= 0),
    created_at INTEGER NOT NULL
);
CREATE INDEX pictures_user_id ON pictures (user_id);
CREATE INDEX pictures_created_at ON pictures (created_at);

CREATE TABLE feedback (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX feedback_user_id ON feedback (user_id);
CREATE INDEX feedback_created_at ON feedback (created_at);

-- The chat history. Token counts and speed are set on assistant answers.
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role              TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content           TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    finish_reason     TEXT,
    tokens_per_second REAL
);
CREATE INDEX messages_user_id ON messages (user_id);
CREATE INDEX messages_created_at ON messages (created_at);
-- The dashboard's answer statistics (average speed, length histogram) read
-- this small covering index instead of a million rows with their texts.
CREATE INDEX messages_answers ON messages (role, completion_tokens, tokens_per_second)
    WHERE role = 'assistant';

-- Server-side sessions. The cookie holds 32 random bytes; only their SHA-256
-- is stored, so a copy of the database does not hand out live sessions.
-- user_id is NULL for an anonymous session (one that only carries flash
-- messages, e.g. "you have been logged out"). data is a JSON object.
CREATE TABLE sessions (
    id_hash      BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    remember     INTEGER NOT NULL DEFAULT 0 CHECK (remember IN (0, 1)),
    data         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data))
) WITHOUT ROWID;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
