/*
 * tokenizer.c - the tokenizer's in-memory form: building it from what a
 * loader read (tok_load.c), vocabulary look-ups, decoding and the streaming
 * decoder. Encoding lives in tok_encode.c.
 *
 * Building resolves everything encoding needs into flat tables so that the
 * hot path never touches strings: the id of each single byte, and the merge
 * table keyed by the pair of ids (rank + merged id). Decoding uses the bytes
 * of each token, computed once from the byte-level spelling.
 */
#include "llm/tok_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t next_uid = 1;

/* ---- GPT-2 byte-level mapping ------------------------------------------ */

/* bytes_to_unicode() of GPT-2's encoder.py: printable Latin-1 bytes stand for
 * themselves, the 68 others (controls, space, DEL, NBSP, soft hyphen) are
 * shifted to U+0100.. in byte order, so that every byte is a visible char. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b)) return b;
    uint32_t k = 0;
    for (unsigned i = 0; i < b; i++)
        k += !byte_is_printable(i);
    return 256 + k;
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    /* The k-th non-printable byte, in byte order. */
    static const uint8_t shifted[68] = {
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
        0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
        0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
        0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
        0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xad};
    return shifted[cp - 256];
}

/* ---- UTF-8 ------------------------------------------------------------- */

int tok_utf8_next(const uint8_t *s, size_t n, size_t *len)
{
    uint8_t b = s[0];
    if (b < 0x80) {
        *len = 1;
        return 1;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (b >= 0xc2 && b <= 0xdf) {
        need = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        need = 3;
        if (b == 0xe0)
            lo = 0xa0; /* no overlongs */
        else if (b == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 4;
        if (b == 0xf0)
            lo = 0x90;
        else if (b == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        *len = 1;
        return -1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *len = i;
            return 0;
        }
        uint8_t c = s[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (c < l || c > h) {
            *len = i;
            return -1;
        }
    }
    *len = need;
    return 1;
}

static const char replacement_char[3] = {(char)0xef, (char)0xbf, (char)0xbd};

size_t tok_utf8_sanitize(const char *text, size_t len, struct strbuf *out)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0, run = 0, replaced = 0;
    strbuf_reserve(out, len);
    while (i < len) {
        size_t l = 0;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int r = tok_utf8_next(s + i, len - i, &l);
        if (r == 1) {
            i += l;
            continue;
        }
        /* Invalid or truncated at the end: both are replaced. */
        strbuf_append(out, text + run, i - run);
        strbuf_append(out, replacement_char, 3);
        replaced++;
        i += l;
        run = i;
    }
    strbuf_append(out, text + run, len - run);
    return replaced;
}

/* Appends the UTF-8 of a code point to buf; returns the length. */
static size_t put_utf8(uint32_t cp, char *buf)
{
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xc0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xe0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    buf[0] = (char)(0xf0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    buf[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- hashing ----------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static const char *text_of(const tokenizer *t, int32_t id, size_t *len)
{
    *len = t->text_off[id + 1] - t->text_off[id];
    return t->text_pool + t->text_off[id];
}

/* Index slots: the high 32 bits of the hash (a tag that spares most string
 * compares), the low 32 bits id + 1; 0 = empty. */
int32_t tok_lookup_text(const tokenizer *t, const char *s, size_t len)
{
    uint64_t hash = hash_bytes(s, len);
    uint64_t tag = hash >> 32 << 32;
    uint64_t h = hash & t->text_index_mask;
    for (;;) {
        uint64_t slot = t->text_index[h];
        if (!slot) return -1;
        if ((slot & 0xffffffff00000000ull) == tag) {
            int32_t id = (int32_t)(uint32_t)(slot - 1);
            size_t l = 0;
            const char *x = text_of(t, id, &l);
            if (l == len && memcmp(x, s, len) == 0) return id;
        }
        h = (h + 1) & t->text_index_mask;
    }
}

/* ---- building ---------------------------------------------------------- */

static bool type_is_added(uint8_t type)
{
    return type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED;
}

/* Byte-level spelling -> bytes, written to out (never longer than the
 * spelling); returns the length. A code point outside the mapping (never in a
 * real byte-level vocabulary) stands for its own UTF-8. */
static size_t decode_spelling(const char *s, size_t n, char *out)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            out[k++] = s[i++]; /* printable ASCII maps to itself */
            continue;
        }
        size_t l = 0;
        if (tok_utf8_next(u + i, n - i, &l) != 1) {
            memcpy(out + k, s + i, l);
            k += l;
            i += l;
            continue;
        }
        uint32_t cp = l == 2 ? ((uint32_t)(u[i] & 0x1f) << 6) | (u[i + 1] & 0x3f) : 0x110000;
        int b = tok_cp_to_byte(cp);
        if (b >= 0) {
            out[k++] = (char)b;
        } else {
            memcpy(out + k, s + i, l);
            k += l;
        }
        i += l;
    }
    return k;
}

/* For messages: a token spelling, at most 40 bytes, control chars as '?'. */
static const char *quote(const char *s, size_t n, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < size && i < 40; i++)
        buf[k++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (n > 40 && k + 4 < size) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = 0;
    return buf;
}

static int build_vocab(tokenizer *t, const struct tok_spec *sp, uint8_t *dup, struct echo_err *err)
{
    int32_t n = sp->n_vocab;
    uint64_t total = 0;
    for (int32_t i = 0; i < n; i++)
        total += sp->texts[i] ? sp->text_lens[i] : 0;
    if (total >= UINT32_MAX / 2) {
        echo_err_set(err, "%s: vocabulary strings are too large (%llu bytes)", sp->source,
                     (unsigned long long)total);
        return -1;
    }
    t->types = xmalloc((size_t)n);
    t->text_off = xmalloc(((size_t)n + 1) * sizeof(uint32_t));
    t->text_pool = xmalloc((size_t)total + 1);
    uint32_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        t->text_off[i] = off;
        t->types[i] = sp->texts[i] ? sp->types[i] : TOK_TYPE_UNUSED;
        if (sp->texts[i]) {
            memcpy(t->text_pool + off, sp->texts[i], sp->text_lens[i]);
            off += (uint32_t)sp->text_lens[i];
        }
    }
    t->text_off[n] = off;

    uint64_t slots = 1024;
    while (slots < 2 * (uint64_t)n)
        slots <<= 1;
    t->text_index = xcalloc((size_t)slots, sizeof(uint64_t));
    t->text_index_mask = slots - 1;
    for (int32_t i = 0; i < n; i++) {
        if (!sp->texts[i]) continue;
        size_t len = 0;
        const char *s = text_of(t, i, &len);
        uint64_t hash = hash_bytes(s, len), tag = hash >> 32 << 32;
        uint64_t h = hash & t->text_index_mask;
        bool dup_found = false;
        while (t->text_index[h]) {
            uint64_t slot = t->text_index[h];
            size_t l = 0;
            const char *x;
            if ((slot & 0xffffffff00000000ull) == tag &&
                (x = text_of(t, (int32_t)(uint32_t)(slot - 1), &l), l == len) &&
                memcmp(x, s, len) == 0) {
                dup_found = true; /* the first id keeps the spelling */
                break;
            }
            h = (h + 1) & t->text_index_mask;
        }
        if (!dup_found) t->text_index[h] = tag | ((uint64_t)i + 1);
        dup[i] = dup_found;
    }

    /* Bytes of each token: added tokens are written as-is, BPE tokens in the
     * byte-level alphabet. */
    t->bytes_pool = xmalloc((size_t)total + 1);
    t->bytes_off = xmalloc(((size_t)n + 1) * sizeof(uint32_t));
    uint32_t boff = 0;
    for (int32_t i = 0; i < n; i++) {
        t->bytes_off[i] = boff;
        size_t len = 0;
        const char *s = text_of(t, i, &len);
        if (type_is_added(t->types[i])) {
            memcpy(t->bytes_pool + boff, s, len);
            boff += (uint32_t)len;
        } else if (t->types[i] != TOK_TYPE_UNUSED) {
            boff += (uint32_t)decode_spelling(s, len, t->bytes_pool + boff);
        }
    }
    t->bytes_off[n] = boff;

    for (unsigned b = 0; b < 256; b++) {
        char buf[4];
        size_t l = put_utf8(tok_byte_to_cp((uint8_t)b), buf);
        t->byte_id[b] = tok_lookup_text(t, buf, l);
        if (t->byte_id[b] < 0) {
            echo_err_set(err,
                         "%s: the vocabulary lacks the byte-level token for byte 0x%02x ('%.*s'); "
                         "not a byte-level BPE vocabulary",
                         sp->source, b, (int)l, buf);
            return -1;
        }
    }
    return 0;
}

/* dup[id] is set when the spelling of id also belongs to a smaller id (the
 * index then answers the smaller one). */
static int build_merges(tokenizer *t, const struct tok_spec *sp, const uint8_t *dup,
                        struct echo_err *err)
{
    uint64_t slots = 1024;
    while (slots < 2 * (uint64_t)sp->n_merges + 2)
        slots <<= 1;
    t->merges = xmalloc((size_t)slots * sizeof(*t->merges));
    for (uint64_t i = 0; i < slots; i++)
        t->merges[i].key = UINT64_MAX;
    t->merges_mask = slots - 1;
    struct strbuf cat;
    strbuf_init(&cat);
    int rc = 0;
    for (size_t i = 0; i < sp->n_merges && rc == 0; i++) {
        const char *a = sp->merge_a[i], *b = sp->merge_b[i];
        size_t al = sp->merge_a_len[i], bl = sp->merge_b_len[i];
        int32_t ia = tok_lookup_text(t, a, al), ib = tok_lookup_text(t, b, bl);
        /* BPE training appends one token per merge, so in the usual
         * vocabulary merge i makes token 256 + i: check that guess with one
         * sequential compare before the hash look-up. */
        int32_t im = -1;
        int64_t guess = 256 + (int64_t)i;
        if (guess < t->n_vocab) {
            size_t gl = 0;
            const char *g = text_of(t, (int32_t)guess, &gl);
            if (gl == al + bl && !dup[guess] && !memcmp(g, a, al) && !memcmp(g + al, b, bl))
                im = (int32_t)guess;
        }
        if (im < 0) {
            cat.len = 0;
            strbuf_append(&cat, a, al);
            strbuf_append(&cat, b, bl);
            im = tok_lookup_text(t, cat.data, cat.len);
        }
        if (ia < 0 || ib < 0 || im < 0) {
            char qa[64], qb[64];
            echo_err_set(err, "%s: merge %zu ('%s' '%s'): %s is not in the vocabulary", sp->source,
                         i, quote(a, al, qa, sizeof(qa)), quote(b, bl, qb, sizeof(qb)),
                         ia < 0   ? "the left part"
                         : ib < 0 ? "the right part"
                                  : "the merged token");
            rc = -1;
            break;
        }
        uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> 20;
        for (;;) {
            struct tok_merge_slot *s = &t->merges[h & t->merges_mask];
            if (s->key == key) break; /* a repeated pair keeps its first (lowest) rank */
            if (s->key == UINT64_MAX) {
                s->key = key;
                s->rank = (uint32_t)i;
                s->id = im;
                t->n_merges++;
                break;
            }
            h++;
        }
    }
    strbuf_deinit(&cat);
    return rc;
}

static int cmp_added(const void *x, const void *y)
{
    const struct tok_added *a = x, *b = y;
    unsigned char fa = (unsigned char)a->content[0], fb = (unsigned char)b->content[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1; /* longest first: leftmost-longest matching */
    return a->id < b->id ? -1 : a->id > b->id;
}

static int build_added(tokenizer *t, const struct tok_spec *sp, struct echo_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < sp->n_added; i++)
        total += sp->added[i].len;
    t->added_pool = xmalloc(total + 1);
    t->added = xcalloc(sp->n_added ? sp->n_added : 1, sizeof(*t->added));
    size_t off = 0, k = 0;
    for (size_t i = 0; i < sp->n_added; i++) {
        const struct tok_added_spec *a = &sp->added[i];
        if (a->id < 0 || a->id >= t->n_vocab) {
            echo_err_set(err, "%s: added token %d is outside the vocabulary (%d ids)", sp->source,
                         a->id, t->n_vocab);
            return -1;
        }
        if (a->len == 0) {
            echo_err_set(err, "%s: added token %d has empty content", sp->source, a->id);
            return -1;
        }
        if (a->len > UINT32_MAX / 2) {
            echo_err_set(err, "%s: added token %d is too long", sp->source, a->id);
            return -1;
        }
        /* The same content twice: the later entry is a duplicate description. */
        bool dup = false;
        for (size_t j = 0; j < k; j++) {
            if (t->added[j].len == a->len && !memcmp(t->added[j].content, a->content, a->len)) {
                dup = true;
                break;
            }
        }
        if (dup) continue;
        memcpy(t->added_pool + off, a->content, a->len);
        t->added[k] = (struct tok_added){a->id,     (uint32_t)a->len, t->added_pool + off,
                                         a->lstrip, a->rstrip,        a->single_word};
        off += a->len;
        k++;
    }
    t->n_added = k;
    qsort(t->added, k, sizeof(*t->added), cmp_added);
    size_t j = 0;
    for (unsigned b = 0; b <= 256; b++) {
        while (j < k && (unsigned char)t->added[j].content[0] < b)
            j++;
        t->first_added[b] = (uint32_t)j;
    }
    return 0;
}

static int build_regex(tokenizer *t, const struct tok_spec *sp, struct echo_err *err)
{
    t->pattern = tok_regex_translate(sp->pattern);
    int code;
    PCRE2_SIZE at;
    t->re = pcre2_compile((PCRE2_SPTR)t->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                          &code, &at, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof(msg));
        echo_err_set(err, "%s: the pre-tokenizer regex does not compile at offset %zu: %s",
                     sp->source, (size_t)at, (const char *)msg);
        return -1;
    }
    /* Without JIT (an unsupported CPU) the interpreter gives the same splits. */
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

tokenizer *tok_build(const struct tok_spec *sp, struct echo_err *err)
{
    if (sp->n_vocab <= 0 || sp->n_vocab > TOK_MAX_VOCAB) {
        echo_err_set(err, "%s: vocabulary size %d is outside 1..%d", sp->source, sp->n_vocab,
                     TOK_MAX_VOCAB);
        return NULL;
    }
    uint8_t *dup = NULL;
    tokenizer *t = xcalloc(1, sizeof(*t));
    t->uid = atomic_fetch_add(&next_uid, 1);
    t->n_vocab = sp->n_vocab;
    t->nfc = sp->nfc;
    t->bos = sp->bos;
    t->eos = sp->eos;
    t->pad = sp->pad;
    const int32_t special[3] = {sp->bos, sp->eos, sp->pad};
    const char *special_names[3] = {"bos", "eos", "padding"};
    for (int i = 0; i < 3; i++) {
        if (special[i] < -1 || special[i] >= sp->n_vocab) {
            echo_err_set(err, "%s: %s token id %d is outside the vocabulary (%d ids)", sp->source,
                         special_names[i], special[i], sp->n_vocab);
            goto fail;
        }
    }
    if (sp->chat_template) t->chat_template = xstrndup(sp->chat_template, sp->chat_template_len);
    dup = xcalloc((size_t)sp->n_vocab, 1);
    if (build_vocab(t, sp, dup, err) < 0 || build_merges(t, sp, dup, err) < 0 ||
        build_added(t, sp, err) < 0 || build_regex(t, sp, err) < 0)
        goto fail;
    if (t->nfc) tok_nfc_prepare();
    free(dup);
    return t;
fail:
    free(dup);
    tok_free(t);
    return NULL;
}

void tok_free(tokenizer *t)
{
    if (!t) return;
    free(t->types);
    free(t->text_pool);
    free(t->text_off);
    free(t->bytes_pool);
    free(t->bytes_off);
    free(t->text_index);
    free(t->merges);
    free(t->added);
    free(t->added_pool);
    pcre2_code_free(t->re);
    free(t->pattern);
    free(t->chat_template);
    free(t);
}

/* ---- vocabulary accessors ----------------------------------------------- */

int32_t tok_vocab_size(const tokenizer *t)
{
    return t->n_vocab;
}

enum tok_type tok_token_type(const tokenizer *t, int32_t id)
{
    if (id < 0 || id >= t->n_vocab) return TOK_TYPE_UNUSED;
    return (enum tok_type)t->types[id];
}

const char *tok_token_text(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    return text_of(t, id, len);
}

const char *tok_token_bytes(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) return NULL;
    *len = t->bytes_off[id + 1] - t->bytes_off[id];
    return t->bytes_pool + t->bytes_off[id];
}

