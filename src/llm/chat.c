/*
 * chat.c - ChatML rendering, encoding and fitting into a token budget
 * (see chat.h).
 *
 * A conversation is a list of blocks: the system block (given or default),
 * one block per message, and the generation prompt. Each block's ids are
 * independent of its neighbours because the <|im_start|>/<|im_end|> special
 * tokens separate them, so chat_fit encodes every block once, counts, drops
 * whole turns from the front and concatenates what is left.
 */
#include "llm/chat.h"

#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {"system", "user", "assistant"};

const char *chat_role_name(enum chat_role role)
{
    return (unsigned)role < 3 ? role_names[role] : NULL;
}

int chat_role_parse(const char *name, enum chat_role *out)
{
    for (int i = 0; i < 3; i++) {
        if (!strcmp(name, role_names[i])) {
            *out = (enum chat_role)i;
            return 0;
        }
    }
    return -1;
}

static size_t content_len(const struct chat_message *m)
{
    if (!m->content) return 0;
    return m->len ? m->len : strlen(m->content);
}

/* The system prompt to prepend, or NULL when the conversation has its own
 * (or the caller wants none). */
static const char *default_system(const struct chat_message *msgs, size_t n,
                                  const struct chat_opts *opts)
{
    if (n > 0 && msgs[0].role == CHAT_ROLE_SYSTEM) return NULL;
    const char *d = opts && opts->default_system ? opts->default_system : CHAT_DEFAULT_SYSTEM;
    return *d ? d : NULL;
}

void chat_render(const struct chat_message *msgs, size_t n, const struct chat_opts *opts,
                 struct strbuf *out)
{
    const char *sys = default_system(msgs, n, opts);
    if (sys) strbuf_printf(out, "<|im_start|>system\n%s<|im_end|>\n", sys);
    for (size_t i = 0; i < n; i++) {
        const char *role = chat_role_name(msgs[i].role);
        strbuf_printf(out, "<|im_start|>%s\n", role ? role : "user");
        strbuf_append(out, msgs[i].content ? msgs[i].content : "", content_len(&msgs[i]));
        strbuf_puts(out, "<|im_end|>\n");
    }
    if (!opts || !opts->no_generation_prompt) strbuf_puts(out, "<|im_start|>assistant\n");
}

struct markers {
    int32_t im_start, im_end;
};

static int find_markers(const tokenizer *t, struct markers *mk, struct echo_err *err)
{
    mk->im_start = tok_find(t, "<|im_start|>");
    mk->im_end = tok_find(t, "<|im_end|>");
    if (mk->im_start < 0 || mk->im_end < 0 || !tok_is_added(t, mk->im_start) ||
        !tok_is_added(t, mk->im_end)) {
        echo_err_set(err, "chat: the tokenizer has no <|im_start|>/<|im_end|> special tokens "
                          "(not a ChatML model)");
        return -1;
    }
    return 0;
}

/* Ids of one block: <|im_start|> role\ncontent <|im_end|> \n. */
static int encode_block(const tokenizer *t, const struct markers *mk, const char *role,
                        const char *content, size_t len, struct tok_ids *out, struct echo_err *err)
{
    struct strbuf text;
    strbuf_init(&text);
    strbuf_printf(&text, "%s\n", role);
    strbuf_append(&text, content, len);
    tok_ids_push(out, mk->im_start);
    int rc = tok_encode(t, text.data, text.len, 0, out, err);
    strbuf_deinit(&text);
    if (rc < 0) return -1;
    tok_ids_push(out, mk->im_end);
    return tok_encode(t, "\n", 1, 0, out, err);
}

static int encode_generation_prompt(const tokenizer *t, const struct markers *mk,
                                    struct tok_ids *out, struct echo_err *err)
{
    tok_ids_push(out, mk->im_start);
    return tok_encode(t, "assistant\n", 10, 0, out, err);
}

static int check_roles(const struct chat_message *msgs, size_t n, struct echo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!chat_role_name(msgs[i].role)) {
            echo_err_set(err, "chat: message %zu has an invalid role (%d)", i, (int)msgs[i].role);
            return -1;
        }
    }
    return 0;
}

