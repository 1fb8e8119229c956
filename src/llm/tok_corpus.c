/*
 * tok_corpus.c - deterministic mixed text for the tokenizer's tests and
 * benchmark (tok_corpus_generate in tokenizer.h).
 *
 * The mix is meant to exercise every branch of the pre-tokenizer regex and
 * of BPE on realistic input: English prose with contractions and numbers,
 * source code with indentation and operators, Chinese/Japanese/Korean text,
 * emoji (including ZWJ sequences and flags), accented Latin, Cyrillic,
 * Greek and Arabic words, and runs of spaces, tabs and newlines (CRLF too).
 * A splitmix64 stream drives every choice, so the output depends only on the
 * seed and the size.
 */
#include "llm/tokenizer.h"

#include <string.h>

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(rng_next(r) % n);
}

#define PICK(r, arr) (arr[rng_below(r, sizeof(arr) / sizeof(arr[0]))])

/* clang-format off */
static const char *const english[] = {
    "the",     "of",      "and",        "to",       "in",       "is",        "you",
    "that",    "it",      "he",         "was",      "for",      "on",        "are",
    "as",      "with",    "his",        "they",     "I",        "at",        "be",
    "this",    "have",    "from",       "or",       "one",      "had",       "by",
    "word",    "but",     "not",        "what",     "all",      "were",      "we",
    "when",    "your",    "can",        "said",     "there",    "use",       "an",
    "each",    "which",   "she",        "do",       "how",      "their",     "if",
    "will",    "up",      "other",      "about",    "out",      "many",      "then",
    "them",    "these",   "so",         "some",     "her",      "would",     "make",
    "like",    "him",     "into",       "time",     "has",      "look",      "two",
    "more",    "write",   "go",         "see",      "number",   "no",        "way",
    "could",   "people",  "my",         "than",     "first",    "water",     "been",
    "call",    "who",     "oil",        "its",      "now",      "find",      "long",
    "down",    "day",     "did",        "get",      "come",     "made",      "may",
    "part",    "model",   "tokenizer",  "language", "chatbot",  "inference", "server",
    "message", "history", "attention",  "Alibaba",  "Qwen",     "Echo",      "Flask",
    "quickly", "jumped",  "extraordinary", "unbelievable", "internationalization",
    "cat's",   "don't",   "we're",      "they've",  "I'm",      "you'll",    "he'd",
    "IT'S",    "DON'T",   "Hello",      "World",    "OpenAI",   "GPU",       "CPU",
};
/* clang-format on */

static const char *const code_lines[] = {
    "int main(int argc, char **argv) {",
    "    for (size_t i = 0; i < n; i++) {",
    "        sum += x[i] * w[i];",
    "    }",
    "    return 0;",
    "}",
    "def tokenize(text: str) -> list[int]:",
    "    ids = [vocab[t] for t in text.split()]",
    "    if not ids:",
    "        raise ValueError(\"empty input\")",
    "\treturn ids  # tab-indented",
    "const socket = io({ transports: ['websocket'] });",
    "socket.on('response_chunk', (msg) => { out.textContent += msg.text; });",
    "SELECT id, email FROM users WHERE created_at >= '2024-01-01' ORDER BY id DESC;",
    "<div class=\"chat-message\" data-id=\"42\">&lt;b&gt;hi&lt;/b&gt;</div>",
    "#include <stdio.h>",
    "x = a->b->c != NULL ? *p++ : ~mask & 0xFF;",
    "if (a <= b && c >= d || !e) { goto fail; }",
    "let v: Vec<u8> = s.bytes().filter(|b| b.is_ascii()).collect();",
    "    /* comment with    extra   spaces */",
    "std::vector<std::string> parts; // C++",
    "$ echo \"$HOME\" | sed -e 's/a/b/g' > /tmp/out.txt",
    "json = {\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"x\": \"y\"}}",
};

static const char *const emoji[] = {
    "\xF0\x9F\x98\x80",                                                         /* 😀 */
    "\xF0\x9F\x98\x81",                                                         /* 😁 */
    "\xF0\x9F\x9A\x80",                                                         /* 🚀 */
    "\xE2\x9C\x85",                                                             /* ✅ */
    "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",                                         /* 👍🏽 */
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", /* family ZWJ */
    "\xF0\x9F\x87\xA8\xF0\x9F\x87\xB3",                                         /* flag CN */
    "\xE2\x9D\xA4\xEF\xB8\x8F",                                                 /* ❤️ */
    "\xF0\x9F\xA6\x99",                                                         /* 🦙 */
    "\xF0\x9F\x8C\xAB\xEF\xB8\x8F",                                             /* 🌫️ */
};

