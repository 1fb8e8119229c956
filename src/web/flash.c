/*
 * flash.c - flash messages (Flask's flash/get_flashed_messages): a message
 * queued by one request and shown once by the next page, kept in the
 * session's data under "_flashes" as [{category, text}, ...]. Adding and
 * taking run inside a write transaction (sec_session_update), so two tabs
 * of one session never both show, or both lose, a message.
 */
#include <string.h>

#include "web/security.h"

#define FLASH_KEY "_flashes"

static bool category_ok(const char *c)
{
    size_t n = c ? strlen(c) : 0;
    if (n < 1 || n > 16) return false;
    for (size_t i = 0; i < n; i++)
        if (c[i] < 'a' || c[i] > 'z') return false;
    return true;
}

struct add_arg {
    const char *category;
    const char *text;
    size_t len;
};

static bool add_fn(json_t *data, void *arg)
{
    struct add_arg *a = arg;
    json_t *list = json_object_get(data, FLASH_KEY);
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(data, FLASH_KEY, list);
    }
    json_t *msg = json_object();
    json_object_set_new(msg, "category", json_string(a->category));
    json_object_set_new(msg, "text", json_stringn(a->text, a->len));
    json_array_append_new(list, msg);
    while (json_array_size(list) > SEC_FLASH_MAX)
        json_array_remove(list, 0);
    return true;
}

int sec_flash_add(db *d, struct sec_session *s, const char *category, const char *text,
                  struct echo_err *err)
{
    if (!category_ok(category)) {
        echo_err_set(err, "a flash category is 1 to 16 letters a-z");
        return DB_INVALID;
    }
    size_t n = text ? strlen(text) : 0;
    if (!text || !utf8_valid(text, n)) {
        echo_err_set(err, "a flash message is UTF-8 text");
        return DB_INVALID;
    }
    if (n > SEC_FLASH_TEXT_MAX) {
        /* Cut at a character boundary: back off continuation bytes. */
        n = SEC_FLASH_TEXT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    struct add_arg a = {category, text, n};
    return sec_session_update(d, s, add_fn, &a, err);
}

static bool pop_fn(json_t *data, void *arg)
{
    json_t **out = arg;
    json_t *list = json_object_get(data, FLASH_KEY);
    if (!list) return false;
    /* Keep only well-formed entries: the data might have been edited. */
    size_t i;
    json_t *msg;
    json_array_foreach(list, i, msg)
    {
        json_t *c = json_object_get(msg, "category"), *t = json_object_get(msg, "text");
        if (json_is_string(c) && json_is_string(t)) {
            json_t *copy = json_object();
            json_object_set(copy, "category", c);
            json_object_set(copy, "text", t);
            json_array_append_new(*out, copy);
        }
    }
    json_object_del(data, FLASH_KEY);
    return true;
}

json_t *sec_flash_pop(db *d, struct sec_session *s, struct echo_err *err)
{
    json_t *out = json_array();
    /* Most pages have nothing queued: answer from the loaded data without a
     * write. */
    if (!s || !s->data || !json_object_get(s->data, FLASH_KEY)) return out;
    if (sec_session_update(d, s, pop_fn, &out, err) != DB_OK) {
        json_decref(out);
        return NULL;
    }
    return out;
}
