/*
 * fuzz_sio_packet.c - libFuzzer target for the decoders every client byte goes
 * through: the Engine.IO polling payload and packet decoder, then the
 * Socket.IO packet decoder on each text message. Beyond "no crash, no leak"
 * it checks the round trip: whatever decodes must re-encode to something
 * that decodes to the same packet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/packet.h"

static void check_sio(const char *s, size_t n)
{
    struct sio_packet p;
    if (sio_packet_decode(s, n, &p, NULL) != 0) return;
    struct strbuf sb;
    strbuf_init(&sb);
    if (sio_packet_encode(&sb, &p) != 0) abort();
    struct sio_packet q;
    if (sio_packet_decode(sb.data, sb.len, &q, NULL) != 0) abort();
    if (q.type != p.type || q.id != p.id || strcmp(q.nsp, p.nsp) != 0) abort();
    if ((p.data == NULL) != (q.data == NULL) || (p.data && !json_equal(p.data, q.data))) abort();
    sio_packet_deinit(&q);
    sio_packet_deinit(&p);
    strbuf_deinit(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct eio_packet *pk;
    size_t count;
    if (eio_payload_decode(s, size, &pk, &count, NULL) == 0) {
        struct strbuf joined;
        strbuf_init(&joined);
        for (size_t i = 0; i < count; i++) {
            eio_payload_append(&joined, &pk[i]);
            if (pk[i].type == EIO_MESSAGE && !pk[i].binary)
                check_sio(pk[i].data ? pk[i].data : "", pk[i].len);
        }
        /* Re-joining gives a payload that decodes to the same packets. */
        struct eio_packet *again;
        size_t n2;
        if (eio_payload_decode(joined.data, joined.len, &again, &n2, NULL) != 0 || n2 != count)
            abort();
        for (size_t i = 0; i < count; i++)
            if (again[i].type != pk[i].type || again[i].binary != pk[i].binary ||
                again[i].len != pk[i].len ||
                (pk[i].len && memcmp(again[i].data, pk[i].data, pk[i].len) != 0))
                abort();
        eio_packets_free(again, n2);
        strbuf_deinit(&joined);
        eio_packets_free(pk, count);
    }
    /* The same bytes as one WebSocket text message, and as a bare Socket.IO packet. */
    struct eio_packet one;
    if (eio_packet_decode(s, size, &one, NULL) == 0) eio_packet_deinit(&one);
    check_sio(s, size);
    return 0;
}
