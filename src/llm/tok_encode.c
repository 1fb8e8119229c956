/*
 * tok_encode.c - text -> ids (see tokenizer.h for the steps).
 *
 * The hot path is: a regex match (PCRE2 JIT) per pre-token, then either a
 * hit in the calling thread's cache of recent pre-tokens or a BPE run. BPE
 * follows Hugging Face's tokenizers (models/bpe/word.rs, merge_all): repeat
 * "apply the adjacent pair with the lowest merge rank, the leftmost among
 * equal ranks" until no pair merges. Short pieces do that with a linear scan
 * over a small array (fastest for the usual 1-15 bytes); long ones use a
 * binary heap of candidate merges over a linked list of symbols, so a 1 MB
 * "word" costs O(n log n), not O(n^2).
 *
 * Per-thread state (the cache, PCRE2 match data and JIT stack) lives in
 * thread-local storage so that a shared, immutable tokenizer needs no lock.
 * Cache entries are tagged with the tokenizer's uid, so several tokenizers
 * (or one freed and another loaded at the same address) never mix.
 */
#include "llm/tok_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- per-thread state ---------------------------------------------------- */

#define CACHE_BITS 13
#define CACHE_SLOTS (1u << CACHE_BITS)
#define CACHE_KEY_MAX 23
#define CACHE_IDS_MAX 7

struct cache_slot {
    uint64_t uid; /* 0: empty */
    uint32_t hash;
    uint8_t key_len;
    uint8_t n_ids;
    char key[CACHE_KEY_MAX];
    int32_t ids[CACHE_IDS_MAX];
};

struct tok_tls {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    struct cache_slot *cache;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static bool tls_key_ok;
/* Also kept in a thread-local pointer: fast to reach, and visible to leak
 * checkers as reachable for the main thread (whose key destructor never runs). */
static _Thread_local struct tok_tls *tls_cur;

static void tls_free(struct tok_tls *s)
{
    if (!s) return;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit_stack);
    free(s->cache);
    free(s);
}

static void tls_destructor(void *p)
{
    tls_free(p);
    tls_cur = NULL;
}

static void tls_make_key(void)
{
    tls_key_ok = pthread_key_create(&tls_key, tls_destructor) == 0;
}

static struct tok_tls *tls_get(void)
{
    if (tls_cur) return tls_cur;
    pthread_once(&tls_once, tls_make_key);
    struct tok_tls *s = xcalloc(1, sizeof(*s));
    s->md = pcre2_match_data_create(1, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    /* Pieces can be a megabyte long (one huge word); give the JIT room to
     * backtrack instead of failing on its default 32 KB stack. */
    s->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (s->mctx && s->jit_stack) pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
    s->cache = xcalloc(CACHE_SLOTS, sizeof(*s->cache));
    if (!s->md || !s->mctx) {
        tls_free(s);
        return NULL;
    }
    if (tls_key_ok) pthread_setspecific(tls_key, s);
    tls_cur = s;
    return s;
}

void tok_thread_cleanup(void)
{
    if (!tls_cur) return;
    if (tls_key_ok) pthread_setspecific(tls_key, NULL);
    tls_free(tls_cur);
    tls_cur = NULL;
}

/* ---- NFC ---------------------------------------------------------------- */

/*
 * NFC is applied only where it can change something. A "stable" code point
 * (UAX #15, "Stable Code Points"; ICU's hasCompBoundaryBefore) has combining
 * class 0, is its own NFC, and never composes with what precedes it; the
 * text can be cut before any stable code point and normalized piecewise. So
 * a stretch around each unstable code point (from the stable code point
 * before it, which may compose with it, up to the next stable one) goes
 * through utf8proc, and everything else is copied. The usual text (ASCII,
 * CJK, precomposed Latin, Hangul syllables, emoji) has no unstable code
 * point at all and skips utf8proc entirely.
 *
 * The bit set marks the unstable code points: a non-zero combining class;
 * a canonical decomposition whose NFC is not the code point itself; every
 * code point after the first in some canonical decomposition (a possible
 * second half of a composition); the conjoining Hangul jamo.
 */
static uint8_t *nfc_unstable;
static pthread_once_t nfc_once = PTHREAD_ONCE_INIT;

static void nfc_mark(uint32_t cp)
{
    nfc_unstable[cp >> 3] |= (uint8_t)(1u << (cp & 7));
}

static bool nfc_is_unstable(uint32_t cp)
{
    return nfc_unstable[cp >> 3] & (1u << (cp & 7));
}

static void nfc_init(void)
{
    nfc_unstable = xcalloc(0x110000 / 8, 1);
    for (uint32_t cp = 0x80; cp < 0x110000; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        if (p->combining_class != 0) nfc_mark(cp);
        if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) continue;
        utf8proc_int32_t buf[8];
        int bc = 0;
        utf8proc_ssize_t n =
            utf8proc_decompose_char((utf8proc_int32_t)cp, buf, 8, UTF8PROC_DECOMPOSE, &bc);
        for (utf8proc_ssize_t i = 1; i < n && i < 8; i++) {
            if (buf[i] >= 0 && buf[i] < 0x110000) nfc_mark((uint32_t)buf[i]);
        }
        utf8proc_uint8_t one[4], *norm = NULL;
        utf8proc_ssize_t l = utf8proc_encode_char((utf8proc_int32_t)cp, one);
        utf8proc_ssize_t m = utf8proc_map(one, l, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m != l || memcmp(norm, one, (size_t)l) != 0) nfc_mark(cp);
        free(norm);
    }
    const uint32_t jamo[][2] = {{0x1100, 0x11ff}, {0xa960, 0xa97f}, {0xd7b0, 0xd7ff}};
    for (size_t r = 0; r < sizeof(jamo) / sizeof(jamo[0]); r++)
        for (uint32_t cp = jamo[r][0]; cp <= jamo[r][1]; cp++)
            nfc_mark(cp);
}