int32_t tok_find(const tokenizer *t, const char *text)
{
    size_t len = strlen(text);
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].len == len && !memcmp(t->added[i].content, text, len))
            return t->added[i].id;
    }
    return len ? tok_lookup_text(t, text, len) : -1;
}

bool tok_is_added(const tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && type_is_added(t->types[id]);
}

int32_t tok_bos_id(const tokenizer *t)
{
    return t->bos;
}

int32_t tok_eos_id(const tokenizer *t)
{
    return t->eos;
}

int32_t tok_pad_id(const tokenizer *t)
{
    return t->pad;
}

const char *tok_chat_template(const tokenizer *t)
{
    return t->chat_template;
}

size_t tok_merge_count(const tokenizer *t)
{
    return t->n_merges;
}

size_t tok_added_count(const tokenizer *t)
{
    return t->n_added;
}

/* ---- id arrays ----------------------------------------------------------- */

void tok_ids_init(struct tok_ids *v)
{
    v->ids = NULL;
    v->len = v->cap = 0;
}

void tok_ids_deinit(struct tok_ids *v)
{
    free(v->ids);
    tok_ids_init(v);
}

void tok_ids_push(struct tok_ids *v, int32_t id)
{
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->ids = xrealloc(v->ids, v->cap * sizeof(*v->ids));
    }
    v->ids[v->len++] = id;
}

