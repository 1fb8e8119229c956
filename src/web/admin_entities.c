/*
 * admin_entities.c - the descriptions of the admin panel's entities (see
 * admin.h): users, roles, pictures, feedback, messages and the audit log,
 * with their lists and their changes. The generic view in admin.c does the
 * rest (pages, forms, transactions, the audit row).
 *
 * The last-admin rule is checked after the change, inside its transaction
 * (web_admin_check_last_admin): whatever the change - an edit removing the
 * role, a deactivation, a delete of the user or of the role row - it is
 * refused when no active admin would be left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "web/admin.h"
#include "web/auth.h"
#include "web/form.h"
#include "web/profile.h"
#include "web/security.h"

static const char *const known_roles[] = {"admin", "user", "moderator"};
#define NKNOWN (sizeof(known_roles) / sizeof(known_roles[0]))

static struct db_filter filter_of(const struct web_admin_query *q)
{
    struct db_filter f = {.user_id = q->user_id,
                          .from = q->from,
                          .to = q->to,
                          .limit = q->limit,
                          .offset = q->offset};
    return f;
}

/* A posted user field: a positive id, or a username looked up. 0 with an
 * error on the form when malformed or unknown; -1 on a database error
 * (in err). An id is not checked here: the change's foreign key does. */
static int64_t form_user(http_request *req, db *d, json_t *form, const char *name,
                         struct echo_err *err)
{
    const char *s = web_form_field_trimmed(req, name);
    web_form_data(form, name, s);
    int64_t v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 18; i++)
        v = v * 10 + (s[i] - '0');
    if (s[0] && !s[i] && s[0] != '0') return v;
    if (!db_username_valid(s)) {
        web_form_error(form, name, "Enter a username or the id of a user.");
        return 0;
    }
    struct db_user u = {0};
    int st = db_user_find_by_username(d, s, &u, err);
    v = u.id;
    db_user_deinit(&u);
    if (st == DB_NOT_FOUND) {
        web_form_error(form, name, "There is no user with this username.");
        return 0;
    }
    return st == DB_OK ? v : -1;
}

/* ---- users -------------------------------------------------------------------- */

/* The user as the panel and the audit log show it (never the password
 * hash), with roles. */
static int user_get(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    struct db_user u = {0};
    *row = NULL;
    int s = db_user_get(d, id, &u, err);
    if (s != DB_OK) return s;
    json_t *o = db_user_to_json(&u);
    db_user_deinit(&u);
    json_t *roles = NULL;
    s = db_role_names_json(d, id, &roles, err);
    if (s != DB_OK) {
        json_decref(o);
        return s;
    }
    json_object_set_new(o, "roles", roles);
    /* As in the list (the delete confirmation shows what goes with it). */
    int64_t messages = 0;
    s = db_message_count_user(d, id, &messages, err);
    if (s != DB_OK) {
        json_decref(o);
        return s;
    }
    json_object_set_new(o, "message_count", json_integer(messages));
    *row = o;
    return DB_OK;
}

static int user_list(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                     struct echo_err *err)
{
    struct db_admin_user_query uq = {.search = q->search,
                                     .user_id = q->user_id,
                                     .from = q->from,
                                     .to = q->to,
                                     .sort = q->sort >= 0 ? (enum db_user_sort)q->sort
                                                          : DB_USER_SORT_ID,
                                     .descending = q->sort >= 0 ? q->descending : true,
                                     .limit = q->limit,
                                     .offset = q->offset};
    return db_admin_user_list_json(d, &uq, rows, total, err);
}

static bool role_posted(http_request *req, const char *name)
{
    size_t n;
    const struct http_param *p = http_request_form_list(req, &n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(p[i].name, "roles") && !strcmp(p[i].value, name)) return true;
    return false;
}

/* Grants the ticked known roles and revokes the unticked ones; other role
 * names (given through the Roles view) are left alone. */
static int user_set_roles(http_request *req, db *d, int64_t id, struct echo_err *err)
{
    for (size_t i = 0; i < NKNOWN; i++) {
        bool want = role_posted(req, known_roles[i]), has = false;
        int s = db_user_has_role(d, id, known_roles[i], &has, err);
        if (s == DB_OK && want && !has) s = db_role_add(d, id, known_roles[i], 0, NULL, err);
        if (s == DB_OK && !want && has) s = db_role_remove(d, id, known_roles[i], err);
        if (s != DB_OK) return s;
    }
    return DB_OK;
}