void tok_nfc_prepare(void)
{
    pthread_once(&nfc_once, nfc_init);
}

static uint32_t decode_cp(const uint8_t *u, size_t l)
{
    switch (l) {
    case 1:
        return u[0];
    case 2:
        return ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
    case 3:
        return ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
    default:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
               ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
    }
}

static size_t seq_len(uint8_t b)
{
    return b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
}

/* Offset of the first unstable code point at or after i (n when none). */
static size_t next_unstable(const uint8_t *s, size_t n, size_t i, size_t *stable_before)
{
    size_t last_start = i; /* start of the code point before the current one */
    while (i < n) {
        if (s[i] < 0x80) {
            last_start = i++;
            continue;
        }
        size_t l = seq_len(s[i]);
        if (nfc_is_unstable(decode_cp(s + i, l))) {
            *stable_before = last_start;
            return i;
        }
        last_start = i;
        i += l;
    }
    return n;
}

/*
 * NFC of valid UTF-8 text. Returns false when the text is already NFC
 * (nothing written), else writes the normalized text to out.
 */
static bool nfc_normalize(const uint8_t *s, size_t n, struct strbuf *out)
{
    pthread_once(&nfc_once, nfc_init);
    size_t before = 0;
    size_t u = next_unstable(s, n, 0, &before);
    if (u == n) return false;
    size_t done = 0;
    while (u < n) {
        /* The stretch: from the code point before u (it may compose with
         * u) to the next stable code point. */
        size_t start = before < u ? before : u;
        if (start < done) start = done;
        size_t end = u + seq_len(s[u]);
        while (end < n) {
            size_t l = seq_len(s[end]);
            if (s[end] < 0x80 || !nfc_is_unstable(decode_cp(s + end, l))) break;
            end += l;
        }
        strbuf_append(out, s + done, start - done);
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t len = utf8proc_map(s + start, (utf8proc_ssize_t)(end - start), &norm,
                                            UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        /* utf8proc only refuses invalid UTF-8, which was replaced before. */
        if (len >= 0)
            strbuf_append(out, norm, (size_t)len);
        else
            strbuf_append(out, s + start, end - start);
        free(norm);
        done = end;
        u = next_unstable(s, n, end, &before);
    }
    strbuf_append(out, s + done, n - done);
    return true;
}

/* ---- BPE ------------------------------------------------------------------ */

#define SMALL_PIECE 64

/* Linear-scan BPE for short pieces; writes the ids to out, returns their count. */
static size_t bpe_small(const tokenizer *t, const uint8_t *s, size_t n, int32_t *out)
{
    int32_t sym[SMALL_PIECE], merged[SMALL_PIECE];
    uint32_t rank[SMALL_PIECE];
    for (size_t i = 0; i < n; i++)
        sym[i] = t->byte_id[s[i]];
    size_t m = n;
    for (size_t i = 0; i + 1 < m; i++) {
        if (!tok_merge_find(t, sym[i], sym[i + 1], &rank[i], &merged[i])) rank[i] = UINT32_MAX;
    }
    while (m > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < m; i++) {
            if (rank[i] < rank[best]) best = i; /* strict: the leftmost of equal ranks wins */
        }
        if (rank[best] == UINT32_MAX) break;
        /* Replace symbols best, best+1 by the merged one; the pair list
         * loses the pair (best+1, best+2), and pairs best and best-1 change. */
        sym[best] = merged[best];
        size_t tail = m - best - 2; /* symbols after best + 1 */
        memmove(sym + best + 1, sym + best + 2, tail * sizeof(*sym));
        if (tail > 0) {
            memmove(rank + best + 1, rank + best + 2, (tail - 1) * sizeof(*rank));
            memmove(merged + best + 1, merged + best + 2, (tail - 1) * sizeof(*merged));
        }
        m--;
        if (best + 1 < m &&
            !tok_merge_find(t, sym[best], sym[best + 1], &rank[best], &merged[best]))
            rank[best] = UINT32_MAX;
        if (best > 0 &&
            !tok_merge_find(t, sym[best - 1], sym[best], &rank[best - 1], &merged[best - 1]))
            rank[best - 1] = UINT32_MAX;
    }
    memcpy(out, sym, m * sizeof(*sym));
    return m;
}

