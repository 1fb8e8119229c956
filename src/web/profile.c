/*
 * profile.c - GET/POST /profile (issue 7): the person's details, their
 * password and their picture; the avatars under /media/avatars/; the
 * `user.avatar_url` of every page.
 *
 * What the page shows (username, email, member since, message count,
 * picture) is read through a 30-second per-user cache, the original's
 * Flask-Caching on that query. Every change a person makes here drops their
 * entry at once, and loads take a ticket first (cache.h), so a page loaded
 * just before the change cannot put the old data back: a person never sees
 * stale data after their own change. A cleared discussion (chat.c) is
 * noticed by an after-hook on that route; messages sent in the chat show
 * up in the count within the 30 seconds.
 *
 * Pictures: the upload is checked and turned into two WebP squares by the
 * media layer, stored under a random 128-bit id (so URLs cannot be guessed
 * and never change content, which lets browsers keep them a long time) as
 * INSTANCE_DIR/avatars/<id>-256.webp and <id>-64.webp, then recorded in a
 * pictures row; if the row cannot be written the files are removed again.
 * A user without one gets /media/avatars/default/<user id>.svg?v=<hash of
 * the name>, the initials drawn by media_identicon_svg.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "media/media.h"
#include "web/auth.h"
#include "web/cache.h"
#include "web/profile.h"

#define PICTURE_ID_BYTES 16
#define PICTURE_ID_HEX (PICTURE_ID_BYTES * 2)
#define AVATAR_MAX_AGE "public, max-age=31536000, immutable"
#define DEFAULT_AVATAR_PX 256

static const char msg_busy[] = "The service is busy right now. Please try again in a moment.";

struct web_profile {
    web_app *app;
    cache *cache;
    char *avatar_dir;
    http_static *avatars;
};

/* One profile area per process; read-only while serving. */
static struct web_profile *the_profile;

/* ---- forms (docs/TEMPLATES.md) ---------------------------------------- */

/* ---- the cached profile ------------------------------------------------ */

static void cache_key(int64_t user_id, char out[32])
{
    snprintf(out, 32, "profile:%lld", (long long)user_id);
}

void web_profile_invalidate(int64_t user_id)
{
    if (!the_profile) return;
    char key[32];
    cache_key(user_id, key);
    cache_invalidate(the_profile->cache, key);
}

/* A short stable hash of the username, so the default picture's URL changes
 * with the name (its initials) and can be cached meanwhile. */
static void name_version(const char *username, char out[17])
{
    unsigned char h[8];
    crypto_generichash(h, sizeof(h), (const unsigned char *)username, strlen(username), NULL, 0);
    sodium_bin2hex(out, 17, h, sizeof(h));
}

/* Loads {username, email, created_at, message_count, avatar_url,
 * avatar_small_url} of user_id from the database. NULL with *status set. */
static json_t *profile_load(db *d, int64_t user_id, int *status)
{
    struct db_user u = {0};
    struct db_picture pic = {0};
    struct echo_err err = {0};
    json_t *out = NULL;
    int64_t count = 0;
    int s = db_user_get(d, user_id, &u, &err);
    if (s == DB_OK) s = db_message_count_user(d, user_id, &count, &err);
    if (s != DB_OK) goto done;
    char large[160], small[160];
    s = db_picture_latest(d, user_id, &pic, &err);
    if (s == DB_OK && str_has_prefix(pic.path, "avatars/") &&
        media_avatar_id_valid(pic.path + strlen("avatars/"))) {
        const char *id = pic.path + strlen("avatars/");
        snprintf(large, sizeof(large), "/media/avatars/%s-%d.webp", id, MEDIA_AVATAR_LARGE);
        snprintf(small, sizeof(small), "/media/avatars/%s-%d.webp", id, MEDIA_AVATAR_SMALL);
    } else if (s == DB_OK || s == DB_NOT_FOUND) {
        char v[17];
        name_version(u.username, v);
        snprintf(large, sizeof(large), "/media/avatars/default/%lld.svg?v=%s", (long long)user_id,
                 v);
        snprintf(small, sizeof(small), "%s", large);
    } else {
        goto done;
    }
    s = DB_OK;
    out = json_pack("{s:s,s:s,s:I,s:I,s:s,s:s}", "username", u.username, "email", u.email,
                    "created_at", (json_int_t)u.created_at, "message_count", (json_int_t)count,
                    "avatar_url", large, "avatar_small_url", small);
    if (!out) {
        /* Only if a stored name were not UTF-8, which the validators rule out. */
        echo_err_set(&err, "the stored username or email cannot be shown");
        s = DB_ERROR;
    }
done:
    if (s != DB_OK) log_error("loading the profile of user %lld: %s", (long long)user_id, err.msg);
    *status = s;
    db_user_deinit(&u);
    db_picture_deinit(&pic);
    return out;
}

