/*
 * feedback.c - POST /feedback (issue 7): the FeedbackForm of the profile
 * page. The content is 1 to 2000 characters (code points, counted after
 * surrounding blanks are removed) and the form carries the anti-bot fields;
 * it is stored with the user and thanked with a flash. A refused form
 * re-renders the profile page with the message and what was typed.
 */
#include <string.h>

#include "web/auth.h"
#include "web/profile.h"

#define FEEDBACK_MAX_CHARS 2000

static const char msg_antibot[] = "Your form could not be accepted. Please wait a moment and "
                                  "send it again.";

static void feedback_post(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (!web_login_required(req, res)) return;
    const struct db_user *u = web_user(req);
    const char *raw = http_request_form(req, "content");
    if (!raw) raw = "";
    size_t start = strspn(raw, " \t\r\n");
    size_t n = strlen(raw + start);
    while (n && strchr(" \t\r\n", raw[start + n - 1]))
        n--;
    const char *content = arena_strndup(http_request_arena(req), raw + start, n);
    json_t *form = web_form_new();
    web_form_data(form, "content", content);
    if (!web_antibot_ok(req, "feedback")) {
        web_form_fail(form, msg_antibot);
        goto invalid;
    }
    /* The HTTP layer hands over valid UTF-8 only; checked again because the
     * count below relies on it. */
    if (!n)
        web_form_error(form, "content", "Write your feedback first.");
    else if (!utf8_valid(content, n))
        web_form_error(form, "content", "The text is not valid UTF-8.");
    else if (utf8_length(content, n) > FEEDBACK_MAX_CHARS)
        web_form_error(form, "content", "Feedback is at most 2000 characters.");
    if (!web_form_ok(form)) goto invalid;
    db *d = web_db(req);
    struct echo_err err = {0};
    int64_t id = 0;
    int s = d ? db_feedback_add(d, u->id, content, (int64_t)time_now_s(), &id, &err) : DB_BUSY;
    if (s != DB_OK) {
        log_error("feedback of user %lld: %s", (long long)u->id, d ? err.msg : "no connection");
        json_decref(form);
        if (s == DB_BUSY)
            http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                "The service is busy right now. Please try again in a moment.");
        else
            http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    log_info("feedback %lld from user %lld (%zu bytes)", (long long)id, (long long)u->id, n);
    json_decref(form);
    web_flash(req, res, "success", "Thank you for your feedback!");
    http_response_redirect(res, HTTP_STATUS_SEE_OTHER, "/profile");
    return;
invalid:;
    json_t *forms =
        json_pack("{s:n,s:n,s:n,s:O}", "profile", "password", "picture", "feedback", form);
    web_profile_render(req, res, HTTP_STATUS_BAD_REQUEST, forms);
    json_decref(forms);
    json_decref(form);
}

int web_feedback_register(web_app *app, struct echo_err *err)
{
    return http_router_add(web_app_router(app), HTTP_POST, "/feedback", feedback_post, app, err);
}
