/*
 * test_packet.c - the Engine.IO v4 and Socket.IO v5 codecs: the examples of
 * the protocol documents, round trips, and the malformed inputs a client can
 * send (empty, unknown types, bad base64, invalid UTF-8, wrong payload shapes,
 * reserved event names, binary packets, over-long ids and namespaces).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "realtime/packet.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- Engine.IO packets ---- */

static void test_eio_decode_text(void **state)
{
    (void)state;
    struct eio_packet p;
    assert_int_equal(eio_packet_decode(S("4hello"), &p, NULL), 0);
    assert_int_equal(p.type, EIO_MESSAGE);
    assert_false(p.binary);
    assert_int_equal(p.len, 5);
    assert_memory_equal(p.data, "hello", 5);
    eio_packet_deinit(&p);

    assert_int_equal(eio_packet_decode(S("2probe"), &p, NULL), 0);
    assert_int_equal(p.type, EIO_PING);
    assert_string_equal(p.data, "probe");
    eio_packet_deinit(&p);

    assert_int_equal(eio_packet_decode(S("3"), &p, NULL), 0);
    assert_int_equal(p.type, EIO_PONG);
    assert_null(p.data);
    assert_int_equal(p.len, 0);
    eio_packet_deinit(&p);

    assert_int_equal(eio_packet_decode(S("6"), &p, NULL), 0);
    assert_int_equal(p.type, EIO_NOOP);
    eio_packet_deinit(&p);

    /* UTF-8 text passes through untouched. */
    assert_int_equal(eio_packet_decode(S("4\xe2\x82\xac\xe2\x82\xac"), &p, NULL), 0);
    assert_int_equal(p.len, 6);
    eio_packet_deinit(&p);
}

static void test_eio_decode_binary(void **state)
{
    (void)state;
    struct eio_packet p;
    /* engine.io-parser's example: <Buffer 01 02 03> is "bAQID". */
    assert_int_equal(eio_packet_decode(S("bAQID"), &p, NULL), 0);
    assert_int_equal(p.type, EIO_MESSAGE);
    assert_true(p.binary);
    assert_int_equal(p.len, 3);
    assert_memory_equal(p.data, "\x01\x02\x03", 3);
    eio_packet_deinit(&p);

    /* Binary data may contain NUL bytes. */
    assert_int_equal(eio_packet_decode(S("bAAEA"), &p, NULL), 0);
    assert_int_equal(p.len, 3);
    assert_memory_equal(p.data, "\x00\x01\x00", 3);
    eio_packet_deinit(&p);

    assert_int_equal(eio_packet_decode(S("b"), &p, NULL), 0);
    assert_true(p.binary);
    assert_int_equal(p.len, 0);
    eio_packet_deinit(&p);
}

static void test_eio_decode_errors(void **state)
{
    (void)state;
    struct eio_packet p;
    struct echo_err err;
    echo_err_clear(&err);
    assert_int_equal(eio_packet_decode("", 0, &p, &err), RT_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "empty"));
    assert_int_equal(eio_packet_decode(S("7x"), &p, &err), RT_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "unknown packet type"));
    assert_int_equal(eio_packet_decode(S("x"), &p, NULL), RT_ERR_MALFORMED);
    assert_int_equal(eio_packet_decode(S("/"), &p, NULL), RT_ERR_MALFORMED);
    /* Invalid UTF-8: a lone continuation byte, an overlong, a surrogate, truncated. */
    assert_int_equal(eio_packet_decode(S("4\x80"), &p, NULL), RT_ERR_MALFORMED);
    assert_int_equal(eio_packet_decode(S("4\xc0\xaf"), &p, NULL), RT_ERR_MALFORMED);
    assert_int_equal(eio_packet_decode(S("4\xed\xa0\x80"), &p, NULL), RT_ERR_MALFORMED);
    assert_int_equal(eio_packet_decode(S("4\xe2\x82"), &p, &err), RT_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "UTF-8"));
    /* Bad base64: wrong alphabet, missing padding, stray characters. */
    assert_int_equal(eio_packet_decode(S("bA-_D"), &p, NULL), RT_ERR_MALFORMED);
    assert_int_equal(eio_packet_decode(S("bAQ"), &p, NULL), RT_ERR_MALFORMED);
    assert_int_equal(eio_packet_decode(S("bAQID\n"), &p, &err), RT_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "base64"));
    /* Failure leaves the packet empty (safe to deinit). */
    assert_null(p.data);
    eio_packet_deinit(&p);
}