/* The profile of the logged-in user through the cache (a new reference,
 * read-only), or NULL with *status set. */
static json_t *profile_get(http_request *req, int *status)
{
    const struct db_user *u = web_user(req);
    *status = DB_NOT_FOUND;
    if (!u || !the_profile) return NULL;
    char key[32];
    cache_key(u->id, key);
    json_t *v = cache_get(the_profile->cache, key);
    if (v) {
        *status = DB_OK;
        return v;
    }
    db *d = web_db(req);
    if (!d) {
        *status = DB_BUSY;
        return NULL;
    }
    uint64_t ticket = cache_ticket(the_profile->cache);
    v = profile_load(d, u->id, status);
    if (v) cache_put_if_fresh(the_profile->cache, key, v, 0, ticket);
    return v;
}

/* Every page: the nav's picture of the logged-in user (the 64 px one). */
static void context(web_app *app, http_request *req, json_t *ctx, void *arg)
{
    (void)app;
    (void)arg;
    json_t *user = json_object_get(ctx, "user");
    if (!json_is_object(user) || !web_user(req)) return;
    int s;
    json_t *p = profile_get(req, &s);
    if (!p) return;
    json_object_set(user, "avatar_url", json_object_get(p, "avatar_small_url"));
    json_decref(p);
}

static void answer_db_error(http_response *res, int status)
{
    if (status == DB_BUSY)
        http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, msg_busy);
    else
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
}

void web_profile_render(http_request *req, http_response *res, int status, json_t *forms)
{
    int s;
    json_t *p = profile_get(req, &s);
    if (!p) {
        answer_db_error(res, s);
        return;
    }
    web_app *app = the_profile->app;
    json_t *ctx = web_app_context(app, req, "profile");
    json_object_set(ctx, "profile", p);
    json_object_set(ctx, "forms", forms ? forms : json_null());
    json_object_set_new(ctx, "antibot", web_antibot_fields(req, "feedback"));
    web_app_render(app, req, res, status, "profile.html", ctx);
    json_decref(ctx);
    json_decref(p);
    /* Per-person data and per-session tokens: never in a shared cache. */
    http_response_set_header(res, "Cache-Control", "no-store");
}

/* Re-renders the page with one failed form (400). */
static void render_failed(http_request *req, http_response *res, const char *which, json_t *form)
{
    json_t *forms = json_pack("{s:n,s:n,s:n,s:n}", "profile", "password", "picture", "feedback");
    json_object_set(forms, which, form);
    web_profile_render(req, res, HTTP_STATUS_BAD_REQUEST, forms);
    json_decref(forms);
}

static void done(http_request *req, http_response *res, const char *text)
{
    web_profile_invalidate(web_user(req)->id);
    web_flash(req, res, "success", text);
    http_response_redirect(res, HTTP_STATUS_SEE_OTHER, "/profile");
}

/* ---- GET/POST /profile ---------------------------------------------------- */

static void profile_get_page(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (!web_login_required(req, res)) return;
    web_profile_render(req, res, HTTP_STATUS_OK, NULL);
}