static const char *const other_words[] = {
    "na\xC3\xAFve", /* naïve */
    "caf\xC3\xA9",  /* café */
    "\xC3\x84pfel", /* Äpfel */
    "Stra\xC3\x9F"
    "e",            /* Straße */
    "se\xC3\xB1or", /* señor */
    "\xC5\x81\xC3\xB3"
    "d\xC5\xBA",                                                        /* Łódź */
    "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",                 /* привет */
    "\xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2\xD0\xB0",                 /* Москва */
    "\xCE\xB1\xCE\xBB\xCF\x86\xCE\xAC\xCE\xB2\xCE\xB7\xCF\x84\xCE\xBF", /* αλφάβητο */
    "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7",                         /* مرحبا */
    "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87", /* नमस्ते */
    "\xE0\xB8\xAA\xE0\xB8\xA7\xE0\xB8\xB1\xE0\xB8\xAA\xE0\xB8\x94\xE0\xB8\xB5", /* สวัสดี */
    "\xE2\x82\xAC"
    "100",                            /* €100 */
    "\xC2\xBD",                       /* ½ */
    "\xE2\x80\x94",                   /* — */
    "\xE2\x80\x9Cquoted\xE2\x80\x9D", /* “quoted” */
};

static const char *const cjk_punct[] = {
    "\xEF\xBC\x8C", /* ， */
    "\xE3\x80\x82", /* 。 */
    "\xEF\xBC\x81", /* ！ */
    "\xEF\xBC\x9F", /* ？ */
    "\xE3\x80\x81", /* 、 */
    "\xEF\xBC\x9A", /* ： */
};

static const char *const spaces[] = {
    " ",    " ",    " ",   "  ",    "   ",  "    ",     "\t",     "\n",   "\n",
    "\n\n", "\r\n", " \n", "\n   ", "\t\t", "        ", "\n\n\n", " \t ",
};

/* Draws n values below the given bounds, in order. (Never pass two rng
 * calls as arguments of one call: their order is unspecified, and the text
 * would differ between compilers.) */
static void draw(struct rng *r, unsigned *v, const uint32_t *bounds, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = rng_below(r, bounds[i]);
}

static void gen_number(struct rng *r, struct strbuf *out)
{
    unsigned v[3];
    switch (rng_below(r, 5)) {
    case 0:
        strbuf_printf(out, "%u", rng_below(r, 100));
        break;
    case 1:
        draw(r, v, (const uint32_t[]){10000, 100}, 2);
        strbuf_printf(out, "%u.%02u", v[0], v[1]);
        break;
    case 2:
        draw(r, v, (const uint32_t[]){30, 12, 28}, 3);
        strbuf_printf(out, "20%02u-%02u-%02u", v[0], 1 + v[1], 1 + v[2]);
        break;
    case 3: {
        uint64_t x = rng_next(r);
        strbuf_printf(out, "%llu", (unsigned long long)(x >> rng_below(r, 60)));
        break;
    }
    default:
        draw(r, v, (const uint32_t[]){1000, 1000}, 2);
        strbuf_printf(out, "-%u,%03u", v[0], v[1]);
    }
}

static void gen_english(struct rng *r, struct strbuf *out)
{
    uint32_t words = 5 + rng_below(r, 20);
    for (uint32_t i = 0; i < words; i++) {
        if (i) strbuf_putc(out, ' ');
        uint32_t k = rng_below(r, 100);
        if (k < 6)
            gen_number(r, out);
        else if (k < 8)
            strbuf_puts(out, PICK(r, other_words));
        else if (k < 9)
            strbuf_puts(out, PICK(r, emoji));
        else {
            const char *w = PICK(r, english);
            if (i == 0 && w[0] >= 'a' && w[0] <= 'z') {
                strbuf_putc(out, (char)(w[0] - 'a' + 'A'));
                w++;
            }
            strbuf_puts(out, w);
        }
        if (rng_below(r, 12) == 0) strbuf_putc(out, ",;:"[rng_below(r, 3)]);
    }
    static const char *const ends[] = {".", ".", ".", "!", "?", "...", "?!", ". ", "\"."};
    strbuf_puts(out, PICK(r, ends));
    strbuf_puts(out, PICK(r, spaces));
}