static int user_save(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err)
{
    json_t *form = ch->form;
    const char *username = web_form_field_trimmed(req, "username");
    const char *email = web_form_field_trimmed(req, "email");
    const char *password = web_form_field_raw(req, "password");
    bool active = !strcmp(web_form_field_raw(req, "is_active"), "1");
    web_form_data(form, "username", username);
    web_form_data(form, "email", email);
    if (active) web_form_data(form, "is_active", "1");
    json_t *roles = json_array();
    for (size_t i = 0; i < NKNOWN; i++)
        if (role_posted(req, known_roles[i]))
            json_array_append_new(roles, json_string(known_roles[i]));
    json_object_set_new(json_object_get(form, "data"), "roles", roles);
    /* The checkboxes only send known roles: anything else is a tampered
     * form, refused rather than silently dropped. */
    size_t np;
    const struct http_param *posted = http_request_form_list(req, &np);
    for (size_t i = 0; i < np; i++) {
        if (strcmp(posted[i].name, "roles") != 0) continue;
        bool known = false;
        for (size_t k = 0; k < NKNOWN; k++)
            known = known || !strcmp(posted[i].value, known_roles[k]);
        if (!known) {
            web_form_error(form, "roles",
                           "Only admin, user and moderator are set here; give other roles in "
                           "the Roles view.");
            break;
        }
    }
    if (!db_username_valid(username))
        web_form_error(form, "username",
                       "A username is 3 to 32 letters, digits, dots, dashes or underscores.");
    if (!db_email_valid(email)) web_form_error(form, "email", "Enter a valid email address.");
    struct echo_err perr = {0};
    if ((ch->id == 0 || password[0]) && sec_password_check(password, &perr) != SEC_OK)
        web_form_error(form, "password", perr.msg);
    if (!web_form_ok(form)) return WEB_ADMIN_FORM_INVALID;

    /* Hashing is slow on purpose: before the transaction, not holding the
     * write lock. */
    char hash[SEC_PASSWORD_HASH_MAX] = "";
    if (password[0] && sec_password_hash(password, hash, err) != SEC_OK) return DB_ERROR;
    int s = db_tx_begin(d, err);
    if (s != DB_OK) goto out;
    if (ch->id) {
        s = user_get(d, ch->id, &ch->before, err);
        if (s == DB_OK) s = db_user_update_profile(d, ch->id, username, email, err);
        if (s == DB_OK && hash[0]) s = db_user_set_password_hash(d, ch->id, hash, err);
        if (s == DB_OK) s = db_user_set_active(d, ch->id, active, err);
        /* A deactivated person's sessions end at once; so do they after a new
         * password, as with the profile's own change (whoever knew the old
         * one is logged out) - but an admin editing themself keeps the
         * session doing it. */
        if (s == DB_OK && (!active || hash[0])) {
            const struct sec_session *mine = web_session(req);
            const unsigned char *keep = NULL;
            if (active && mine && web_user(req) && web_user(req)->id == ch->id)
                keep = mine->id_hash;
            s = db_session_delete_user(d, ch->id, keep, NULL, err);
        }
    } else {
        s = db_user_create(d, username, email, hash, active, 0, &ch->id, err);
    }
    if (s == DB_OK) s = user_set_roles(req, d, ch->id, err);
    if (s == DB_CONFLICT) {
        if (!strcmp(db_conflict_field(d), "email"))
            web_form_error(form, "email", "An account with this email address already exists.");
        else
            web_form_error(form, "username", "This username is already taken.");
        s = WEB_ADMIN_FORM_INVALID;
    } else if (s == DB_INVALID) {
        web_form_fail(form, "Those details cannot be stored; check every field.");
        s = WEB_ADMIN_FORM_INVALID;
    }
    if (s == DB_OK) s = web_admin_check_last_admin(d, form, err);
    if (s == DB_OK) s = user_get(d, ch->id, &ch->after, err);
    /* The row only says has_password; the audit needs to show that this
     * change set a new one (never the hash). */
    if (s == DB_OK && ch->before && hash[0])
        json_object_set_new(ch->after, "password_changed", json_true());
    ch->user_changed = ch->id;
out:
    sodium_memzero(hash, sizeof(hash));
    return s;
}

