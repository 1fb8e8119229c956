/*
 * oauth.h - identities of outside sign-in providers (issue 10: Sign in with
 * Google) linked to Echo users: the oauth_identities table of migration 003.
 *
 * An identity is (provider, subject): the provider's name ("google") and its
 * stable "sub" claim for the person. It belongs to one user (deleted with the
 * user). The email is the verified address the provider reported when the
 * identity was linked, kept to show on the profile page; it is never used to
 * find an identity.
 *
 * Status codes as db.h. Thread-safety as db.h: a connection belongs to the
 * calling thread; the validators are pure.
 */
#ifndef ECHO_DB_OAUTH_H
#define ECHO_DB_OAUTH_H

#include "db/db.h"

#define DB_OAUTH_PROVIDER_MAX 32
#define DB_OAUTH_SUBJECT_MAX 255

struct db_oauth_identity {
    int64_t id;
    char provider[DB_OAUTH_PROVIDER_MAX + 1];
    char *subject;
    int64_t user_id;
    char *email; /* NULL when the provider gave none */
    int64_t created_at;
};
/* Frees the strings of an identity filled by a db_oauth_* function. */
void db_oauth_identity_deinit(struct db_oauth_identity *o);

/* A provider name is 1-32 of [a-z0-9_]; a subject 1-255 printable ASCII
 * characters (OpenID Connect: at most 255 ASCII characters). */
bool db_oauth_provider_valid(const char *provider);
bool db_oauth_subject_valid(const char *subject);

/* Links (provider, subject) to user_id. email may be NULL. DB_CONFLICT
 * (field "subject") when the identity is linked already (to anyone),
 * DB_NOT_FOUND when the user does not exist, DB_INVALID for a bad provider,
 * subject or an email over DB_EMAIL_MAX bytes or not UTF-8. */
int db_oauth_link(db *d, const char *provider, const char *subject, int64_t user_id,
                  const char *email, int64_t now, int64_t *id, struct echo_err *err);
/* The identity (provider, subject); DB_NOT_FOUND when unknown. */
int db_oauth_find(db *d, const char *provider, const char *subject, struct db_oauth_identity *out,
                  struct echo_err *err);
/* The user's identities as a new JSON array of {provider, email,
 * created_at}, oldest first (the subject is not shown to people). */
int db_oauth_user_json(db *d, int64_t user_id, json_t **out, struct echo_err *err);
/* How many identities of provider (NULL: of any) the user has. */
int db_oauth_count_user(db *d, int64_t user_id, const char *provider, int64_t *n,
                        struct echo_err *err);
/* Removes every identity of provider from the user; *removed (optional) gets
 * how many. DB_NOT_FOUND when there was none. */
int db_oauth_unlink(db *d, int64_t user_id, const char *provider, int64_t *removed,
                    struct echo_err *err);

#endif