static void update_details(http_request *req, http_response *res)
{
    const struct db_user *u = web_user(req);
    const char *username = web_form_field_trimmed(req, "username");
    const char *email = web_form_field_trimmed(req, "email");
    json_t *form = web_form_new();
    web_form_data(form, "username", username);
    web_form_data(form, "email", email);
    if (!username[0])
        web_form_error(form, "username", "Choose a username.");
    else if (!db_username_valid(username))
        web_form_error(form, "username",
                       "A username is 3 to 32 letters, digits, dots, dashes or underscores.");
    if (!email[0])
        web_form_error(form, "email", "Enter your email address.");
    else if (!db_email_valid(email))
        web_form_error(form, "email", "Enter a valid email address.");
    if (!web_form_ok(form)) goto invalid;
    db *d = web_db(req);
    if (!d) {
        json_decref(form);
        answer_db_error(res, DB_BUSY);
        return;
    }
    struct echo_err err = {0};
    int s = db_user_update_profile(d, u->id, username, email, &err);
    if (s == DB_CONFLICT) {
        if (!strcmp(db_conflict_field(d), "email"))
            web_form_error(form, "email", "An account with this email address already exists.");
        else
            web_form_error(form, "username", "This username is already taken.");
        goto invalid;
    }
    if (s == DB_INVALID) {
        web_form_fail(form, "Those details cannot be stored; check every field.");
        goto invalid;
    }
    if (s != DB_OK) {
        log_error("profile update of user %lld: %s", (long long)u->id, err.msg);
        json_decref(form);
        answer_db_error(res, s);
        return;
    }
    log_info("profile: user %lld is now %s", (long long)u->id, username);
    json_decref(form);
    done(req, res, "Your profile has been updated.");
    return;
invalid:
    render_failed(req, res, "profile", form);
    json_decref(form);
}

