/*
 * packet.h - the wire codecs of realtime/: Engine.IO v4 packets and polling
 * payloads, Socket.IO v5 packets. Pure functions over byte strings: no I/O, no
 * shared state, safe from any thread. Everything a client sends passes through
 * a decoder here first, so each decoder is strict (a malformed packet is an
 * error value that closes that one connection) and fuzzed
 * (tests/fuzz/fuzz_sio_packet.c).
 *
 * References: https://github.com/socketio/engine.io-protocol (v4) and
 * https://github.com/socketio/socket.io-protocol (v5).
 */
#ifndef ECHO_REALTIME_PACKET_H
#define ECHO_REALTIME_PACKET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Error values of the decoders (0 is success). */
enum {
    RT_ERR_MALFORMED = -1,   /* not a valid packet */
    RT_ERR_UNSUPPORTED = -2, /* valid but refused by this server (binary Socket.IO packets) */
};

/* ---- Engine.IO v4 ------------------------------------------------------ */

enum eio_type {
    EIO_OPEN = 0,
    EIO_CLOSE = 1,
    EIO_PING = 2,
    EIO_PONG = 3,
    EIO_MESSAGE = 4,
    EIO_UPGRADE = 5,
    EIO_NOOP = 6,
};

/*
 * One Engine.IO packet. `data` is owned (NUL-terminated for convenience, but
 * binary data may contain NULs: use len), NULL when the packet carries none.
 * `binary` is set for a message whose data is bytes (a WebSocket binary frame,
 * or "b<base64>" in a polling payload); text data is always valid UTF-8.
 */
struct eio_packet {
    enum eio_type type;
    bool binary;
    char *data;
    size_t len;
};

void eio_packet_deinit(struct eio_packet *p);

/*
 * Decodes one packet in its text form: "<type digit>[data]" or "b<base64>".
 * Refuses an empty string, an unknown type, invalid UTF-8 and bad base64.
 * Returns 0 or RT_ERR_MALFORMED (err filled; *out is then empty).
 */
int eio_packet_decode(const char *s, size_t n, struct eio_packet *out, struct echo_err *err);

/* Appends the text form of p (binary data as "b" + base64). */
void eio_packet_encode(struct strbuf *out, const struct eio_packet *p);
/* Convenience: appends "<type>" followed by n bytes of text data. */
void eio_packet_encode_text(struct strbuf *out, enum eio_type type, const char *data, size_t n);

/*
 * Splits a polling payload (packets separated by the record separator 0x1E)
 * and decodes every packet. *packets is a new array of *count packets that the
 * caller frees with eio_packets_free. An empty payload, an empty packet or any
 * malformed packet fails the whole payload (RT_ERR_MALFORMED).
 */
int eio_payload_decode(const char *body, size_t n, struct eio_packet **packets, size_t *count,
                       struct echo_err *err);
void eio_packets_free(struct eio_packet *packets, size_t count);

/* Appends one encoded packet to a polling payload, with the separator when the
 * payload is not empty. */
void eio_payload_append(struct strbuf *payload, const struct eio_packet *p);

/* The record separator between packets of a polling payload. */
#define EIO_SEPARATOR '\x1e'

/* ---- Socket.IO v5 ------------------------------------------------------ */

enum sio_type {
    SIO_CONNECT = 0,
    SIO_DISCONNECT = 1,
    SIO_EVENT = 2,
    SIO_ACK = 3,
    SIO_CONNECT_ERROR = 4,
    SIO_BINARY_EVENT = 5,
    SIO_BINARY_ACK = 6,
};

/* Longest namespace and ack id accepted (ack ids stay exact in a JS number). */
#define SIO_MAX_NSP 128
#define SIO_MAX_ACK_ID 999999999999999LL

/*
 * One Socket.IO packet: "<type>[<attachments>-][<nsp>,][<ack id>][JSON]".
 * `nsp` is owned ("/" when the packet names none), `id` is -1 without an ack
 * id, `data` is an owned jansson reference or NULL.
 */
struct sio_packet {
    enum sio_type type;
    char *nsp;
    int64_t id;
    json_t *data;
};

void sio_packet_deinit(struct sio_packet *p);

/*
 * Decodes the text of one Engine.IO message as a Socket.IO packet and checks
 * its payload against its type: CONNECT carries nothing or an object,
 * DISCONNECT nothing, EVENT a non-empty array whose first element is a
 * non-reserved event name, ACK an array and an ack id, CONNECT_ERROR an object
 * or a string. Only EVENT and ACK may carry an ack id. Binary packets (types 5
 * and 6) are refused with RT_ERR_UNSUPPORTED; anything else malformed with
 * RT_ERR_MALFORMED. err is filled on failure and *out is then empty.
 */
int sio_packet_decode(const char *s, size_t n, struct sio_packet *out, struct echo_err *err);

/*
 * Appends the text form of p. A NULL nsp means "/". Returns 0, or -1 when the
 * data cannot be serialised (jansson refuses it); out is unchanged then.
 */
int sio_packet_encode(struct strbuf *out, const struct sio_packet *p);

/* True for the event names Socket.IO reserves (connect, disconnect, ...). */
bool sio_event_reserved(const char *name);

#endif