static void test_eio_encode(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    eio_packet_encode_text(&sb, EIO_PONG, "probe", 5);
    assert_string_equal(strbuf_cstr(&sb), "3probe");
    strbuf_deinit(&sb);

    struct eio_packet bin = {.type = EIO_MESSAGE, .binary = true, .data = "\x01\x02\x03", .len = 3};
    eio_packet_encode(&sb, &bin);
    assert_string_equal(strbuf_cstr(&sb), "bAQID");
    strbuf_deinit(&sb);

    struct eio_packet empty = {.type = EIO_NOOP};
    eio_packet_encode(&sb, &empty);
    assert_string_equal(strbuf_cstr(&sb), "6");
    strbuf_deinit(&sb);
}

static void test_eio_payload(void **state)
{
    (void)state;
    struct eio_packet *pk;
    size_t n;
    /* engine.io-parser's v4 example: "4hello\x1e4€€€" and with binary. */
    assert_int_equal(eio_payload_decode(S("4hello\x1e"
                                          "4\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"),
                                        &pk, &n, NULL),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(pk[0].data, "hello");
    assert_int_equal(pk[1].len, 9);
    eio_packets_free(pk, n);

    assert_int_equal(eio_payload_decode(S("4hello\x1e"
                                          "bAQID\x1e"
                                          "3"),
                                        &pk, &n, NULL),
                     0);
    assert_int_equal(n, 3);
    assert_true(pk[1].binary);
    assert_int_equal(pk[2].type, EIO_PONG);

    /* Join gives the same bytes back. */
    struct strbuf sb;
    strbuf_init(&sb);
    for (size_t i = 0; i < n; i++)
        eio_payload_append(&sb, &pk[i]);
    assert_int_equal(sb.len, sizeof("4hello\x1e"
                                    "bAQID\x1e"
                                    "3") -
                                 1);
    assert_memory_equal(sb.data,
                        "4hello\x1e"
                        "bAQID\x1e"
                        "3",
                        sb.len);
    strbuf_deinit(&sb);
    eio_packets_free(pk, n);

    /* Many packets grow the array. */
    struct strbuf big;
    strbuf_init(&big);
    for (int i = 0; i < 100; i++) {
        if (i) strbuf_putc(&big, '\x1e');
        strbuf_printf(&big, "4m%d", i);
    }
    assert_int_equal(eio_payload_decode(big.data, big.len, &pk, &n, NULL), 0);
    assert_int_equal(n, 100);
    assert_string_equal(pk[99].data, "m99");
    eio_packets_free(pk, n);
    strbuf_deinit(&big);
}

static void test_eio_payload_errors(void **state)
{
    (void)state;
    struct eio_packet *pk = (void *)1;
    size_t n = 7;
    assert_int_equal(eio_payload_decode("", 0, &pk, &n, NULL), RT_ERR_MALFORMED);
    assert_null(pk);
    assert_int_equal(n, 0);
    /* An empty packet between, before or after separators. */
    assert_int_equal(eio_payload_decode(S("4a\x1e\x1e"
                                          "4b"),
                                        &pk, &n, NULL),
                     RT_ERR_MALFORMED);
    assert_int_equal(eio_payload_decode(S("\x1e"
                                          "4a"),
                                        &pk, &n, NULL),
                     RT_ERR_MALFORMED);
    assert_int_equal(eio_payload_decode(S("4a\x1e"), &pk, &n, NULL), RT_ERR_MALFORMED);
    /* One bad packet fails the whole payload (no partial delivery). */
    assert_int_equal(eio_payload_decode(S("4a\x1e"
                                          "9b"),
                                        &pk, &n, NULL),
                     RT_ERR_MALFORMED);
    assert_null(pk);
}

/* ---- Socket.IO packets ---- */

static void test_sio_decode_examples(void **state)
{
    (void)state;
    struct sio_packet p;

    assert_int_equal(sio_packet_decode(S("0"), &p, NULL), 0);
    assert_int_equal(p.type, SIO_CONNECT);
    assert_string_equal(p.nsp, "/");
    assert_int_equal(p.id, -1);
    assert_null(p.data);
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("0{\"token\":\"123\"}"), &p, NULL), 0);
    assert_true(json_is_object(p.data));
    assert_string_equal(json_string_value(json_object_get(p.data, "token")), "123");
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("0/admin,{}"), &p, NULL), 0);
    assert_string_equal(p.nsp, "/admin");
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("1"), &p, NULL), 0);
    assert_int_equal(p.type, SIO_DISCONNECT);
    sio_packet_deinit(&p);
    assert_int_equal(sio_packet_decode(S("1/admin,"), &p, NULL), 0);
    assert_string_equal(p.nsp, "/admin");
    sio_packet_deinit(&p);
    assert_int_equal(sio_packet_decode(S("1/admin"), &p, NULL), 0);
    assert_string_equal(p.nsp, "/admin");
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("2[\"hello\",1]"), &p, NULL), 0);
    assert_int_equal(p.type, SIO_EVENT);
    assert_int_equal(json_array_size(p.data), 2);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)), "hello");
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("2/admin,456[\"project:delete\",123]"), &p, NULL), 0);
    assert_string_equal(p.nsp, "/admin");
    assert_int_equal(p.id, 456);
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("312[{\"ok\":true}]"), &p, NULL), 0);
    assert_int_equal(p.type, SIO_ACK);
    assert_int_equal(p.id, 12);
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("3/admin,456[]"), &p, NULL), 0);
    assert_int_equal(p.id, 456);
    sio_packet_deinit(&p);

    assert_int_equal(sio_packet_decode(S("4{\"message\":\"Not authorized\"}"), &p, NULL), 0);
    assert_int_equal(p.type, SIO_CONNECT_ERROR);
    sio_packet_deinit(&p);
    assert_int_equal(sio_packet_decode(S("4\"legacy string\""), &p, NULL), 0);
    sio_packet_deinit(&p);

    /* The largest ack id accepted. */
    assert_int_equal(sio_packet_decode(S("2999999999999999[\"x\"]"), &p, NULL), 0);
    assert_int_equal(p.id, SIO_MAX_ACK_ID);
    sio_packet_deinit(&p);
}