static int user_set_active(http_request *req, db *d, struct web_admin_change *ch, bool active,
                           struct echo_err *err)
{
    (void)req;
    int s = db_tx_begin(d, err);
    if (s == DB_OK) s = user_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) s = db_user_set_active(d, ch->id, active, err);
    if (s == DB_OK && !active) s = db_session_delete_user(d, ch->id, NULL, NULL, err);
    if (s == DB_OK) s = web_admin_check_last_admin(d, ch->form, err);
    if (s == DB_OK) s = user_get(d, ch->id, &ch->after, err);
    ch->user_changed = ch->id;
    return s;
}

static int user_remove(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err)
{
    (void)req;
    int s = db_tx_begin(d, err);
    if (s == DB_OK) s = user_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) s = db_admin_picture_paths(d, ch->id, &ch->files, err);
    /* Sessions, roles, pictures, feedback and messages go by cascade. */
    if (s == DB_OK) s = db_user_delete(d, ch->id, err);
    if (s == DB_OK) s = web_admin_check_last_admin(d, ch->form, err);
    ch->user_gone = ch->id;
    return s;
}

static const struct web_admin_column user_columns[] = {
    {"id", DB_USER_SORT_ID, WEB_ADMIN_CELL_TEXT},
    {"username", DB_USER_SORT_USERNAME, WEB_ADMIN_CELL_TEXT},
    {"email", DB_USER_SORT_EMAIL, WEB_ADMIN_CELL_TEXT},
    {"roles", -1, WEB_ADMIN_CELL_LIST},
    {"is_active", -1, WEB_ADMIN_CELL_BOOL},
    {"created_at", DB_USER_SORT_CREATED_AT, WEB_ADMIN_CELL_TIME},
    {"last_login_at", DB_USER_SORT_LAST_LOGIN_AT, WEB_ADMIN_CELL_TIME},
    {"message_count", -1, WEB_ADMIN_CELL_TEXT},
};
static const struct web_admin_field user_fields[] = {
    {"username", "Username", WEB_ADMIN_TEXT,
     "3 to 32 letters, digits, dots, dashes or underscores."},
    {"email", "Email", WEB_ADMIN_EMAIL, NULL},
    {"password", "Password", WEB_ADMIN_PASSWORD, "At least 8 characters."},
    {"roles", "Roles", WEB_ADMIN_ROLES, NULL},
    {"is_active", "Active (may log in)", WEB_ADMIN_CHECKBOX, NULL},
};
static const struct web_admin_entity users = {
    .name = "users",
    .title = "Users",
    .singular = "user",
    .plural = "users",
    .columns = user_columns,
    .ncolumns = sizeof(user_columns) / sizeof(user_columns[0]),
    .fields = user_fields,
    .nfields = sizeof(user_fields) / sizeof(user_fields[0]),
    .searchable = true,
    .dated = true,
    .creatable = true,
    .editable = true,
    .deletable = true,
    .deactivatable = true,
    .list = user_list,
    .get = user_get,
    .save = user_save,
    .remove = user_remove,
    .set_active = user_set_active,
};

/* ---- roles -------------------------------------------------------------------- */

static int role_get(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    struct db_role r;
    *row = NULL;
    int s = db_role_get(d, id, &r, err);
    if (s == DB_OK) *row = db_role_to_json(&r);
    return s;
}

static int role_list(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                     struct echo_err *err)
{
    struct db_filter f = filter_of(q);
    return db_role_list_json(d, &f, rows, total, err);
}