static void gen_code(struct rng *r, struct strbuf *out)
{
    uint32_t lines = 2 + rng_below(r, 8);
    for (uint32_t i = 0; i < lines; i++) {
        strbuf_puts(out, PICK(r, code_lines));
        strbuf_puts(out, rng_below(r, 10) ? "\n" : (rng_below(r, 2) ? "\r\n" : "   \n\n"));
    }
}

static void gen_cjk(struct rng *r, struct strbuf *out)
{
    uint32_t n = 4 + rng_below(r, 30);
    uint32_t script = rng_below(r, 10);
    for (uint32_t i = 0; i < n; i++) {
        if (script < 7) {
            /* Common Han ideographs cluster in the first few thousand. */
            strbuf_put_utf8(out, 0x4e00 + rng_below(r, rng_below(r, 4) ? 3000 : 20900));
        } else if (script < 9) {
            strbuf_put_utf8(out, rng_below(r, 2) ? 0x3041 + rng_below(r, 86) : 0x30a1 + rng_below(r, 90));
        } else {
            strbuf_put_utf8(out, 0xac00 + rng_below(r, 11172));
            if (rng_below(r, 4) == 0) strbuf_putc(out, ' ');
        }
        uint32_t k = rng_below(r, 40);
        if (k == 0)
            strbuf_puts(out, PICK(r, cjk_punct));
        else if (k == 1)
            gen_number(r, out);
        else if (k == 2)
            strbuf_puts(out, PICK(r, emoji));
        else if (k == 3)
            strbuf_puts(out, PICK(r, english));
    }
    strbuf_puts(out, PICK(r, cjk_punct));
    if (rng_below(r, 3) == 0) strbuf_puts(out, PICK(r, spaces));
}

static void gen_misc(struct rng *r, struct strbuf *out)
{
    switch (rng_below(r, 6)) {
    case 0: /* a long run of one kind */
        for (uint32_t i = 0, n = 1 + rng_below(r, 40); i < n; i++)
            strbuf_puts(out, PICK(r, spaces));
        break;
    case 1:
        for (uint32_t i = 0, n = 1 + rng_below(r, 6); i < n; i++)
            strbuf_puts(out, PICK(r, emoji));
        break;
    case 2:
        for (uint32_t i = 0, n = 1 + rng_below(r, 8); i < n; i++) {
            gen_number(r, out);
            strbuf_putc(out, " +-*/=%"[rng_below(r, 7)]);
        }
        break;
    case 3:
        for (uint32_t i = 0, n = 1 + rng_below(r, 6); i < n; i++) {
            strbuf_puts(out, PICK(r, other_words));
            strbuf_putc(out, ' ');
        }
        break;
    case 4: /* punctuation clusters */
        for (uint32_t i = 0, n = 1 + rng_below(r, 12); i < n; i++)
            strbuf_putc(out, "!!!???...---***###$$$@@"[rng_below(r, 23)]);
        strbuf_puts(out, PICK(r, spaces));
        break;
    default: { /* URLs, e-mail, paths */
        unsigned v[3];
        draw(r, v, (const uint32_t[]){1000, 100000, 100}, 3);
        strbuf_printf(out,
                      "https://example.com/path/%u?q=%u&lang=zh-CN#top user%u@mail.example.org ",
                      v[0], v[1], v[2]);
    }
    }
}

void tok_corpus_generate(struct strbuf *out, size_t bytes, uint64_t seed)
{
    struct rng r = {seed ^ 0x5EED5EED5EED5EEDull};
    size_t target = out->len + bytes;
    strbuf_reserve(out, bytes + 256);
    while (out->len < target) {
        uint32_t k = rng_below(&r, 100);
        if (k < 40)
            gen_english(&r, out);
        else if (k < 65)
            gen_code(&r, out);
        else if (k < 85)
            gen_cjk(&r, out);
        else
            gen_misc(&r, out);
    }
}