static void test_sio_decode_errors(void **state)
{
    (void)state;
    struct sio_packet p;
    struct echo_err err;
    echo_err_clear(&err);
    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"", "type"},
        {"7", "type"},
        {"a", "type"},
        {"0[]", "payload"},        /* CONNECT with an array */
        {"0\"x\"", "payload"},     /* CONNECT with a string */
        {"1{}", "payload"},        /* DISCONNECT with data */
        {"2", "payload"},          /* EVENT without data */
        {"2[]", "payload"},        /* EVENT without a name */
        {"2[1,2]", "payload"},     /* EVENT name not a string */
        {"2{\"a\":1}", "payload"}, /* EVENT with an object */
        {"2[\"connect\"]", "reserved"},
        {"2[\"disconnect\",1]", "reserved"},
        {"2[\"newListener\"]", "reserved"},
        {"3[]", "without an id"}, /* ACK without id */
        {"312", "payload"},       /* ACK without data */
        {"312{}", "payload"},     /* ACK with an object */
        {"4", "payload"},         /* CONNECT_ERROR without data */
        {"4[1]", "payload"},
        {"05{}", "ack id"},             /* id on CONNECT */
        {"15", "ack id"},               /* id on DISCONNECT */
        {"2[\"x\"", "JSON"},            /* truncated JSON */
        {"2[\"x\"]]", "JSON"},          /* trailing garbage */
        {"2[\"x\"] ", "JSON"},          /* jansson: trailing whitespace is fine? -> checked below */
        {"2{\"a\":1,\"a\":2}", "JSON"}, /* duplicate keys */
        {"2[\"\\u0000\"]", "JSON"},     /* NUL in a string */
        {"21234567890123456[\"x\"]", "too long"},
        {"0/ad min,{}", "namespace"},
        {"0/ad\x01min,{}", "namespace"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* Trailing whitespace is valid JSON: not an error. */
        if (!strcmp(bad[i].s, "2[\"x\"] ")) {
            assert_int_equal(sio_packet_decode(bad[i].s, strlen(bad[i].s), &p, NULL), 0);
            sio_packet_deinit(&p);
            continue;
        }
        int rc = sio_packet_decode(bad[i].s, strlen(bad[i].s), &p, &err);
        if (rc != RT_ERR_MALFORMED) fail_msg("'%s' decoded with rc %d", bad[i].s, rc);
        if (!strstr(err.msg, bad[i].why))
            fail_msg("'%s': error '%s' does not mention '%s'", bad[i].s, err.msg, bad[i].why);
        assert_null(p.nsp);
        assert_null(p.data);
    }

    /* A namespace longer than the limit. */
    char nsp[SIO_MAX_NSP + 16];
    nsp[0] = '0';
    nsp[1] = '/';
    memset(nsp + 2, 'a', SIO_MAX_NSP);
    nsp[SIO_MAX_NSP + 2] = ',';
    assert_int_equal(sio_packet_decode(nsp, SIO_MAX_NSP + 3, &p, &err), RT_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "namespace"));

    /* Deeply nested JSON is refused by jansson's depth limit, not a crash. */
    struct strbuf deep;
    strbuf_init(&deep);
    strbuf_puts(&deep, "2[\"x\",");
    for (int i = 0; i < 100000; i++)
        strbuf_putc(&deep, '[');
    assert_int_equal(sio_packet_decode(deep.data, deep.len, &p, NULL), RT_ERR_MALFORMED);
    strbuf_deinit(&deep);
}