static int role_save(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err)
{
    json_t *form = ch->form;
    int64_t user_id = form_user(req, d, form, "user_id", err);
    if (user_id < 0) return DB_ERROR;
    const char *name = web_form_field_trimmed(req, "name");
    web_form_data(form, "name", name);
    if (!db_role_name_valid(name))
        web_form_error(form, "name",
                       "A role is admin, user, moderator, or 2 to 32 of a-z and '_'.");
    if (!web_form_ok(form)) return WEB_ADMIN_FORM_INVALID;
    int s = db_tx_begin(d, err);
    if (s == DB_OK && ch->id) s = role_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) {
        if (ch->id)
            s = db_role_update(d, ch->id, user_id, name, err);
        else
            s = db_role_add(d, user_id, name, 0, &ch->id, err);
        /* A missing user shows as a foreign key failure, not a missing role. */
        if (s == DB_NOT_FOUND) {
            web_form_error(form, "user_id", "There is no user with this id.");
            s = WEB_ADMIN_FORM_INVALID;
        } else if (s == DB_CONFLICT) {
            web_form_error(form, "name", "This user holds this role already.");
            s = WEB_ADMIN_FORM_INVALID;
        }
    }
    if (s == DB_OK) s = web_admin_check_last_admin(d, form, err);
    if (s == DB_OK) s = role_get(d, ch->id, &ch->after, err);
    ch->user_changed = user_id;
    return s;
}

static int role_remove(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err)
{
    (void)req;
    int s = db_tx_begin(d, err);
    if (s == DB_OK) s = role_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) s = db_role_delete(d, ch->id, err);
    if (s == DB_OK) s = web_admin_check_last_admin(d, ch->form, err);
    return s;
}

static const struct web_admin_column role_columns[] = {
    {"id", -1, WEB_ADMIN_CELL_TEXT},         {"user_id", -1, WEB_ADMIN_CELL_TEXT},
    {"username", -1, WEB_ADMIN_CELL_TEXT},   {"name", -1, WEB_ADMIN_CELL_TEXT},
    {"created_at", -1, WEB_ADMIN_CELL_TIME},
};
static const struct web_admin_field role_fields[] = {
    {"user_id", "User", WEB_ADMIN_USER, "A username or a user id."},
    {"name", "Role", WEB_ADMIN_ROLE_NAME,
     "admin, user, moderator, or another name of 2 to 32 a-z and '_'."},
};
static const struct web_admin_entity roles = {
    .name = "roles",
    .title = "Roles",
    .singular = "role",
    .plural = "roles",
    .columns = role_columns,
    .ncolumns = sizeof(role_columns) / sizeof(role_columns[0]),
    .fields = role_fields,
    .nfields = sizeof(role_fields) / sizeof(role_fields[0]),
    .dated = true,
    .creatable = true,
    .editable = true,
    .deletable = true,
    .list = role_list,
    .get = role_get,
    .save = role_save,
    .remove = role_remove,
};

/* ---- pictures ----------------------------------------------------------------- */

/* The 64 px thumbnail's URL of an "avatars/<id>" path, or "". */
static void add_thumbnail(json_t *o)
{
    const char *path = json_string_value(json_object_get(o, "path"));
    char url[160] = "";
    if (path && str_has_prefix(path, "avatars/") &&
        media_avatar_id_valid(path + strlen("avatars/")))
        snprintf(url, sizeof(url), "/media/avatars/%s-%d.webp", path + strlen("avatars/"),
                 MEDIA_AVATAR_SMALL);
    json_object_set_new(o, "picture", json_string(url));
}

static int picture_get(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    struct db_picture p = {0};
    *row = NULL;
    int s = db_picture_get(d, id, &p, err);
    if (s == DB_OK) {
        *row = db_picture_to_json(&p);
        add_thumbnail(*row);
    }
    db_picture_deinit(&p);
    return s;
}

static int picture_list(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                        struct echo_err *err)
{
    struct db_filter f = filter_of(q);
    int s = db_picture_list_json(d, &f, rows, total, err);
    size_t i;
    json_t *o;
    if (s == DB_OK) json_array_foreach(*rows, i, o) add_thumbnail(o);
    return s;
}