/* ---- decoding ------------------------------------------------------------ */

int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags, struct strbuf *out,
               struct echo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            echo_err_set(err, "token id %d (position %zu) is outside the vocabulary (0..%d)",
                         ids[i], i, t->n_vocab - 1);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if ((flags & TOK_DECODE_SKIP_SPECIAL) && t->types[ids[i]] == TOK_TYPE_CONTROL) continue;
        size_t len = 0;
        const char *b = tok_token_bytes(t, ids[i], &len);
        strbuf_append(out, b, len);
    }
    return 0;
}

void tok_stream_init(struct tok_stream *s, const tokenizer *t, unsigned flags)
{
    memset(s, 0, sizeof(*s));
    s->tok = t;
    s->flags = flags;
}

/* Emits the complete characters of buf[0..n), keeps a trailing valid prefix. */
static size_t stream_emit(struct tok_stream *s, const uint8_t *buf, size_t n, struct strbuf *out)
{
    size_t before = out->len, i = 0, run = 0;
    while (i < n) {
        size_t l = 0;
        int r = buf[i] < 0x80 ? (l = 1, 1) : tok_utf8_next(buf + i, n - i, &l);
        if (r == 1) {
            i += l;
            continue;
        }
        strbuf_append(out, buf + run, i - run);
        if (r == 0) {
            memcpy(s->pending, buf + i, l);
            s->n_pending = (uint8_t)l;
            return out->len - before;
        }
        strbuf_append(out, replacement_char, 3);
        i += l;
        run = i;
    }
    strbuf_append(out, buf + run, n - run);
    s->n_pending = 0;
    return out->len - before;
}

