/*
 * sio_packet.c - Socket.IO v5 packet codec.
 *
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 *
 * e.g. `0{"token":"x"}`, `2["send_message",{"message":"hi"}]`, `2/chat,12["x"]`,
 * `31[{"ok":true}]`. The JSON goes through jansson; this file only cuts the
 * prefix and checks that the payload has the shape its type requires, the
 * way socket.io-parser's isPayloadValid does, so the server code above never
 * sees a packet of the wrong shape.
 */
#include <stdlib.h>
#include <string.h>

#include "realtime/packet.h"

/* Event names a client may not emit (socket.io-parser RESERVED_EVENTS). */
static const char *const reserved_events[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

bool sio_event_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof(reserved_events) / sizeof(reserved_events[0]); i++)
        if (!strcmp(name, reserved_events[i])) return true;
    return false;
}

void sio_packet_deinit(struct sio_packet *p)
{
    if (!p) return;
    free(p->nsp);
    if (p->data) json_decref(p->data);
    memset(p, 0, sizeof(*p));
    p->id = -1;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Checks the payload shape for the packet type (see the header). */
static int check_payload(const struct sio_packet *p, struct echo_err *err)
{
    const json_t *d = p->data;
    switch (p->type) {
    case SIO_CONNECT:
        if (d && !json_is_object(d)) goto bad;
        return 0;
    case SIO_DISCONNECT:
        if (d) goto bad;
        return 0;
    case SIO_CONNECT_ERROR:
        if (!d || !(json_is_object(d) || json_is_string(d))) goto bad;
        return 0;
    case SIO_EVENT: {
        if (!d || !json_is_array(d) || json_array_size(d) == 0) goto bad;
        const json_t *name = json_array_get(d, 0);
        if (!json_is_string(name)) goto bad;
        if (sio_event_reserved(json_string_value(name))) {
            echo_err_set(err, "socket.io: reserved event name '%s'", json_string_value(name));
            return RT_ERR_MALFORMED;
        }
        return 0;
    }
    case SIO_ACK:
        if (!d || !json_is_array(d)) goto bad;
        return 0;
    default:
        break;
    }
bad:
    echo_err_set(err, "socket.io: invalid payload for packet type %d", (int)p->type);
    return RT_ERR_MALFORMED;
}

int sio_packet_decode(const char *s, size_t n, struct sio_packet *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    out->id = -1;
    size_t i = 0;
    if (n == 0 || s[0] < '0' || s[0] > '6') {
        echo_err_set(err, "socket.io: missing or unknown packet type");
        return RT_ERR_MALFORMED;
    }
    out->type = (enum sio_type)(s[0] - '0');
    i = 1;
    if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK) {
        /* Binary attachments would need reassembly across Engine.IO messages;
         * Echo's events are all JSON, so the packet is refused outright. */
        echo_err_set(err, "socket.io: binary packets are not supported");
        return RT_ERR_UNSUPPORTED;
    }

    /* Namespace: "/..." up to a comma (or the end of the packet). */
    if (i < n && s[i] == '/') {
        size_t start = i;
        while (i < n && s[i] != ',') {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x21 || c > 0x7e) {
                echo_err_set(err, "socket.io: invalid character in namespace");
                return RT_ERR_MALFORMED;
            }
            i++;
        }
        if (i - start > SIO_MAX_NSP) {
            echo_err_set(err, "socket.io: namespace longer than %d bytes", SIO_MAX_NSP);
            return RT_ERR_MALFORMED;
        }
        out->nsp = xstrndup(s + start, i - start);
        if (i < n) i++; /* the comma */
    } else {
        out->nsp = xstrdup("/");
    }

    /* Ack id: decimal digits. */
    if (i < n && is_digit(s[i])) {
        int64_t id = 0;
        size_t digits = 0;
        while (i < n && is_digit(s[i])) {
            if (++digits > 15) {
                echo_err_set(err, "socket.io: ack id too long");
                goto fail;
            }
            id = id * 10 + (s[i] - '0');
            i++;
        }
        if (out->type != SIO_EVENT && out->type != SIO_ACK) {
            echo_err_set(err, "socket.io: ack id on a packet of type %d", (int)out->type);
            goto fail;
        }
        out->id = id;
    }
    if (out->type == SIO_ACK && out->id < 0) {
        echo_err_set(err, "socket.io: ACK without an id");
        goto fail;
    }

    if (i < n) {
        json_error_t jerr;
        out->data = json_loadb(s + i, n - i, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (!out->data) {
            echo_err_set(err, "socket.io: invalid JSON payload: %s", jerr.text);
            goto fail;
        }
    }
    if (check_payload(out, err) != 0) goto fail;
    return 0;

fail:
    sio_packet_deinit(out);
    return RT_ERR_MALFORMED;
}

int sio_packet_encode(struct strbuf *out, const struct sio_packet *p)
{
    char *json = NULL;
    if (p->data) {
        json = json_dumps(p->data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!json) return -1;
    }
    strbuf_putc(out, (char)('0' + (int)p->type));
    if (p->nsp && strcmp(p->nsp, "/") != 0) {
        strbuf_puts(out, p->nsp);
        strbuf_putc(out, ',');
    }
    if (p->id >= 0) strbuf_printf(out, "%lld", (long long)p->id);
    if (json) {
        strbuf_puts(out, json);
        free(json);
    }
    return 0;
}