static int picture_save(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err)
{
    json_t *form = ch->form;
    int64_t user_id = form_user(req, d, form, "user_id", err);
    if (user_id < 0) return DB_ERROR;
    const struct http_file *f = http_request_file(req, "picture");
    if (!f || (!f->filename[0] && f->size == 0))
        web_form_error(form, "picture", "Choose a picture to upload.");
    if (!web_form_ok(form)) return WEB_ADMIN_FORM_INVALID;
    struct db_user u = {0};
    int s = db_user_get(d, user_id, &u, err);
    db_user_deinit(&u);
    if (s == DB_NOT_FOUND) {
        web_form_error(form, "user_id", "There is no user with this id.");
        return WEB_ADMIN_FORM_INVALID;
    }
    if (s == DB_OK) s = db_tx_begin(d, err);
    if (s != DB_OK) return s;
    struct echo_err perr = {0};
    s = web_profile_picture_store(d, user_id, f->data, f->size, &ch->id, &perr);
    if (s == WEB_PICTURE_REFUSED) {
        web_form_error(form, "picture", perr.msg);
        return WEB_ADMIN_FORM_INVALID;
    }
    if (s == WEB_PICTURE_ERROR) {
        echo_err_set(err, "%s", perr.msg);
        return DB_ERROR;
    }
    if (s != DB_OK) {
        echo_err_set(err, "%s", perr.msg);
        return s;
    }
    ch->user_changed = user_id;
    return picture_get(d, ch->id, &ch->after, err);
}

static int picture_remove(http_request *req, db *d, struct web_admin_change *ch,
                          struct echo_err *err)
{
    (void)req;
    int s = db_tx_begin(d, err);
    if (s == DB_OK) s = picture_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) s = db_picture_delete(d, ch->id, err);
    if (s == DB_OK) {
        ch->files = json_array();
        json_array_append(ch->files, json_object_get(ch->before, "path"));
        ch->user_changed = json_integer_value(json_object_get(ch->before, "user_id"));
    }
    return s;
}

static const struct web_admin_column picture_columns[] = {
    {"id", -1, WEB_ADMIN_CELL_TEXT},         {"picture", -1, WEB_ADMIN_CELL_IMAGE},
    {"user_id", -1, WEB_ADMIN_CELL_TEXT},    {"username", -1, WEB_ADMIN_CELL_TEXT},
    {"width", -1, WEB_ADMIN_CELL_TEXT},      {"bytes", -1, WEB_ADMIN_CELL_TEXT},
    {"created_at", -1, WEB_ADMIN_CELL_TIME},
};
static const struct web_admin_field picture_fields[] = {
    {"user_id", "User", WEB_ADMIN_USER, "A username or a user id."},
    {"picture", "Picture", WEB_ADMIN_FILE, "JPEG, PNG, WebP or GIF; it becomes a 256 px square."},
};
static const struct web_admin_entity pictures = {
    .name = "pictures",
    .title = "Pictures",
    .singular = "picture",
    .plural = "pictures",
    .columns = picture_columns,
    .ncolumns = sizeof(picture_columns) / sizeof(picture_columns[0]),
    .fields = picture_fields,
    .nfields = sizeof(picture_fields) / sizeof(picture_fields[0]),
    .dated = true,
    .creatable = true,
    .deletable = true,
    .list = picture_list,
    .get = picture_get,
    .save = picture_save,
    .remove = picture_remove,
};

/* ---- feedback ----------------------------------------------------------------- */

static int feedback_get(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    struct db_feedback f = {0};
    *row = NULL;
    int s = db_feedback_get(d, id, &f, err);
    if (s == DB_OK) *row = db_feedback_to_json(&f);
    db_feedback_deinit(&f);
    return s;
}

static int feedback_list(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                         struct echo_err *err)
{
    struct db_filter f = filter_of(q);
    return db_feedback_list_json(d, &f, rows, total, err);
}

static int feedback_remove(http_request *req, db *d, struct web_admin_change *ch,
                           struct echo_err *err)
{
    (void)req;
    int s = db_tx_begin(d, err);
    if (s == DB_OK) s = feedback_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) s = db_feedback_delete(d, ch->id, err);
    return s;
}

static const struct web_admin_column feedback_columns[] = {
    {"id", -1, WEB_ADMIN_CELL_TEXT},         {"user_id", -1, WEB_ADMIN_CELL_TEXT},
    {"username", -1, WEB_ADMIN_CELL_TEXT},   {"content", -1, WEB_ADMIN_CELL_TEXT},
    {"created_at", -1, WEB_ADMIN_CELL_TIME},
};
static const struct web_admin_entity feedback = {
    .name = "feedback",
    .title = "Feedback",
    .singular = "feedback entry",
    .plural = "feedback entries",
    .columns = feedback_columns,
    .ncolumns = sizeof(feedback_columns) / sizeof(feedback_columns[0]),
    .dated = true,
    .deletable = true,
    .list = feedback_list,
    .get = feedback_get,
    .remove = feedback_remove,
};

