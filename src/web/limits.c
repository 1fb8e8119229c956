/*
 * limits.c - the per-endpoint rate limits of issue 7 (the original's
 * Flask-Limiter table), per client IP address, as a router before-hook
 * over the GCRA limiter of ratelimit.h.
 *
 * Every request to a limited route counts, whatever its method, as with
 * Flask-Limiter's decorators. The client is http_request_client_ip, which
 * believes X-Forwarded-For only when ECHO_TRUSTED_PROXY is on. Static files
 * and avatars are not limited (they are not in the table; mounts run no
 * hooks anyway). Responses of a limited route carry X-RateLimit-Limit,
 * -Remaining and -Reset; a refused one is 429 with Retry-After and the
 * error page (JSON for clients that prefer it).
 */
#include <stdio.h>
#include <string.h>

#include "web/profile.h"
#include "web/ratelimit.h"

struct endpoint {
    const char *route;   /* the pattern as registered */
    const char *name;    /* the limiter's endpoint key */
    const char *setting; /* ECHO_RATELIMIT_<NAME> */
    struct rl_rule rule;
};

static struct endpoint endpoints[] = {
    {"/", "index", "ECHO_RATELIMIT_INDEX", {0, 0}},
    {"/signup", "signup", "ECHO_RATELIMIT_SIGNUP", {0, 0}},
    {"/login", "login", "ECHO_RATELIMIT_LOGIN", {0, 0}},
    {"/logout", "logout", "ECHO_RATELIMIT_LOGOUT", {0, 0}},
    {"/feedback", "feedback", "ECHO_RATELIMIT_FEEDBACK", {0, 0}},
    {"/profile", "profile", "ECHO_RATELIMIT_PROFILE", {0, 0}},
    {"/clear_discussion", "clear_discussion", "ECHO_RATELIMIT_CLEAR_DISCUSSION", {0, 0}},
    {"/login/google", "google", "ECHO_RATELIMIT_GOOGLE", {0, 0}},
    {"/login/google/callback", "google_callback", "ECHO_RATELIMIT_GOOGLE", {0, 0}},
};
#define NENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

/* One limiter per process; the table above is read-only while serving. */
static ratelimit *the_limiter;

static void set_number(http_response *res, const char *name, unsigned long v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lu", v);
    http_response_set_header(res, name, buf);
}

static bool before(http_request *req, http_response *res, void *arg)
{
    ratelimit *rl = arg;
    const char *route = http_request_route(req);
    if (!route) return true;
    const struct endpoint *e = NULL;
    for (size_t i = 0; i < NENDPOINTS && !e; i++)
        if (!strcmp(route, endpoints[i].route)) e = &endpoints[i];
    if (!e) return true;
    struct rl_result r;
    int s = rl_check(rl, e->name, http_request_client_ip(req), &e->rule, &r);
    if (s != RL_OK) {
        /* Fail open: a limiter fault must not take the site down. */
        log_error("rate limit %s: the store failed (%d); request let through", e->name, s);
        return true;
    }
    set_number(res, "X-RateLimit-Limit", r.limit);
    set_number(res, "X-RateLimit-Remaining", r.remaining);
    set_number(res, "X-RateLimit-Reset", r.reset_s);
    if (r.allowed) return true;
    set_number(res, "Retry-After", r.retry_after_s);
    log_warn("rate limit: %s %s from %s refused (retry in %u s)", http_request_method_name(req),
             http_request_path(req), http_request_client_ip(req), r.retry_after_s);
    char msg[128];
    snprintf(msg, sizeof(msg), "Too many requests. Please wait %u second%s and try again.",
             r.retry_after_s, r.retry_after_s == 1 ? "" : "s");
    http_response_error(res, HTTP_STATUS_TOO_MANY_REQUESTS, msg);
    return false;
}

int web_limits_register(web_app *app, struct echo_err *err)
{
    const config *cfg = web_app_config(app);
    if (the_limiter) {
        echo_err_set(err, "the rate limits are already set up in this process");
        return -1;
    }
    /* Parse every rule first: a bad one stops start-up even when limits
     * are off, so a typo is found before it matters. */
    for (size_t i = 0; i < NENDPOINTS; i++) {
        const char *v = config_get(cfg, endpoints[i].setting);
        struct echo_err perr = {0};
        if (!v || rl_rule_parse(v, &endpoints[i].rule, &perr) != RL_OK) {
            echo_err_set(err, "%s=%s: %s (expected N/second, N/minute or N/hour)",
                         endpoints[i].setting, v ? v : "", v ? perr.msg : "not set");
            return -1;
        }
    }
    if (!config_get_bool(cfg, "ECHO_RATELIMIT_ENABLED")) {
        log_warn("ECHO_RATELIMIT_ENABLED=0: requests are not rate-limited");
        return 0;
    }
    the_limiter = rl_new(NULL);
    if (!the_limiter) {
        echo_err_set(err, "the rate limiter could not be created");
        return -1;
    }
    http_router_add_hook(web_app_router(app), before, NULL, the_limiter);
    char buf[48];
    for (size_t i = 0; i < NENDPOINTS; i++) {
        rl_rule_format(&endpoints[i].rule, buf, sizeof(buf));
        log_debug("rate limit %s: %s per client", endpoints[i].route, buf);
    }
    return 0;
}

void web_limits_unregister(web_app *app)
{
    (void)app;
    rl_free(the_limiter);
    the_limiter = NULL;
}
