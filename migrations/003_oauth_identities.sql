-- 003_oauth_identities.sql - accounts of an outside identity provider
-- linked to Echo users (issue 10: Sign in with Google).
--
-- A person is known to a provider by its stable "sub" claim (never by email,
-- which can change hands); (provider, subject) names one identity, and an
-- identity belongs to exactly one user. email is the verified address the
-- provider reported when the identity was linked, shown on the profile page.
CREATE TABLE oauth_identities (
    id         INTEGER PRIMARY KEY,
    provider   TEXT    NOT NULL CHECK (length(provider) BETWEEN 1 AND 32),
    subject    TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT    CHECK (email IS NULL OR length(email) <= 254),
    created_at INTEGER NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX oauth_identities_user_id ON oauth_identities (user_id);
