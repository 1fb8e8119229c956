/*
 * eio_packet.c - Engine.IO v4 packet and polling payload codec.
 *
 * A packet is a type digit followed by its data ("4hello", "2probe"); binary
 * data travels as "b" + base64 in polling payloads (a WebSocket carries it as
 * a binary frame instead, which the WebSocket layer hands over as is). A
 * polling payload joins packets with the record separator 0x1E, which can
 * appear neither in base64 nor in our JSON output, and a client that puts one
 * inside a text packet simply splits it in two.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/packet.h"

void eio_packet_deinit(struct eio_packet *p)
{
    if (!p) return;
    free(p->data);
    memset(p, 0, sizeof(*p));
}

static void set_data(struct eio_packet *p, const char *s, size_t n)
{
    if (n == 0) {
        p->data = NULL;
        p->len = 0;
        return;
    }
    p->data = xmalloc(n + 1);
    memcpy(p->data, s, n);
    p->data[n] = '\0';
    p->len = n;
}

int eio_packet_decode(const char *s, size_t n, struct eio_packet *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        echo_err_set(err, "engine.io: empty packet");
        return RT_ERR_MALFORMED;
    }
    if (s[0] == 'b') {
        /* Base64 of binary message data (engine.io-protocol v4, "Payload"). */
        size_t b64_len = n - 1, bin_len = 0;
        size_t max = b64_len / 4 * 3 + 3;
        char *bin = xmalloc(max + 1);
        if (sodium_base642bin((unsigned char *)bin, max, s + 1, b64_len, NULL, &bin_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(bin);
            echo_err_set(err, "engine.io: invalid base64 in a binary packet");
            return RT_ERR_MALFORMED;
        }
        bin[bin_len] = '\0';
        out->type = EIO_MESSAGE;
        out->binary = true;
        if (bin_len == 0) {
            free(bin);
            bin = NULL;
        }
        out->data = bin;
        out->len = bin_len;
        return 0;
    }
    if (s[0] < '0' || s[0] > '6') {
        echo_err_set(err, "engine.io: unknown packet type 0x%02x", (unsigned char)s[0]);
        return RT_ERR_MALFORMED;
    }
    if (!utf8_valid(s + 1, n - 1)) {
        echo_err_set(err, "engine.io: packet text is not valid UTF-8");
        return RT_ERR_MALFORMED;
    }
    out->type = (enum eio_type)(s[0] - '0');
    set_data(out, s + 1, n - 1);
    return 0;
}

void eio_packet_encode_text(struct strbuf *out, enum eio_type type, const char *data, size_t n)
{
    strbuf_putc(out, (char)('0' + (int)type));
    if (n) strbuf_append(out, data, n);
}

void eio_packet_encode(struct strbuf *out, const struct eio_packet *p)
{
    if (!p->binary) {
        eio_packet_encode_text(out, p->type, p->data, p->len);
        return;
    }
    size_t b64_size = sodium_base64_ENCODED_LEN(p->len, sodium_base64_VARIANT_ORIGINAL);
    strbuf_putc(out, 'b');
    strbuf_reserve(out, b64_size);
    /* Writes the NUL terminator too; the length excludes it. */
    sodium_bin2base64(out->data + out->len, b64_size, (const unsigned char *)p->data, p->len,
                      sodium_base64_VARIANT_ORIGINAL);
    out->len += b64_size - 1;
}

void eio_packets_free(struct eio_packet *packets, size_t count)
{
    for (size_t i = 0; i < count; i++)
        eio_packet_deinit(&packets[i]);
    free(packets);
}

int eio_payload_decode(const char *body, size_t n, struct eio_packet **packets, size_t *count,
                       struct echo_err *err)
{
    *packets = NULL;
    *count = 0;
    if (n == 0) {
        echo_err_set(err, "engine.io: empty payload");
        return RT_ERR_MALFORMED;
    }
    size_t cap = 4, used = 0;
    struct eio_packet *arr = xcalloc(cap, sizeof(*arr));
    const char *p = body, *end = body + n;
    for (;;) {
        const char *sep = memchr(p, EIO_SEPARATOR, (size_t)(end - p));
        const char *stop = sep ? sep : end;
        if (used == cap) {
            cap *= 2;
            arr = xrealloc(arr, cap * sizeof(*arr));
        }
        int rc = eio_packet_decode(p, (size_t)(stop - p), &arr[used], err);
        if (rc != 0) {
            eio_packets_free(arr, used);
            return rc;
        }
        used++;
        if (!sep) break;
        p = sep + 1;
    }
    *packets = arr;
    *count = used;
    return 0;
}

void eio_payload_append(struct strbuf *payload, const struct eio_packet *p)
{
    if (payload->len > 0) strbuf_putc(payload, EIO_SEPARATOR);
    eio_packet_encode(payload, p);
}