static void test_sio_binary_refused(void **state)
{
    (void)state;
    struct sio_packet p;
    struct echo_err err;
    assert_int_equal(
        sio_packet_decode(S("51-[\"hello\",{\"_placeholder\":true,\"num\":0}]"), &p, &err),
        RT_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "binary"));
    assert_int_equal(sio_packet_decode(S("61-3[{\"_placeholder\":true,\"num\":0}]"), &p, NULL),
                     RT_ERR_UNSUPPORTED);
}

static void test_sio_encode(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    json_t *d = json_pack("{s:s}", "sid", "abc");
    struct sio_packet p = {.type = SIO_CONNECT, .nsp = "/", .id = -1, .data = d};
    assert_int_equal(sio_packet_encode(&sb, &p), 0);
    assert_string_equal(strbuf_cstr(&sb), "0{\"sid\":\"abc\"}");
    strbuf_deinit(&sb);
    json_decref(d);

    d = json_pack("[s,{s:s}]", "response_chunk", "text", "h\xc3\xa9llo \"x\"");
    p = (struct sio_packet){.type = SIO_EVENT, .nsp = "/admin", .id = 7, .data = d};
    assert_int_equal(sio_packet_encode(&sb, &p), 0);
    assert_string_equal(strbuf_cstr(&sb),
                        "2/admin,7[\"response_chunk\",{\"text\":\"h\xc3\xa9llo \\\"x\\\"\"}]");
    /* And it decodes back to the same packet. */
    struct sio_packet q;
    assert_int_equal(sio_packet_decode(sb.data, sb.len, &q, NULL), 0);
    assert_string_equal(q.nsp, "/admin");
    assert_int_equal(q.id, 7);
    assert_true(json_equal(q.data, d));
    sio_packet_deinit(&q);
    strbuf_deinit(&sb);
    json_decref(d);

    p = (struct sio_packet){.type = SIO_DISCONNECT, .nsp = NULL, .id = -1, .data = NULL};
    assert_int_equal(sio_packet_encode(&sb, &p), 0);
    assert_string_equal(strbuf_cstr(&sb), "1");
    strbuf_deinit(&sb);

    assert_true(sio_event_reserved("connect"));
    assert_false(sio_event_reserved("send_message"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eio_decode_text),     cmocka_unit_test(test_eio_decode_binary),
        cmocka_unit_test(test_eio_decode_errors),   cmocka_unit_test(test_eio_encode),
        cmocka_unit_test(test_eio_payload),         cmocka_unit_test(test_eio_payload_errors),
        cmocka_unit_test(test_sio_decode_examples), cmocka_unit_test(test_sio_decode_errors),
        cmocka_unit_test(test_sio_binary_refused),  cmocka_unit_test(test_sio_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