/* ---- messages ----------------------------------------------------------------- */

static int message_get(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    struct db_message m;
    db_message_init(&m);
    *row = NULL;
    int s = db_message_get(d, id, &m, err);
    if (s == DB_OK) *row = db_message_to_json(&m);
    db_message_deinit(&m);
    return s;
}

static int message_list(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                        struct echo_err *err)
{
    struct db_filter f = filter_of(q);
    return db_message_list_json(d, &f, rows, total, err);
}

static int message_remove(http_request *req, db *d, struct web_admin_change *ch,
                          struct echo_err *err)
{
    (void)req;
    int s = db_tx_begin(d, err);
    if (s == DB_OK) s = message_get(d, ch->id, &ch->before, err);
    if (s == DB_OK) s = db_message_delete(d, ch->id, err);
    if (s == DB_OK) ch->user_changed = json_integer_value(json_object_get(ch->before, "user_id"));
    return s;
}

static const struct web_admin_column message_columns[] = {
    {"id", -1, WEB_ADMIN_CELL_TEXT},         {"user_id", -1, WEB_ADMIN_CELL_TEXT},
    {"username", -1, WEB_ADMIN_CELL_TEXT},   {"role", -1, WEB_ADMIN_CELL_TEXT},
    {"content", -1, WEB_ADMIN_CELL_TEXT},    {"completion_tokens", -1, WEB_ADMIN_CELL_TEXT},
    {"created_at", -1, WEB_ADMIN_CELL_TIME},
};
static const struct web_admin_entity messages = {
    .name = "messages",
    .title = "Messages",
    .singular = "message",
    .plural = "messages",
    .columns = message_columns,
    .ncolumns = sizeof(message_columns) / sizeof(message_columns[0]),
    .dated = true,
    .deletable = true,
    .list = message_list,
    .get = message_get,
    .remove = message_remove,
};

/* ---- the audit log (read-only) -------------------------------------------------- */

static int audit_list(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                      struct echo_err *err)
{
    struct db_filter f = filter_of(q);
    int s = db_audit_list_json(d, &f, rows, total, err);
    size_t i;
    json_t *o;
    if (s == DB_OK)
        json_array_foreach(*rows, i, o) json_object_set_new(
            o, "changes",
            web_admin_audit_changes(json_string_value(json_object_get(o, "before")),
                                    json_string_value(json_object_get(o, "after"))));
    return s;
}

/* The log is only listed; a single row is not looked up by id. */
static int audit_get(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    (void)d;
    (void)id;
    *row = NULL;
    echo_err_set(err, "audit rows are not shown one by one");
    return DB_NOT_FOUND;
}

static const struct web_admin_column audit_columns[] = {
    {"id", -1, WEB_ADMIN_CELL_TEXT},        {"created_at", -1, WEB_ADMIN_CELL_TIME},
    {"actor_id", -1, WEB_ADMIN_CELL_TEXT},  {"actor_name", -1, WEB_ADMIN_CELL_TEXT},
    {"action", -1, WEB_ADMIN_CELL_TEXT},    {"entity", -1, WEB_ADMIN_CELL_TEXT},
    {"entity_id", -1, WEB_ADMIN_CELL_TEXT}, {"changes", -1, WEB_ADMIN_CELL_LINES},
    {"before", -1, WEB_ADMIN_CELL_JSON},    {"after", -1, WEB_ADMIN_CELL_JSON},
};
static const struct web_admin_entity audit = {
    .name = "audit",
    .title = "Audit log",
    .singular = "audit entry",
    .plural = "audit entries",
    .columns = audit_columns,
    .ncolumns = sizeof(audit_columns) / sizeof(audit_columns[0]),
    .dated = true,
    .list = audit_list,
    .get = audit_get,
};

const struct web_admin_entity *const web_admin_entities[] = {&users,    &roles,    &pictures,
                                                             &feedback, &messages, &audit};
const size_t web_admin_entity_count = sizeof(web_admin_entities) / sizeof(web_admin_entities[0]);
