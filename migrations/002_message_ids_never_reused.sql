-- Message ids are never reused: a tab that saw answer N end must not take a
-- later exchange with the same id for that old one (clearing a discussion
-- deletes the newest rows, and a plain INTEGER PRIMARY KEY would hand their
-- ids out again). AUTOINCREMENT needs a table rebuild in SQLite.
CREATE TABLE messages_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role              TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    content           TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    finish_reason     TEXT,
    tokens_per_second REAL
);
INSERT INTO messages_new (id, user_id, role, content, created_at, prompt_tokens,
                          completion_tokens, finish_reason, tokens_per_second)
    SELECT id, user_id, role, content, created_at, prompt_tokens, completion_tokens,
           finish_reason, tokens_per_second FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_user_id ON messages (user_id);
CREATE INDEX messages_created_at ON messages (created_at);
CREATE INDEX messages_answers ON messages (role, completion_tokens, tokens_per_second)
    WHERE role = 'assistant';