int tok_stream_push(struct tok_stream *s, int32_t id, struct strbuf *out, struct echo_err *err)
{
    const tokenizer *t = s->tok;
    if (id < 0 || id >= t->n_vocab) {
        echo_err_set(err, "token id %d is outside the vocabulary (0..%d)", id, t->n_vocab - 1);
        return -1;
    }
    if ((s->flags & TOK_DECODE_SKIP_SPECIAL) && t->types[id] == TOK_TYPE_CONTROL) return 0;
    size_t len = 0;
    const uint8_t *b = (const uint8_t *)tok_token_bytes(t, id, &len);
    if (!s->n_pending) return (int)stream_emit(s, b, len, out);
    /* Join the held bytes with the new ones; only the first few bytes can
     * complete the held character, the rest is emitted directly. */
    uint8_t head[8];
    size_t take = len < 4 ? len : 4;
    size_t np = s->n_pending;
    memcpy(head, s->pending, np);
    memcpy(head + np, b, take);
    size_t before = out->len, l = 0;
    int r = tok_utf8_next(head, np + take, &l);
    if (r == 0) {
        /* still incomplete (only possible when the whole token was consumed) */
        memcpy(s->pending, head, np + take);
        s->n_pending = (uint8_t)(np + take);
        return 0;
    }
    if (r == 1)
        strbuf_append(out, head, l);
    else
        strbuf_append(out, replacement_char, 3);
    s->n_pending = 0;
    /* The held bytes were a valid prefix, so the sequence ends (or fails) at
     * or after them: l >= np, and l - np bytes of the token are used up. */
    size_t i = l - np;
    stream_emit(s, b + i, len - i, out);
    return (int)(out->len - before);
}

size_t tok_stream_flush(struct tok_stream *s, struct strbuf *out)
{
    if (!s->n_pending) return 0;
    s->n_pending = 0;
    strbuf_append(out, replacement_char, 3);
    return 3;
}
