/*
 * profile.h - the user-facing account pages of issue 7: GET/POST /profile
 * (details, password, picture), the avatars under /media/avatars/, POST
 * /feedback, and the per-endpoint rate limits (limits.c).
 *
 * Registration order in web_app_new: web_limits_register before
 * web_auth_register (a refused request then costs no database work), and
 * web_profile_register then web_feedback_register after it (the profile's
 * context hook must run after the accounts one, which fills `user`).
 * web_profile_unregister / web_limits_unregister from web_app_free.
 *
 * Threads: *_register / *_unregister on the main thread before / after
 * serving; everything else runs on HTTP worker threads.
 */
#ifndef ECHO_WEB_PROFILE_H
#define ECHO_WEB_PROFILE_H

#include <jansson.h>

#include "db/db.h"
#include "web/app.h"
#include "web/form.h"

/* Routes GET/POST /profile, GET /media/avatars/<name> and
 * /media/avatars/default/<name>, the `user.avatar_url` context hook and the
 * 30-second per-user profile cache (ECHO_PROFILE_CACHE_SIZE entries).
 * Creates INSTANCE_DIR/avatars. Needs the accounts area. */
int web_profile_register(web_app *app, struct echo_err *err);
void web_profile_unregister(web_app *app);

/* POST /feedback. Needs web_profile_register (its errors re-render the
 * profile page). */
int web_feedback_register(web_app *app, struct echo_err *err);

/* Renders profile.html for the logged-in user with status and forms (NULL,
 * or {profile, password, picture, feedback} with a form object for the one
 * that failed; borrowed). */
void web_profile_render(http_request *req, http_response *res, int status, json_t *forms);

/*
 * Stores an uploaded picture (its bytes, any format: sniffed) as user_id's
 * profile picture through the avatar pipeline (media_avatar_process, files
 * under INSTANCE_DIR/avatars/, a pictures row on d - inside the caller's
 * transaction if one is open) and drops the user's cached profile. Returns
 * DB_OK with *picture_id; WEB_PICTURE_REFUSED when the upload is not a
 * usable picture (err says why, fit for the person who sent it);
 * WEB_PICTURE_ERROR when storing failed (logged); or the db_status of
 * recording the row (the files are removed again). Worker threads.
 */
#define WEB_PICTURE_REFUSED 1
#define WEB_PICTURE_ERROR (-100)
int web_profile_picture_store(db *d, int64_t user_id, const void *data, size_t len,
                              int64_t *picture_id, struct echo_err *err);
/* INSTANCE_DIR/avatars (where the picture files are), NULL before
 * web_profile_register. */
const char *web_profile_avatar_dir(void);

/* Drops the cached profile of user_id at once (after any change of theirs). */
void web_profile_invalidate(int64_t user_id);

/* ---- limits.c ---- */

/*
 * Per client IP, per endpoint request limits (the table), each
 * configurable as ECHO_RATELIMIT_<ENDPOINT>=N/second|minute|hour; a bad
 * value stops start-up with an error naming the setting. Off when
 * ECHO_RATELIMIT_ENABLED=0. A refused request gets 429 with Retry-After,
 * X-RateLimit-Limit/-Remaining/-Reset and the error page (or JSON).
 */
int web_limits_register(web_app *app, struct echo_err *err);
void web_limits_unregister(web_app *app);

#endif
