/*
 * oauth_http.c - the one outgoing HTTP client of the web layer: calls to
 * the identity provider's token, JWKS and userinfo endpoints (libcurl).
 *
 * Each call is bounded in every way the provider could misbehave: https
 * only (plain http only to the loopback address, so tests can run a fake
 * provider), certificates and host names verified, redirects never followed,
 * a connect timeout and a total timeout, and an answer larger than the cap
 * aborted while it arrives (not after it was all read). The form body and a
 * bearer token are never logged or copied into an error message.
 *
 * Threads: any; each call has its own easy handle. libcurl's global init
 * runs once (pthread_once), as in src/llm/download.c.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "web/oauth.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void oauth_http_result_deinit(struct oauth_http_result *r)
{
    if (!r) return;
    strbuf_deinit(&r->body);
    memset(r, 0, sizeof(*r));
}

static bool loopback_host(const char *host, size_t n)
{
    return (n == 9 && !memcmp(host, "127.0.0.1", 9)) || (n == 5 && !memcmp(host, "[::1]", 5)) ||
           (n == 9 && !strncasecmp(host, "localhost", 9));
}

bool oauth_url_allowed(const char *url)
{
    if (!url) return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) return false;
    if (str_has_prefix(url, "https://")) return url[8] && url[8] != '/';
    if (!str_has_prefix(url, "http://")) return false;
    const char *host = url + 7;
    size_t n = strcspn(host, ":/?#");
    if (host[0] == '[') n = strcspn(host, "]") + 1;
    return loopback_host(host, n) && (host[n] == 0 || host[n] == ':' || host[n] == '/');
}


struct call {
    struct oauth_http_result *out;
    size_t max;
    bool too_large;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t n = size * nmemb;
    if (c->out->body.len + n > c->max) {
        c->too_large = true;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    strbuf_append(&c->out->body, data, n);
    return n;
}

/* Reads max-age from "Cache-Control: public, max-age=19845, ...". */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t n = size * nmemb;
    static const char name[] = "cache-control:";
    if (n > sizeof(name) - 1 && n < 1024 && !strncasecmp(data, name, sizeof(name) - 1)) {
        char line[1024];
        memcpy(line, data, n);
        line[n] = 0;
        for (char *p = line + sizeof(name) - 1; (p = strcasestr(p, "max-age=")) != NULL; p++) {
            if (p[-1] != ' ' && p[-1] != ',' && p[-1] != ':') continue;
            int64_t v = 0;
            const char *d = p + strlen("max-age=");
            size_t digits = 0;
            while (d[digits] >= '0' && d[digits] <= '9' && digits < 10)
                v = v * 10 + (d[digits++] - '0');
            if (digits > 0) c->out->max_age = v;
            break;
        }
    }
    return n;
}

int oauth_http_call(const struct oauth_http_request *rq, struct oauth_http_result *out,
                    struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    strbuf_init(&out->body);
    out->max_age = -1;
    if (!oauth_url_allowed(rq->url)) {
        echo_err_set(err,
                     "refusing to call %s: only https URLs (http only to the loopback "
                     "address)",
                     rq->url ? rq->url : "(none)");
        return OAUTH_ERR_HTTP;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        echo_err_set(err, "libcurl failed to initialize: %s", curl_easy_strerror(curl_init_rc));
        return OAUTH_ERR_HTTP;
    }
    CURL *curl = curl_easy_init();
    if (!curl) {
        echo_err_set(err, "libcurl could not create a transfer");
        return OAUTH_ERR_HTTP;
    }
    struct call c = {.out = out, .max = rq->max_bytes ? rq->max_bytes : OAUTH_DOC_MAX};
    char curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    struct strbuf auth;
    strbuf_init(&auth);
    long timeout = rq->timeout_ms > 0 ? rq->timeout_ms : 10000;
    headers = curl_slist_append(headers, "Accept: application/json");
    if (rq->bearer) {
        strbuf_printf(&auth, "Authorization: Bearer %s", rq->bearer);
        headers = curl_slist_append(headers, strbuf_cstr(&auth));
    }
    curl_easy_setopt(curl, CURLOPT_URL, rq->url);
    /* Belt and braces with oauth_url_allowed: no other scheme, no redirect. */
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout / 2 > 0 ? timeout / 2 : 1L);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c.max);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "echobot-oauth/1");
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &c);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (rq->form) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, rq->form);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(rq->form));
    }
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    /* The header carried the access token: do not leave it in freed memory. */
    if (auth.data) sodium_memzero(auth.data, auth.len);
    strbuf_deinit(&auth);
    if (c.too_large || cc == CURLE_FILESIZE_EXCEEDED) {
        echo_err_set(err, "%s answered more than %zu bytes", rq->url, c.max);
        return OAUTH_ERR_TOO_LARGE;
    }
    if (cc != CURLE_OK) {
        echo_err_set(err, "%s: %s", rq->url, curl_err[0] ? curl_err : curl_easy_strerror(cc));
        return OAUTH_ERR_HTTP;
    }
    return OAUTH_OK;
}