int chat_encode(const tokenizer *t, const struct chat_message *msgs, size_t n,
                const struct chat_opts *opts, struct tok_ids *out, struct echo_err *err)
{
    struct markers mk;
    if (find_markers(t, &mk, err) < 0 || check_roles(msgs, n, err) < 0) return -1;
    const char *sys = default_system(msgs, n, opts);
    if (sys && encode_block(t, &mk, "system", sys, strlen(sys), out, err) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        if (encode_block(t, &mk, role_names[msgs[i].role], msgs[i].content ? msgs[i].content : "",
                         content_len(&msgs[i]), out, err) < 0)
            return -1;
    }
    if (!opts || !opts->no_generation_prompt) return encode_generation_prompt(t, &mk, out, err);
    return 0;
}

/* ---- fitting ---------------------------------------------------------------------- */

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * character. */
static size_t utf8_floor(const char *s, size_t n)
{
    size_t k = n;
    /* Step back over at most 3 continuation bytes to the lead byte. */
    while (k > 0 && n - k < 4 && ((unsigned char)s[k - 1] & 0xc0) == 0x80)
        k--;
    if (k == 0) return n; /* no lead byte: nothing to fix */
    unsigned char lead = (unsigned char)s[k - 1];
    size_t need = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    return (n - (k - 1) >= need) ? n : k - 1;
}

/* Offset of the first character start at or after `from`. */
static size_t utf8_ceil(const char *s, size_t n, size_t from)
{
    while (from < n && ((unsigned char)s[from] & 0xc0) == 0x80)
        from++;
    return from;
}

/*
 * Cuts the content of a message so that its block takes at most `limit` ids.
 * Works on the content's own ids: keeps `keep` of them (the last ones, or the
 * first half and the last half), turns them back into text at character
 * boundaries and re-encodes, shrinking until the block fits.
 */
static int truncate_block(const tokenizer *t, const struct markers *mk, const char *role,
                          const char *content, size_t len, size_t limit, enum chat_truncate mode,
                          struct tok_ids *block, size_t *removed, struct echo_err *err)
{
    struct tok_ids ids, frame;
    tok_ids_init(&ids);
    tok_ids_init(&frame);
    struct strbuf head, tail, text;
    strbuf_init(&head);
    strbuf_init(&tail);
    strbuf_init(&text);
    int rc = -1;
    if (encode_block(t, mk, role, "", 0, &frame, err) < 0 ||
        tok_encode(t, content, len, 0, &ids, err) < 0)
        goto out;
    if (frame.len >= limit) {
        echo_err_set(err,
                     "chat: no room for the last message (%zu tokens left, its frame alone "
                     "needs %zu)",
                     limit, frame.len);
        goto out;
    }
    size_t keep = limit - frame.len;
    if (keep > ids.len) keep = ids.len;
    for (int attempt = 0; attempt < 64; attempt++) {
        size_t n_head = mode == CHAT_TRUNCATE_MIDDLE ? keep / 2 : 0, n_tail = keep - n_head;
        head.len = tail.len = text.len = 0;
        if (tok_decode(t, ids.ids, n_head, 0, &head, err) < 0 ||
            tok_decode(t, ids.ids + ids.len - n_tail, n_tail, 0, &tail, err) < 0)
            goto out;
        /* Do not leave half a character at either cut. */
        size_t h = head.len ? utf8_floor(head.data, head.len) : 0;
        size_t s = tail.len ? utf8_ceil(tail.data, tail.len, 0) : 0;
        strbuf_append(&text, head.data ? head.data : "", h);
        strbuf_append(&text, tail.data ? tail.data + s : "", tail.len - s);
        block->len = 0;
        if (encode_block(t, mk, role, text.data ? text.data : "", text.len, block, err) < 0)
            goto out;
        if (block->len <= limit) {
            *removed = len - text.len;
            rc = 0;
            goto out;
        }
        size_t over = block->len - limit;
        keep = keep > over ? keep - over : 0;
    }
    echo_err_set(err, "chat: could not cut the last message to %zu tokens", limit);
out:
    strbuf_deinit(&head);
    strbuf_deinit(&tail);
    strbuf_deinit(&text);
    tok_ids_deinit(&ids);
    tok_ids_deinit(&frame);
    return rc;
}