static void change_password(http_request *req, http_response *res)
{
    const struct db_user *u = web_user(req);
    const char *current = web_form_field_raw(req, "current_password");
    const char *fresh = web_form_field_raw(req, "new_password");
    const char *confirm = web_form_field_raw(req, "confirm_password");
    json_t *form = web_form_new(); /* passwords are never sent back */
    /* An account made by Sign in with Google has no password to confirm:
     * its first one is set from the logged-in session (issue 10). */
    if (!u->password_hash)
        ;
    else if (!current[0])
        web_form_error(form, "current_password", "Enter your current password.");
    else if (sec_password_verify(u->password_hash, current) != SEC_OK)
        web_form_error(form, "current_password", "Your current password is not correct.");
    struct echo_err perr = {0};
    if (sec_password_check(fresh, &perr) != SEC_OK) web_form_error(form, "new_password", perr.msg);
    if (strcmp(fresh, confirm) != 0)
        web_form_error(form, "confirm_password", "The two passwords do not match.");
    if (!web_form_ok(form)) {
        log_info("profile: password change of user %lld refused", (long long)u->id);
        render_failed(req, res, "password", form);
        json_decref(form);
        return;
    }
    json_decref(form);
    char hash[SEC_PASSWORD_HASH_MAX];
    struct echo_err err = {0};
    if (sec_password_hash(fresh, hash, &err) != SEC_OK) {
        log_error("profile: hashing a password: %s", err.msg);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    db *d = web_db(req);
    int s = d ? db_user_set_password_hash(d, u->id, hash, &err) : DB_BUSY;
    sodium_memzero(hash, sizeof(hash));
    int64_t revoked = 0;
    if (s == DB_OK) s = web_revoke_other_sessions(req, &revoked, &err);
    if (s != DB_OK) {
        log_error("profile: password change of user %lld: %s", (long long)u->id,
                  d ? err.msg : "no connection");
        answer_db_error(res, s);
        return;
    }
    log_info("profile: user %lld changed their password; %lld other session(s) ended",
             (long long)u->id, (long long)revoked);
    done(req, res, "Your password has been changed. Other sessions have been logged out.");
}

int web_profile_picture_store(db *d, int64_t user_id, const void *data, size_t len,
                              int64_t *picture_id, struct echo_err *err)
{
    struct media_avatar av = {0};
    if (!the_profile) {
        echo_err_set(err, "the profile area is not set up");
        return WEB_PICTURE_ERROR;
    }
    int m = media_avatar_process(data, len, NULL, &av, err);
    if (m == MEDIA_ERR_INTERNAL || m == MEDIA_ERR_IO || m == MEDIA_ERR_INVALID) {
        log_error("picture of user %lld: %s", (long long)user_id, err->msg);
        return WEB_PICTURE_ERROR;
    }
    if (m != MEDIA_OK) {
        log_info("picture of user %lld refused (%s)", (long long)user_id, media_status_name(m));
        return WEB_PICTURE_REFUSED;
    }
    unsigned char rnd[PICTURE_ID_BYTES];
    char id[PICTURE_ID_HEX + 1];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(id, sizeof(id), rnd, sizeof(rnd));
    if (media_avatar_store(&av, the_profile->avatar_dir, id, err) != MEDIA_OK) {
        log_error("storing a picture: %s", err->msg);
        media_avatar_deinit(&av);
        return WEB_PICTURE_ERROR;
    }
    char path[16 + PICTURE_ID_HEX];
    snprintf(path, sizeof(path), "avatars/%s", id);
    struct db_picture row = {.user_id = user_id,
                             .path = path,
                             .mime = "image/webp",
                             .width = MEDIA_AVATAR_LARGE,
                             .height = MEDIA_AVATAR_LARGE,
                             .bytes = (int64_t)(av.large_len + av.small_len)};
    int s = db_picture_add(d, &row, picture_id, err);
    if (s != DB_OK) {
        log_error("recording a picture: %s", err->msg);
        struct echo_err rerr = {0};
        if (media_avatar_remove(the_profile->avatar_dir, id, &rerr) != MEDIA_OK)
            log_error("removing the unrecorded picture %s: %s", id, rerr.msg);
        media_avatar_deinit(&av);
        return s;
    }
    log_info("user %lld got a %s picture %dx%d (picture %lld)", (long long)user_id, av.format,
             av.width, av.height, (long long)*picture_id);
    media_avatar_deinit(&av);
    web_profile_invalidate(user_id);
    return 0;
}

const char *web_profile_avatar_dir(void)
{
    return the_profile ? the_profile->avatar_dir : NULL;
}

static void upload_picture(http_request *req, http_response *res)
{
    const struct db_user *u = web_user(req);
    const struct http_file *f = http_request_file(req, "picture");
    json_t *form = web_form_new();
    struct echo_err err = {0};
    if (!f || (!f->filename[0] && f->size == 0)) {
        web_form_error(form, "picture", "Choose a picture to upload.");
        goto invalid;
    }
    db *d = web_db(req);
    int64_t pic_id = 0;
    int s = d ? web_profile_picture_store(d, u->id, f->data, f->size, &pic_id, &err) : DB_BUSY;
    if (s == WEB_PICTURE_REFUSED) {
        web_form_error(form, "picture", err.msg);
        goto invalid;
    }
    json_decref(form);
    if (s == WEB_PICTURE_ERROR) {
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    if (s != DB_OK) {
        answer_db_error(res, s);
        return;
    }
    done(req, res, "Your profile picture has been updated.");
    return;
invalid:
    render_failed(req, res, "picture", form);
    json_decref(form);
}

static void profile_post(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (!web_login_required(req, res)) return;
    const char *action = web_form_field_raw(req, "action");
    if (!strcmp(action, "profile"))
        update_details(req, res);
    else if (!strcmp(action, "password"))
        change_password(req, res);
    else if (!strcmp(action, "picture"))
        upload_picture(req, res);
    else
        http_response_error(res, HTTP_STATUS_BAD_REQUEST, "This form is not one of this page's.");
}

/* ---- /media/avatars/ ----------------------------------------------------- */

/* <32 hex>-256.webp or <32 hex>-64.webp, nothing else. */
static bool avatar_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < PICTURE_ID_HEX + 1) return false;
    for (size_t i = 0; i < PICTURE_ID_HEX; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    const char *rest = name + PICTURE_ID_HEX;
    return !strcmp(rest, "-256.webp") || !strcmp(rest, "-64.webp");
}

static void avatar_file(http_request *req, http_response *res, void *arg)
{
    struct web_profile *p = arg;
    const char *name = http_request_param(req, "name");
    if (!name || !avatar_name_valid(name)) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    http_static_serve(p->avatars, req, res, name);
    /* The content of an id never changes (a new upload gets a new id). */
    if (http_response_status(res) == HTTP_STATUS_OK ||
        http_response_status(res) == HTTP_STATUS_NOT_MODIFIED)
        http_response_set_header(res, "Cache-Control", AVATAR_MAX_AGE);
}

/* "<digits>.svg" -> the user id; 0 when malformed. */
static int64_t default_avatar_id(const char *name)
{
    int64_t id = 0;
    size_t i = 0;
    for (; name[i] >= '0' && name[i] <= '9'; i++) {
        if (i >= 18) return 0;
        id = id * 10 + (name[i] - '0');
    }
    if (i == 0 || name[0] == '0' || strcmp(name + i, ".svg") != 0) return 0;
    return id;
}

/* The generated default picture; for logged-in users only (it shows the
 * initials of a name). */
static void avatar_default(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    int64_t id = default_avatar_id(http_request_param(req, "name"));
    db *d = web_user(req) && id > 0 ? web_db(req) : NULL;
    if (!d && id > 0 && web_user(req)) {
        answer_db_error(res, DB_BUSY);
        return;
    }
    struct db_user u = {0};
    struct echo_err err = {0};
    int s = d ? db_user_get(d, id, &u, &err) : DB_NOT_FOUND;
    if (s != DB_OK) {
        if (s == DB_NOT_FOUND)
            http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        else
            answer_db_error(res, s);
        db_user_deinit(&u);
        return;
    }
    struct strbuf svg;
    strbuf_init(&svg);
    if (media_identicon_svg(u.username, DEFAULT_AVATAR_PX, &svg, &err) != MEDIA_OK) {
        log_error("default avatar of user %lld: %s", (long long)id, err.msg);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        goto out;
    }
    unsigned char h[12];
    char etag[2 * sizeof(h) + 3];
    crypto_generichash(h, sizeof(h), (const unsigned char *)strbuf_cstr(&svg), svg.len, NULL, 0);
    etag[0] = '"';
    sodium_bin2hex(etag + 1, 2 * sizeof(h) + 1, h, sizeof(h));
    strcat(etag, "\"");
    http_response_set_header(res, "ETag", etag);
    /* private: only logged-in users may fetch it. The URL carries a hash of
     * the name, so a renamed user's page asks for a new one. */
    http_response_set_header(res, "Cache-Control", "private, max-age=86400");
    const char *inm = http_request_header(req, "If-None-Match");
    if (inm && strstr(inm, etag)) {
        http_response_set_status(res, HTTP_STATUS_NOT_MODIFIED);
        goto out;
    }
    http_response_body(res, "image/svg+xml; charset=utf-8", strbuf_cstr(&svg), svg.len);
out:
    strbuf_deinit(&svg);
    db_user_deinit(&u);
}

/* ---- hooks and set-up ------------------------------------------------------ */

static bool pass(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
    return true;
}

/* A cleared discussion (chat.c) changes the message count shown here. */
static void after_clear(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    const char *route = http_request_route(req);
    const struct db_user *u = web_user(req);
    if (u && route && !strcmp(route, "/clear_discussion") &&
        http_request_method(req) == HTTP_POST && http_response_status(res) < 400)
        web_profile_invalidate(u->id);
}

int web_profile_register(web_app *app, struct echo_err *err)
{
    if (the_profile) {
        echo_err_set(err, "the profile area is already set up in this process");
        return -1;
    }
    const config *cfg = web_app_config(app);
    struct web_profile *p = xcalloc(1, sizeof(*p));
    p->app = app;
    int64_t size = config_get_int(cfg, "ECHO_PROFILE_CACHE_SIZE");
    if (size < 1 || size > 10000000) {
        echo_err_set(err, "ECHO_PROFILE_CACHE_SIZE=%lld: must be 1 to 10000000", (long long)size);
        goto fail;
    }
    struct cache_options co = {.capacity = (size_t)size, .ttl_ms = 30000};
    p->cache = cache_new(&co);
    struct strbuf dir;
    strbuf_init(&dir);
    strbuf_printf(&dir, "%s/avatars", config_get(cfg, "ECHO_INSTANCE_DIR"));
    p->avatar_dir = strbuf_steal(&dir);
    if (dir_make_all(p->avatar_dir, 0700, err) != 0) goto fail;
    if (media_init(err) != MEDIA_OK) goto fail;
    p->avatars = http_static_new(p->avatar_dir, NULL, err);
    if (!p->avatars) goto fail;
    http_router *r = web_app_router(app);
    if (http_router_add(r, HTTP_GET, "/profile", profile_get_page, p, err) != 0 ||
        http_router_add(r, HTTP_POST, "/profile", profile_post, p, err) != 0 ||
        http_router_add(r, HTTP_GET, "/media/avatars/<name>", avatar_file, p, err) != 0 ||
        http_router_add(r, HTTP_GET, "/media/avatars/default/<name>", avatar_default, p, err) != 0)
        goto fail;
    http_router_add_hook(r, pass, after_clear, p);
    web_app_add_context_hook(app, context, p);
    the_profile = p;
    return 0;
fail:
    http_static_free(p->avatars);
    free(p->avatar_dir);
    cache_free(p->cache);
    free(p);
    return -1;
}

void web_profile_unregister(web_app *app)
{
    (void)app;
    if (!the_profile) return;
    http_static_free(the_profile->avatars);
    free(the_profile->avatar_dir);
    cache_free(the_profile->cache);
    free(the_profile);
    the_profile = NULL;
}
