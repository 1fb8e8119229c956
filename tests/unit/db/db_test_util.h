/*
 * db_test_util.h - shared set-up of the data layer's unit tests: a fresh
 * temporary folder per test and a migrated database file inside it.
 * (Included by several test programs; everything is static.)
 */
#ifndef ECHO_DB_TEST_UTIL_H
#define ECHO_DB_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

struct dbt {
    char dir[128];
    char path[192];
    db *d;
};

/* mkdtemp + db_open + db_migrate; NULL when any step fails. */
static inline struct dbt *dbt_new(void)
{
    struct dbt *t = calloc(1, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/echo-test-db-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return NULL;
    }
    snprintf(t->path, sizeof(t->path), "%s/echo.db", t->dir);
    struct echo_err err = {0};
    t->d = db_open(t->path, &err);
    if (!t->d || db_migrate(t->d, NULL, &err) != DB_OK) {
        fprintf(stderr, "dbt_new: %s\n", err.msg);
        db_close(t->d);
        free(t);
        return NULL;
    }
    return t;
}

static inline void dbt_free(struct dbt *t)
{
    if (!t) return;
    db_close(t->d);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    if (system(cmd) != 0) fprintf(stderr, "dbt_free: could not remove %s\n", t->dir);
    free(t);
}

static inline int dbt_setup(void **state)
{
    *state = dbt_new();
    return *state ? 0 : -1;
}

static inline int dbt_teardown(void **state)
{
    dbt_free(*state);
    return 0;
}

/* A user with a fixed password hash; returns the id (fails the test otherwise). */
static inline int64_t dbt_user(db *d, const char *username)
{
    char email[128];
    snprintf(email, sizeof(email), "%s@example.com", username);
    int64_t id = 0;
    struct echo_err err = {0};
    if (db_user_create(d, username, email, "$argon2id$test", true, 1700000000, &id, &err) !=
        DB_OK) {
        fprintf(stderr, "dbt_user(%s): %s\n", username, err.msg);
        return 0;
    }
    return id;
}

#endif