int chat_fit(const tokenizer *t, const struct chat_message *msgs, size_t n, size_t budget,
             const struct chat_opts *opts, struct tok_ids *out, struct chat_fit_result *res,
             struct echo_err *err)
{
    memset(res, 0, sizeof(*res));
    struct markers mk;
    if (find_markers(t, &mk, err) < 0 || check_roles(msgs, n, err) < 0) return -1;
    int rc = -1;
    /* blocks[0] is the system block (maybe empty), blocks[1 + i] message i,
     * blocks[n + 1] the generation prompt. */
    struct tok_ids *blocks = xcalloc(n + 2, sizeof(*blocks));
    for (size_t i = 0; i < n + 2; i++)
        tok_ids_init(&blocks[i]);
    size_t first = 0; /* first message that is not the leading system prompt */
    const char *sys = default_system(msgs, n, opts);
    if (sys) {
        if (encode_block(t, &mk, "system", sys, strlen(sys), &blocks[0], err) < 0) goto out;
    } else if (n > 0 && msgs[0].role == CHAT_ROLE_SYSTEM) {
        if (encode_block(t, &mk, "system", msgs[0].content ? msgs[0].content : "",
                         content_len(&msgs[0]), &blocks[0], err) < 0)
            goto out;
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        if (encode_block(t, &mk, role_names[msgs[i].role], msgs[i].content ? msgs[i].content : "",
                         content_len(&msgs[i]), &blocks[1 + i], err) < 0)
            goto out;
    }
    if ((!opts || !opts->no_generation_prompt) &&
        encode_generation_prompt(t, &mk, &blocks[n + 1], err) < 0)
        goto out;

    /* The last user turn starts at the last user message (or, without one,
     * at the last message). */
    size_t last = n;
    for (size_t i = n; i > first; i--) {
        if (msgs[i - 1].role == CHAT_ROLE_USER) {
            last = i - 1;
            break;
        }
    }
    if (last == n && n > first) last = n - 1;

    size_t total = blocks[0].len + blocks[n + 1].len;
    for (size_t i = first; i < n; i++)
        total += blocks[1 + i].len;
    /* Drop whole turns from the front: a turn ends where the next user
     * message begins. */
    size_t keep_from = first;
    while (total > budget && keep_from < last) {
        size_t end = keep_from + 1;
        while (end < last && msgs[end].role != CHAT_ROLE_USER)
            end++;
        for (size_t i = keep_from; i < end; i++)
            total -= blocks[1 + i].len;
        keep_from = end;
    }
    res->first_kept = keep_from;
    res->n_dropped = keep_from - first;

    if (total > budget) {
        if (last >= n) {
            echo_err_set(err,
                         "chat: the system prompt alone needs %zu tokens, over the budget of "
                         "%zu",
                         total, budget);
            goto out;
        }
        size_t others = total - blocks[1 + last].len;
        if (others >= budget) {
            echo_err_set(err,
                         "chat: the system prompt and the messages after the last user message "
                         "need %zu tokens, over the budget of %zu",
                         others, budget);
            goto out;
        }
        const struct chat_message *m = &msgs[last];
        if (truncate_block(t, &mk, role_names[m->role], m->content ? m->content : "",
                           content_len(m), budget - others, opts ? opts->truncate : 0,
                           &blocks[1 + last], &res->truncated_bytes, err) < 0)
            goto out;
        res->truncated = true;
    }

    size_t before = out->len;
    for (size_t j = 0; j < blocks[0].len; j++)
        tok_ids_push(out, blocks[0].ids[j]);
    for (size_t i = keep_from; i < n; i++)
        for (size_t j = 0; j < blocks[1 + i].len; j++)
            tok_ids_push(out, blocks[1 + i].ids[j]);
    for (size_t j = 0; j < blocks[n + 1].len; j++)
        tok_ids_push(out, blocks[n + 1].ids[j]);
    res->n_tokens = out->len - before;
    rc = 0;
out:
    for (size_t i = 0; i < n + 2; i++)
        tok_ids_deinit(&blocks[i]);
    free(blocks);
    return rc;
}