struct bpe_sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    bool alive;
};

/* A candidate merge: (rank << 32) | position of its left symbol, so that
 * one integer comparison orders by rank, then leftmost. The merged id is not
 * stored: it is looked up again when the candidate is popped, which is also
 * how stale candidates are recognized (each rank names one pair). */
typedef uint64_t bpe_cand;

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (c >= h[p]) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n)
{
    bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static void push_pair(const tokenizer *t, const struct bpe_sym *sym, int32_t left, bpe_cand *heap,
                      size_t *hn)
{
    uint32_t rank;
    int32_t id;
    if (tok_merge_find(t, sym[left].id, sym[sym[left].next].id, &rank, &id))
        heap_push(heap, hn, ((uint64_t)rank << 32) | (uint32_t)left);
}

/* Heap BPE for long pieces; appends the ids to out. */
static void bpe_large(const tokenizer *t, const uint8_t *s, size_t n, struct tok_ids *out)
{
    struct bpe_sym *sym = xmalloc(n * sizeof(*sym));
    /* Every merge pushes at most two candidates: n - 1 + 2 (n - 1) in all. */
    bpe_cand *heap = xmalloc(3 * n * sizeof(*heap));
    size_t hn = 0;
    for (size_t i = 0; i < n; i++)
        sym[i] = (struct bpe_sym){t->byte_id[s[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1,
                                  true};
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, sym, (int32_t)i, heap, &hn);
    while (hn) {
        bpe_cand c = heap_pop(heap, &hn);
        int32_t pos = (int32_t)(uint32_t)c;
        struct bpe_sym *l = &sym[pos];
        if (!l->alive || l->next < 0) continue;
        struct bpe_sym *r = &sym[l->next];
        uint32_t rank;
        int32_t id;
        /* Stale candidate: the pair at pos changed since it was pushed. */
        if (!tok_merge_find(t, l->id, r->id, &rank, &id) || rank != (uint32_t)(c >> 32)) continue;
        l->id = id;
        r->alive = false;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = pos;
        if (l->prev >= 0) push_pair(t, sym, l->prev, heap, &hn);
        if (l->next >= 0) push_pair(t, sym, pos, heap, &hn);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        tok_ids_push(out, sym[i].id);
    free(heap);
    free(sym);
}

static uint32_t piece_hash(const uint8_t *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static void encode_piece(const tokenizer *t, struct tok_tls *tls, const uint8_t *s, size_t n,
                         struct tok_ids *out)
{
    if (n == 1) {
        tok_ids_push(out, t->byte_id[s[0]]);
        return;
    }
    struct cache_slot *slot = NULL;
    uint32_t h = 0;
    if (n <= CACHE_KEY_MAX && tls) {
        h = piece_hash(s, n);
        slot = &tls->cache[h & (CACHE_SLOTS - 1)];
        if (slot->uid == t->uid && slot->hash == h && slot->key_len == n &&
            !memcmp(slot->key, s, n)) {
            for (size_t i = 0; i < slot->n_ids; i++)
                tok_ids_push(out, slot->ids[i]);
            return;
        }
    }
    if (n > SMALL_PIECE) {
        bpe_large(t, s, n, out);
        return;
    }
    int32_t ids[SMALL_PIECE];
    size_t m = bpe_small(t, s, n, ids);
    for (size_t i = 0; i < m; i++)
        tok_ids_push(out, ids[i]);
    if (slot && m <= CACHE_IDS_MAX) {
        slot->uid = t->uid;
        slot->hash = h;
        slot->key_len = (uint8_t)n;
        slot->n_ids = (uint8_t)m;
        memcpy(slot->key, s, n);
        memcpy(slot->ids, ids, m * sizeof(*ids));
    }
}

/* ---- pre-tokenizer --------------------------------------------------------- */

static void set_regex_error(struct echo_err *err, int rc, size_t at)
{
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof(msg));
    echo_err_set(err, "tokenizer: the pre-tokenizer regex failed at byte %zu: %s", at,
                 (const char *)msg);
}

/* Splits valid, normalized UTF-8 text by the regex (HF's Split with
 * behavior "Isolated": matches and the gaps between them are pieces) and
 * encodes each piece. */
static int encode_normalized(const tokenizer *t, struct tok_tls *tls, const uint8_t *s, size_t n,
                             struct tok_ids *out, struct echo_err *err)
{
    size_t done = 0, search = 0;
    while (search < n) {
        int rc = t->jit
                     ? pcre2_jit_match(t->re, s, n, search, PCRE2_NO_UTF_CHECK, tls->md, tls->mctx)
                     : pcre2_match(t->re, s, n, search, PCRE2_NO_UTF_CHECK, tls->md, tls->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            set_regex_error(err, rc, search);
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tls->md);
        size_t start = ov[0], end = ov[1];
        if (end == start) {
            /* An empty match (impossible with the known patterns) splits
             * nothing; move past one character. */
            search = start + seq_len(s[start]);
            continue;
        }
        if (start > done) encode_piece(t, tls, s + done, start - done, out);
        encode_piece(t, tls, s + start, end - start, out);
        done = search = end;
    }
    if (done < n) encode_piece(t, tls, s + done, n - done, out);
    return 0;
}

static int encode_segment(const tokenizer *t, struct tok_tls *tls, const uint8_t *s, size_t n,
                          struct tok_ids *out, struct echo_err *err)
{
    if (n == 0) return 0;
    if (t->nfc) {
        struct strbuf norm;
        strbuf_init(&norm);
        if (nfc_normalize(s, n, &norm)) {
            int rc = encode_normalized(t, tls, (const uint8_t *)norm.data, norm.len, out, err);
            strbuf_deinit(&norm);
            return rc;
        }
    }
    return encode_normalized(t, tls, s, n, out, err);
}

/* ---- added tokens ------------------------------------------------------------ */

static bool cp_is_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000;
}

static bool cp_is_word(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
               cp == '_';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* The code point ending just before position i (s valid UTF-8, i > 0). */
static uint32_t cp_before(const uint8_t *s, size_t i, size_t *len)
{
    size_t k = i - 1;
    while (k > 0 && (s[k] & 0xc0) == 0x80 && i - k < 4)
        k--;
    *len = i - k;
    return decode_cp(s + k, *len);
}

/* The longest added token starting at s[i], or NULL. */
static const struct tok_added *match_added(const tokenizer *t, const uint8_t *s, size_t n, size_t i)
{
    uint8_t b = s[i];
    for (uint32_t k = t->first_added[b]; k < t->first_added[b + 1]; k++) {
        const struct tok_added *a = &t->added[k];
        if (a->len > n - i || memcmp(a->content, s + i, a->len) != 0) continue;
        if (a->single_word) {
            size_t l = 0;
            if (i > 0 && cp_is_word(cp_before(s, i, &l))) continue;
            size_t e = i + a->len;
            if (e < n && cp_is_word(decode_cp(s + e, seq_len(s[e])))) continue;
        }
        return a;
    }
    return NULL;
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = 0;
        if (tok_utf8_next(s + i, n - i, &l) != 1) return false;
        i += l;
    }
    return true;
}

int tok_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
               struct tok_ids *out, struct echo_err *err)
{
    if (len == 0) return 0;
    if (len > TOK_MAX_TEXT) {
        echo_err_set(err, "tokenizer: text of %zu bytes is over the limit of %d", len,
                     TOK_MAX_TEXT);
        return -1;
    }
    struct tok_tls *tls = tls_get();
    if (!tls) {
        echo_err_set(err, "tokenizer: cannot allocate PCRE2 match data");
        return -1;
    }
    struct strbuf clean;
    strbuf_init(&clean);
    const uint8_t *s = (const uint8_t *)text;
    if (len && !valid_utf8(s, len)) {
        tok_utf8_sanitize(text, len, &clean);
        s = (const uint8_t *)clean.data;
        len = clean.len;
    }
    int rc = 0;
    size_t seg = 0;
    if ((flags & TOK_ENCODE_SPECIAL) && t->n_added) {
        size_t i = 0;
        while (i < len) {
            uint8_t b = s[i];
            if (t->first_added[b] == t->first_added[b + 1] || (b & 0xc0) == 0x80) {
                i++;
                continue;
            }
            const struct tok_added *a = match_added(t, s, len, i);
            if (!a) {
                i++;
                continue;
            }
            size_t start = i, end = i + a->len, l;
            if (a->lstrip) {
                while (start > seg && cp_is_space(cp_before(s, start, &l)))
                    start -= l;
            }
            if (a->rstrip) {
                while (end < len && cp_is_space(decode_cp(s + end, seq_len(s[end]))))
                    end += seq_len(s[end]);
            }
            if ((rc = encode_segment(t, tls, s + seg, start - seg, out, err)) < 0) goto out;
            tok_ids_push(out, a->id);
            seg = i = end;
        }
    }
    rc = encode_segment(t, tls, s + seg, len - seg, out, err);
out:
    strbuf_deinit(&clean);
    return rc;
}

int64_t tok_count(const tokenizer *t, const char *text, size_t len, unsigned flags,
                  struct echo_err *err)
{
    struct tok_ids ids;
    tok_ids_init(&ids);
    int rc = tok_encode(t, text, len, flags, &ids, err);
    int64_t n = rc < 0 ? -1 : (int64_t)ids.len;
    tok_ids_deinit(&ids);
    return n;
}

/* ---- regex translation -------------------------------------------------------- */

/* Unicode White_Space, which is what Oniguruma's (and so Hugging Face's) \s
 * means; PCRE2's \s with UCP also takes U+180E. */
#define WS_MEMBERS                                                                                 \
    "\\t-\\r "                                                                                     \
    "\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

char *tok_regex_translate(const char *p)
{
    struct strbuf sb;
    strbuf_init(&sb);
    bool in_class = false;
    size_t n = strlen(p);
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            if (e == 's' && !in_class) {
                strbuf_puts(&sb, "[" WS_MEMBERS "]");
            } else if (e == 'S' && !in_class) {
                strbuf_puts(&sb, "[^" WS_MEMBERS "]");
            } else if (e == 's') {
                strbuf_puts(&sb, WS_MEMBERS);
            } else {
                strbuf_putc(&sb, c);
                strbuf_putc(&sb, e);
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            strbuf_putc(&sb, c);
            /* A ']' right after '[' or '[^' is a literal member. */
            if (i + 1 < n && p[i + 1] == '^') strbuf_putc(&sb, p[++i]);
            if (i + 1 < n && p[i + 1] == ']') strbuf_putc(&sb, p[++i]);
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') {
            /* POSIX class [:name:] inside a class: copy through its end. */
            const char *end = strstr(p + i + 2, ":]");
            size_t stop = end ? (size_t)(end - p) + 2 : n;
            strbuf_append(&sb, p + i, stop - i);
            i = stop - 1;
            continue;
        }
        if (in_class && c == ']') in_class = false;
        strbuf_putc(&sb, c);
    }
    char *r = strbuf_steal(&sb);
    return r ? r : xstrdup("");
}

void tok_bpe_raw(const tokenizer *t, const uint8_t *s, size_t n, bool large, struct tok_ids *out)
{
    if (n == 0) return;
    if (large || n > SMALL_PIECE) {
        bpe_large(t, s, n, out);
        return;
    }
    int32_t ids[SMALL_PIECE];
    size_t m = bpe_small(t, s, n, ids);
    for (size_t i = 0; i < m; i++)
        tok_ids_push(out, ids[i]);
}
